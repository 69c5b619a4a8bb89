//! The worker: one loaded queue (config, bundle, index, strategy) behind an `ArcSwap`, so a new
//! bundle or config replaces the old one atomically while in-flight requests finish on the old
//! one. A failed reload keeps the old one serving and is reported by `/readyz`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use kan_api::bundle::files;
use kan_api::crd::{IndexType, RecallQueueSpec, Strategy as StrategySpec, StrategyType};
use kan_api::wire::{
    Candidate, ItemsRequest, ItemsResponse, NewItem, RecallRequest, WorkerResponse,
};
use kan_api::worker_config::WorkerConfig;
use serde::Serialize;

use crate::bundle::{self, Bundle};
use crate::error::{Error, Result};
use crate::index::exact::ExactIndex;
use crate::index::hnsw::{HnswIndex, HnswParams};
use crate::index::qdrant::QdrantIndex;
use crate::index::{EXACT_SCAN_MAX_ITEMS, VectorIndex};
use crate::request::{effective_k, resolve, resolve_set};
use crate::signals::{Fresh, Signals};
use crate::strategy::{self, Parts, Query, Strategy, stable_hash};

/// Process-level settings that are not part of the queue spec.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Where remote bundles are downloaded and HNSW graphs built from bundles are saved, so a
    /// restart loads the graph instead of rebuilding it.
    pub bundle_cache: Option<PathBuf>,
    /// Object store settings layered over the environment (`bundle.endpoint` from the spec
    /// overrides the endpoint here); empty in a pod, where the environment says it all.
    pub bundle_store: bundle::RemoteOptions,
    /// ONNX Runtime library; `ORT_DYLIB_PATH` when unset.
    pub ort_dylib: Option<PathBuf>,
    /// ONNX sessions per model (concurrent inferences).
    pub session_pool: usize,
    /// Embedded index: catalogues up to this size are scanned exactly, larger ones use HNSW.
    pub exact_max_items: usize,
    /// Graph parameters when the queue spec sets no `index.hnsw`.
    pub hnsw: HnswParams,
    /// The signal store every queue reads, whatever its spec says (`kan up` shares one with its
    /// gateway); when unset a queue reads the Redis of its `spec.signals`, if any.
    pub signals: Option<Arc<dyn kan_signals::SignalStore>>,
    /// Where items added after training (`POST /v1/items`) are kept across restarts; without
    /// one they live until the process ends.
    pub state_dir: Option<PathBuf>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            bundle_cache: None,
            bundle_store: bundle::RemoteOptions::default(),
            ort_dylib: None,
            session_pool: 2,
            exact_max_items: EXACT_SCAN_MAX_ITEMS,
            hnsw: HnswParams::default(),
            signals: None,
            state_dir: None,
        }
    }
}

/// Everything one queue serves from.
#[derive(Clone)]
pub struct Loaded {
    pub name: String,
    pub spec: RecallQueueSpec,
    pub strategy: Arc<dyn Strategy>,
    pub bundle: Option<Arc<Bundle>>,
    pub index: Option<Arc<dyn VectorIndex>>,
    /// Bundle version, or a hash of the pinned list for operational queues.
    pub version: String,
    /// The online signal store this queue reads, if any.
    pub signals: Option<Arc<Signals>>,
}

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

/// A freshly loaded queue serving the items added so far, where its strategy can; items the new
/// bundle now has, or whose tags (or vector dimension) it lacks, are skipped (and logged).
fn with_added(loaded: Loaded, added: &[NewItem]) -> Loaded {
    if added.is_empty() {
        return loaded;
    }
    match loaded.strategy.with_added(added, false) {
        Some(Ok(strategy)) => {
            let served = strategy.added().len();
            if served < added.len() {
                tracing::warn!(
                    queue = %loaded.name,
                    skipped = added.len() - served,
                    "some added items are in the new bundle, or have none of its tags or a vector of its dimension"
                );
            }
            Loaded { strategy, ..loaded }
        }
        Some(Err(e)) => {
            tracing::error!(queue = %loaded.name, error = %e, "added items not served");
            loaded
        }
        None => loaded,
    }
}

