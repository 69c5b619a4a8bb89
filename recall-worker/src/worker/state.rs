//! The [`Worker`]: the queue it serves, swapped atomically on reload; readiness; items added
//! after training; and the watchers that trigger a reload.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use kan_api::wire::{ItemsRequest, ItemsResponse, NewItem, RecallRequest, WorkerResponse};
use kan_api::worker_config::WorkerConfig;
use serde::Serialize;

use super::load::{Loaded, build, with_added};
use super::options::WorkerOptions;
use super::serve::serve;
use crate::bundle;
use crate::error::{Error, Result};
use crate::strategy;

/// What `/readyz` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    pub queue: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Why the worker is not ready, or why the last reload failed while the old bundle serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Inner {
    options: WorkerOptions,
    config: Mutex<WorkerConfig>,
    current: ArcSwapOption<Loaded>,
    last_error: Mutex<Option<String>>,
    reloading: tokio::sync::Mutex<()>,
    /// Every item accepted by `POST /v1/items` (as persisted), re-applied on each reload.
    added: Mutex<Vec<NewItem>>,
}

/// One recall queue, served in-process (see the crate docs).
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Worker {
    /// Loads the queue and fails on any error (for `kan up` and tests).
    pub async fn load(config: WorkerConfig, options: WorkerOptions) -> Result<Worker> {
        let worker = Self::start(config, options).await?;
        if let Some(e) = worker.last_error() {
            return Err(Error::NotReady(e));
        }
        Ok(worker)
    }

    /// Starts the queue. Config errors and a missing ONNX Runtime are start-up errors; a bad or
    /// unreachable bundle is not: the worker runs not-ready, says why in `/readyz`, and becomes
    /// ready on a later successful reload.
    pub async fn start(config: WorkerConfig, options: WorkerOptions) -> Result<Worker> {
        kan_api::validate::queue_spec(&config.spec)
            .map_err(|e| Error::Config(format!("queue {}: {e}", config.name)))?;
        if strategy::uses_encoder(config.spec.strategy.type_()) {
            kan_onnx::environment(options.ort_dylib.as_deref())?;
        }
        let added = match &options.state_dir {
            Some(dir) => crate::added::read(dir)?,
            None => Vec::new(),
        };
        let worker = Worker {
            inner: Arc::new(Inner {
                options,
                config: Mutex::new(config.clone()),
                current: ArcSwapOption::empty(),
                last_error: Mutex::new(None),
                reloading: tokio::sync::Mutex::new(()),
                added: Mutex::new(added),
            }),
        };
        if let Err(e) = worker.reload(config).await {
            tracing::error!(error = %e, kind = e.metric_label(), "queue not loaded; serving not-ready");
        }
        Ok(worker)
    }

    /// Loads `config` and swaps it in. On failure the previous queue keeps serving and the error
    /// is kept for `/readyz`.
    pub async fn reload(&self, config: WorkerConfig) -> Result<()> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let started = Instant::now();
        let outcome = match kan_api::validate::queue_spec(&config.spec) {
            Err(e) => Err(Error::Config(format!("queue {}: {e}", config.name))),
            Ok(()) => match build(&config, &self.inner.options).await {
                Ok(loaded) => {
                    // A queue that serves keeps serving until the new one's index is loaded
                    // (a Qdrant collection this worker loads); a first load swaps in at once,
                    // so `/readyz` can say how the load goes.
                    let serving = self.current().is_some();
                    match &loaded.index {
                        Some(index) if serving => index.loaded().await.map(|()| loaded),
                        _ => Ok(loaded),
                    }
                }
                Err(e) => Err(e),
            }
            .map(|loaded| with_added(loaded, &lock(&self.inner.added))),
        };
        match outcome {
            Ok(loaded) => {
                tracing::info!(queue = %loaded.name, version = %loaded.version, took_s = started.elapsed().as_secs_f64(), "queue loaded");
                metrics::counter!(crate::metrics::RELOADS, "queue" => loaded.name.clone(), "outcome" => "ok").increment(1);
                *lock(&self.inner.config) = config;
                self.inner.current.store(Some(Arc::new(loaded)));
                *lock(&self.inner.last_error) = None;
                Ok(())
            }
            Err(e) => {
                metrics::counter!(crate::metrics::RELOADS, "queue" => config.name.clone(), "outcome" => "error").increment(1);
                let serving = self
                    .current()
                    .map(|l| format!(" (still serving version {})", l.version))
                    .unwrap_or_default();
                *lock(&self.inner.last_error) =
                    Some(format!("loading queue {}: {e}{serving}", config.name));
                Err(e)
            }
        }
    }

    /// Reloads the current config (SIGHUP, or the bundle changed on disk).
    pub async fn refresh(&self) -> Result<()> {
        let config = lock(&self.inner.config).clone();
        self.reload(config).await
    }

    /// The queue being served, if one is loaded.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.inner.current.load_full()
    }

    /// The last load error, if the last load failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }

    pub fn config(&self) -> WorkerConfig {
        lock(&self.inner.config).clone()
    }

    /// Ready = a queue is loaded and its index answers.
    pub async fn readiness(&self) -> Readiness {
        let name = lock(&self.inner.config).name.clone();
        let error = self.last_error();
        let Some(loaded) = self.current() else {
            return Readiness {
                ready: false,
                queue: name,
                strategy: None,
                version: None,
                index: None,
                error,
            };
        };
        let index_error = match &loaded.index {
            Some(index) => index.check().await.err().map(|e| e.to_string()),
            None => None,
        };
        Readiness {
            ready: index_error.is_none(),
            queue: loaded.name.clone(),
            strategy: Some(loaded.strategy.name().to_string()),
            version: Some(loaded.version.clone()),
            index: loaded.index.as_ref().map(|i| i.name().to_string()),
            error: index_error.or(error),
        }
    }

    /// Serves one request (already parsed and validated).
    pub async fn recall(&self, request: &RecallRequest) -> Result<WorkerResponse> {
        let started = Instant::now();
        let loaded = self.current().ok_or_else(|| {
            Error::NotReady(
                self.last_error()
                    .unwrap_or_else(|| "no bundle loaded".into()),
            )
        })?;
        let served = serve(&loaded, request, now_secs()).await?;
        Ok(WorkerResponse {
            queue: loaded.name.clone(),
            version: loaded.version.clone(),
            candidates: served.candidates,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
            unknown_history: served.unknown_history,
            degraded: served.degraded,
        })
    }

    /// `POST /v1/items`: adds (or replaces) items published after training so the queue recalls
    /// them from the next request. All or nothing: any unusable item (an unknown tag, an id of
    /// the bundle) is an `InvalidRequest` naming its field and nothing changes; the new
    /// catalogue is persisted before it is served.
    pub async fn add_items(&self, request: &ItemsRequest) -> Result<ItemsResponse> {
        let _one_at_a_time = self.inner.reloading.lock().await;
        let loaded = self.current().ok_or_else(|| {
            Error::NotReady(
                self.last_error()
                    .unwrap_or_else(|| "no bundle loaded".into()),
            )
        })?;
        // What the queue serves now: stored items the bundle has since trained on, or whose
        // tags it lacks, were skipped at load and are dropped here rather than block the post.
        let current = loaded.strategy.added().to_vec();
        let merged = crate::added::merge(&current, &request.items);
        if merged.len() > crate::added::MAX_ADDED_ITEMS {
            return Err(Error::InvalidRequest {
                field: "items".into(),
                message: format!(
                    "the queue holds at most {} added items ({} now): retrain to fold them into the bundle",
                    crate::added::MAX_ADDED_ITEMS,
                    current.len()
                ),
            });
        }
        // Validate the request's items alone first, so a fault names the request's index.
        let strict = |items: &[NewItem]| match loaded.strategy.with_added(items, true) {
            Some(result) => result,
            None => Err(Error::InvalidRequest {
                field: "items".into(),
                message: format!(
                    "queue {} runs {}, which recalls only trained items; post new items to an attribute, exploratory, popular or embedded-index vector queue",
                    loaded.name,
                    loaded.strategy.name()
                ),
            }),
        };
        strict(&request.items)?;
        let strategy = strict(&merged)?;
        if let Some(dir) = &self.inner.options.state_dir {
            crate::added::write(dir, &merged)?;
        }
        let added_items = strategy.added().len();
        self.inner.current.store(Some(Arc::new(Loaded {
            strategy,
            ..(*loaded).clone()
        })));
        *lock(&self.inner.added) = merged;
        metrics::counter!(crate::metrics::ITEMS_ADDED, "queue" => loaded.name.clone())
            .increment(request.items.len() as u64);
        Ok(ItemsResponse {
            queue: loaded.name.clone(),
            accepted: request.items.len(),
            added_items,
        })
    }

    /// Reloads when the served local bundle's manifest changes version (checked every
    /// `interval`), and on SIGHUP.
    pub fn spawn_watchers(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let worker = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<Option<()>>();
                let reason = tokio::select! {
                    _ = tick.tick() => if worker.bundle_changed() { "bundle changed" } else { continue },
                    _ = signalled => "SIGHUP",
                };
                tracing::info!(reason, "reloading queue");
                if let Err(e) = worker.refresh().await {
                    tracing::error!(error = %e, kind = e.metric_label(), "reload failed; the previous bundle keeps serving");
                }
            }
        })
    }

    /// True when the local bundle directory now holds another version than the one served (or
    /// than the last failed attempt, so a bad bundle is not retried on every tick).
    fn bundle_changed(&self) -> bool {
        let config = lock(&self.inner.config).clone();
        let Some(uri) = config.spec.bundle.as_ref().map(|b| b.uri.clone()) else {
            return false;
        };
        let Ok(bundle::BundleLocation::Local(dir)) = bundle::parse_uri(&uri) else {
            return false;
        };
        let Ok(manifest) = bundle::read_manifest(&dir) else {
            return false;
        };
        let served = self.current().map(|l| l.version.clone());
        let failed = self
            .last_error()
            .is_some_and(|e| e.contains(&manifest.version));
        served.as_deref() != Some(manifest.version.as_str()) && !failed
    }
}