/// What [`serve`] produced.
struct Served {
    candidates: Vec<Candidate>,
    /// How many of the request's history ids the bundle does not know.
    unknown_history: u32,
    /// The signal store was configured but not read: the answer is the bundle's alone.
    degraded: bool,
}

/// Resolves a request against the loaded queue and runs its strategy under the queue's budget.
async fn serve(loaded: &Loaded, request: &RecallRequest, now: i64) -> Result<Served> {
    let budget = Duration::from_millis(loaded.spec.timeout_ms.max(1) as u64);
    let fresh = loaded.signals.as_deref().map(|s| Fresh::new(s, budget));
    let catalogue = loaded.strategy.catalogue();
    let k = effective_k(
        request.k,
        loaded.spec.candidates,
        loaded.spec.max_candidates,
    );
    let exclude = resolve_set(&request.exclude, |id| catalogue.get(id));
    let user = loaded
        .bundle
        .as_ref()
        .and_then(|b| b.users.get(&request.user_id));
    let mut unknown_history = 0;
    let history = match &request.history {
        Some(history) => {
            let known = resolve(history, |id| catalogue.get(id));
            unknown_history = (history.len() - known.len()) as u32;
            known
        }
        None => {
            let bundle = match (
                user,
                loaded.bundle.as_ref().and_then(|b| b.history.as_ref()),
            ) {
                (Some(u), Some(h)) => h.items(u),
                _ => &[],
            };
            match &fresh {
                Some(fresh) if reads_history(&loaded.spec.strategy) => {
                    let stored = fresh
                        .read(
                            fresh
                                .store()
                                .history(&request.user_id, kan_signals::HISTORY_MAX),
                        )
                        .await
                        .unwrap_or_default();
                    let stored = resolve(&stored, |id| catalogue.get(id));
                    kan_core::fresh::merge_history(&stored, bundle, kan_api::wire::MAX_HISTORY)
                }
                _ => bundle.to_vec(),
            }
        }
    };
    let query = Query {
        user_id: &request.user_id,
        user,
        history,
        k,
        exclude: &exclude,
        context: &request.context,
        now,
        fresh: fresh.as_ref(),
    };
    let hits = tokio::time::timeout(budget, loaded.strategy.run(&query))
        .await
        .map_err(|_| Error::Timeout(budget.as_millis() as u64))??;
    let candidates = hits
        .into_iter()
        .filter_map(|h| {
            catalogue.id(h.item).map(|id| Candidate {
                item_id: id.to_string(),
                score: h.score,
            })
        })
        .collect();
    Ok(Served {
        candidates,
        unknown_history,
        degraded: fresh.as_ref().is_some_and(Fresh::degraded),
    })
}

/// Strategies that recall from the user's history, so read the stored one when a request
/// carries none. Operational does not look at history; popular only drops it from its lists,
/// and reads the store for it only to keep fresh arrivals (`newItems`) a user engaged with out,
/// which the bundle's history cannot know of.
fn reads_history(strategy: &StrategySpec) -> bool {
    match strategy {
        StrategySpec::Operational { .. } => false,
        StrategySpec::Popular { popular } => popular.new_items > 0,
        _ => true,
    }
}

/// The signal store of a queue: the process's shared one, else the Redis of `spec.signals`
/// (URL and password from the environment the operator fills from the Secret, else the spec).
fn signals_of(spec: &RecallQueueSpec, options: &WorkerOptions) -> Result<Option<Arc<Signals>>> {
    if let Some(store) = &options.signals {
        return Ok(Some(Arc::new(Signals::new(store.clone()))));
    }
    let Some(redis) = spec.signals.as_ref().map(|s| &s.redis) else {
        return Ok(None);
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = env(kan_api::crd::SIGNALS_REDIS_URL_ENV)
        .or_else(|| redis.url.clone())
        .ok_or_else(|| {
            Error::Config(format!(
                "spec.signals.redis has no url and {} is not set",
                kan_api::crd::SIGNALS_REDIS_URL_ENV
            ))
        })?;
    let mut options = kan_signals::RedisOptions::new(url);
    options.password = env(kan_api::crd::SIGNALS_REDIS_PASSWORD_ENV);
    let store = kan_signals::RedisStore::new(options)
        .map_err(|e| Error::Config(format!("spec.signals.redis: {e}")))?;
    Ok(Some(Arc::new(Signals::new(Arc::new(store)))))
}

/// Loads everything a queue needs. Blocking work (hashing, reading tensors, building HNSW) runs
/// off the async threads.
async fn build(config: &WorkerConfig, options: &WorkerOptions) -> Result<Loaded> {
    let spec = config.spec.clone();
    let strategy_type = spec.strategy.type_();
    if let StrategySpec::Operational { operational } = &spec.strategy {
        let strategy = strategy::build(
            &spec.strategy,
            None,
            Parts {
                index: None,
                encoder: None,
            },
        )?;
        let json = serde_json::to_vec(operational).map_err(|e| Error::Config(e.to_string()))?;
        let version = format!("spec-{:016x}", stable_hash(&json));
        return Ok(Loaded {
            name: config.name.clone(),
            spec,
            strategy,
            bundle: None,
            index: None,
            version,
            signals: None,
        });
    }
    let bundle_ref = spec
        .bundle
        .clone()
        .ok_or_else(|| Error::Config(format!("strategy {strategy_type} needs spec.bundle.uri")))?;
    let mut remote = options.bundle_store.clone();
    if let Some(endpoint) = &bundle_ref.endpoint {
        remote.endpoint = Some(endpoint.clone());
    }
    let dir = bundle::fetch(&bundle_ref.uri, &remote, options.bundle_cache.as_deref()).await?;
    let signals = signals_of(&spec, options)?;
    let options = options.clone();
    let name = config.name.clone();
    tokio::task::spawn_blocking(move || {
        let bundle = Arc::new(Bundle::load(&dir, bundle_ref.sha256.as_deref())?);
        if bundle.manifest.strategy != strategy_type {
            return Err(Error::Bundle(format!(
                "the bundle is for strategy {}, but queue {name} runs {strategy_type}",
                bundle.manifest.strategy
            )));
        }
        let index = if strategy_type.uses_vector_index() {
            Some(build_index(&spec, &bundle, &options)?)
        } else {
            None
        };
        let encoder = if strategy::uses_encoder(strategy_type) {
            Some(load_encoder(&spec, &bundle, &options)?)
        } else {
            None
        };
        let strategy = strategy::build(
            &spec.strategy,
            Some(bundle.clone()),
            Parts {
                index: index.clone(),
                encoder,
            },
        )?;
        let version = bundle.version().to_string();
        Ok(Loaded {
            name,
            spec,
            strategy,
            bundle: Some(bundle),
            index,
            version,
            signals,
        })
    })
    .await
    .map_err(|e| Error::Bundle(format!("loading task failed: {e}")))?
}

fn build_index(
    spec: &RecallQueueSpec,
    bundle: &Arc<Bundle>,
    options: &WorkerOptions,
) -> Result<Arc<dyn VectorIndex>> {
    let index_type = spec
        .index
        .as_ref()
        .map(|i| i.type_)
        .unwrap_or(IndexType::Embedded);
    if index_type == IndexType::Qdrant {
        let q = spec
            .index
            .as_ref()
            .and_then(|i| i.qdrant.as_ref())
            .ok_or_else(|| Error::Config("index.qdrant is required".into()))?;
        let timeout = Duration::from_millis(q.timeout_ms.max(1) as u64);
        // The collection of this bundle version, never the alias, which moves to a newer
        // version's vectors (and item numbering) while this worker still serves its own.
        let index = QdrantIndex::new(
            &q.url,
            &crate::index::qdrant::versioned_collection(&q.collection, bundle.version()),
            timeout,
            q.search.clone(),
            Arc::new(bundle.items.clone()),
        )?;
        let lifecycle = q.collections.as_ref();
        if lifecycle.is_none_or(|l| l.load) {
            let lifecycle = crate::index::qdrant::collections::Lifecycle::from_spec(lifecycle);
            return Ok(Arc::new(index.loading(
                &q.url,
                &q.collection,
                bundle.clone(),
                lifecycle,
            )?));
        }
        return Ok(Arc::new(index));
    }
    if bundle.items.len() <= options.exact_max_items {
        let (dim, vectors) = bundle.item_vectors()?;
        return Ok(Arc::new(ExactIndex::new(dim, Arc::new(vectors))));
    }
    let params = spec
        .index
        .as_ref()
        .and_then(|i| i.hnsw.as_ref())
        .map_or(options.hnsw, HnswParams::from);
    let saved = options
        .bundle_cache
        .as_ref()
        .map(|cache| cache.join(saved_graph_name(&graph_key(bundle), params)));
    if let Some(path) = saved.as_ref().filter(|p| p.exists()) {
        // The graph holds the vectors, checked when it was built from this (checksummed)
        // version: a restart need not read and copy them again.
        let dim = bundle.manifest.dim.unwrap_or(0) as usize;
        match HnswIndex::load(path, dim, bundle.items.len(), params) {
            Ok(index) => return Ok(Arc::new(index)),
            Err(e) => tracing::warn!(error = %e, "saved HNSW graph unusable; rebuilding it"),
        }
    }
    let (dim, vectors) = bundle.item_vectors()?;
    let index = HnswIndex::build(dim, &vectors, params)?;
    if let Some(path) = &saved {
        // A cache that cannot be written costs the next start a rebuild, nothing more.
        if let Err(e) = std::fs::create_dir_all(path.parent().unwrap_or(path))
            .map_err(|e| Error::io(path, e))
            .and_then(|()| index.save(path))
        {
            tracing::warn!(error = %e, "could not save the HNSW graph for the next start");
        }
    }
    Ok(Arc::new(index))
}

/// File name of the graph saved for a bundle version and graph parameters: a new version or
/// other parameters never load an old graph.
/// What a saved graph depends on: the item vectors file (its sha256, checked at load), so a
/// bundle that changes only the user encoder reuses the graph; the bundle version when the
/// manifest does not list the file.
fn graph_key(bundle: &Bundle) -> String {
    match bundle.manifest.files.get(files::ITEM_VECTORS) {
        Some(sha) => format!("vectors-{}", &sha[..sha.len().min(16)]),
        None => bundle.version().to_string(),
    }
}

fn saved_graph_name(version: &str, params: HnswParams) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "hnsw/{version}-m{}-efc{}.usearch",
        params.max_connections, params.ef_construction
    )
}

fn load_encoder(
    spec: &RecallQueueSpec,
    bundle: &Bundle,
    options: &WorkerOptions,
) -> Result<kan_onnx::UserEncoder> {
    let settings = match &spec.strategy {
        StrategySpec::Dssm { dssm } => dssm,
        StrategySpec::Gat { gat } => gat,
        StrategySpec::Spectral { spectral } => spectral,
        other => {
            return Err(Error::Config(format!(
                "strategy {} has no encoder",
                other.type_()
            )));
        }
    };
    let env = kan_onnx::environment(options.ort_dylib.as_deref())?;
    let dim = bundle.manifest.dim.unwrap_or(0) as usize;
    Ok(kan_onnx::UserEncoder::load(
        env,
        kan_onnx::Model::File(&bundle.require(files::MODEL)?),
        bundle.manifest.encoder_history_length(settings),
        dim,
        settings.inference_threads.max(1) as usize,
        options.session_pool,
    )?)
}

/// The strategy type a config serves.
pub fn strategy_of(config: &WorkerConfig) -> StrategyType {
    config.spec.strategy.type_()
}
