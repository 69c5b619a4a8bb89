//! The gateway: the live routing config and the recall pipeline, a fixed template —
//! assign arms → fan out under deadlines → merge → propensity boost → filters (and fallback
//! fill) → truncate.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use kan_api::crd::QueueRoute;
use kan_api::routing::RoutingConfig;
use kan_api::wire::{ExposureRecord, GatewayResponse, QueueReport, QueueStatus, RecallRequest};
use kan_core::propensity::Stage;
use tokio::time::Instant;

use crate::assign;
use crate::breaker::Breakers;
use crate::config::Compiled;
use crate::error::{Error, Result};
use crate::fanout::{CallLimits, FanOut, QueueCall, QueueOutcome};
use crate::filter::{BlocklistFilter, ExcludeFilter, Filter, MaxPerSourceFilter, run_all};
use crate::merge::{self, CandidateRef, QueueList};
use crate::metrics as m;
use crate::propensity::PropensityFilter;
use crate::response::ResponseView;
use crate::stats::{Stats, StatsSnapshot};

struct Inner {
    state: ArcSwap<Compiled>,
    fanout: FanOut,
    breakers: Breakers,
    stats: Stats,
    /// The last rejected config, cleared by the next accepted one.
    last_error: Mutex<Option<String>>,
    /// A refused edit of the config's source (`kan up`'s directory), set and cleared by
    /// whoever reads it; accepted routing updates leave it alone.
    source_error: Mutex<Option<String>>,
    /// False while the gateway waits for its first valid config
    /// ([`Gateway::awaiting_config`]): it then refuses recalls and is not ready.
    configured: AtomicBool,
    /// Why each queue that has a problem (bundle not loaded, reload failed) has it, as told by
    /// whoever runs the queues (`kan up`); shown by the console until cleared.
    queue_problems: Mutex<BTreeMap<String, String>>,
    /// Item id → display title from the bundles, for the console (`kan up` fills it).
    titles: ArcSwap<HashMap<String, String>>,
}

/// A running gateway; cheap to clone (all clones share one config, pool and stats).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

/// Pushes new configs into a running gateway and reads its state (for `kan up`, the file
/// watcher and console pages).
#[derive(Clone)]
pub struct GatewayHandle {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Validates `config` and prepares the gateway (no I/O except opening the exposure log).
    pub fn new(config: RoutingConfig) -> Result<Self> {
        m::describe();
        let compiled = Compiled::new(config, None)?;
        Ok(Self::with_state(compiled, true))
    }

    /// A gateway whose first config was refused with `error`: it serves no recall (`503`) and
    /// is not ready until [`GatewayHandle::update`] accepts one (the file watcher calls it), so
    /// a pod started on a bad config waits for a good one instead of crash-looping.
    pub fn awaiting_config(gateway: &str, error: &Error) -> Self {
        m::describe();
        let gateway = Self::with_state(Compiled::placeholder(gateway), false);
        gateway.handle().reject(error);
        gateway
    }

    fn with_state(compiled: Compiled, configured: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: ArcSwap::from_pointee(compiled),
                fanout: FanOut::new(),
                breakers: Breakers::default(),
                stats: Stats::default(),
                last_error: Mutex::new(None),
                source_error: Mutex::new(None),
                configured: AtomicBool::new(configured),
                queue_problems: Mutex::new(BTreeMap::new()),
                titles: ArcSwap::from_pointee(HashMap::new()),
            }),
        }
    }

    /// The queues in this process that the gateway calls without a socket (`kan up`
    /// registers its workers' routers here).
    pub fn local_queues(&self) -> crate::local::LocalQueues {
        self.inner.fanout.local_queues()
    }

    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            inner: self.inner.clone(),
        }
    }

    /// Serves one request (already validated) that arrived at `arrived`: the deadline runs from
    /// then, so time spent reading and parsing it counts. Fails only when a `required` queue
    /// failed.
    pub async fn recall(
        &self,
        request: &RecallRequest,
        arrived: Instant,
        parent: &opentelemetry::Context,
    ) -> Result<GatewayResponse> {
        self.recall_with(request, arrived, parent, |view| Ok(view.to_response()))
            .await
    }

    /// [`Gateway::recall`] with the response already encoded as JSON — what the HTTP server
    /// sends, written straight from the merge without an owned copy of every candidate.
    pub async fn recall_json(
        &self,
        request: &RecallRequest,
        arrived: Instant,
        parent: &opentelemetry::Context,
    ) -> Result<Vec<u8>> {
        self.recall_with(request, arrived, parent, |view| {
            view.to_json().map_err(Error::EncodeResponse)
        })
        .await
    }

    /// The pipeline; `finish` turns the response, which borrows from this request's queue
    /// answers, into what the caller keeps.
    async fn recall_with<R>(
        &self,
        request: &RecallRequest,
        start: Instant,
        parent: &opentelemetry::Context,
        finish: impl FnOnce(&ResponseView<'_, '_>) -> Result<R>,
    ) -> Result<R> {
        if !self.inner.configured.load(Ordering::Acquire) {
            return Err(Error::NotConfigured {
                reason: self
                    .handle()
                    .last_error()
                    .unwrap_or_else(|| "none offered".into()),
            });
        }
        // In-flight requests keep the config they started with, whatever reloads happen.
        let state = self.inner.state.load_full();
        let config = &state.config;

        // 1. Assign arms.
        let route = assign::route(config, &request.user_id);
        for a in &route.assignments {
            metrics::counter!(m::ARM_REQUESTS, "layer" => a.layer.clone(), "experiment" => a.experiment.clone(), "arm" => a.arm.clone())
                .increment(1);
        }
        let k = request
            .k
            .map_or(route.merge.total.max(1) as usize, |k| k as usize);

        // 2. Fan out: the route's queues, plus the fallback when it is not one of them.
        let fallback_route = route
            .fallback
            .filter(|f| !route.queues.iter().any(|q| q.name == *f))
            .map(QueueRoute::named);
        let mut calls: Vec<QueueCall<'_>> = route
            .queues
            .iter()
            .map(|q| queue_call(&state, q, k))
            .collect();
        calls.extend(fallback_route.as_ref().map(|q| queue_call(&state, q, k)));
        let deadline = Duration::from_millis(config.deadline_ms.max(1) as u64);
        let limits = CallLimits {
            deadline: start + deadline,
            default_timeout: deadline,
            breaker: config
                .circuit_breaker
                .as_ref()
                .map(|spec| (&self.inner.breakers, spec)),
        };
        let outcomes = self
            .inner
            .fanout
            .call_all(&calls, request, limits, parent)
            .await;
        // A queue that answered from its bundle alone (signal store down) degrades the answer too.
        let degraded = outcomes
            .iter()
            .any(|o| o.status != QueueStatus::Ok || o.candidates.degraded());

        if let Some((q, o)) = route
            .queues
            .iter()
            .zip(&outcomes)
            .find(|(q, o)| q.required && o.status != QueueStatus::Ok)
        {
            let error = Error::RequiredQueueFailed {
                queue: q.name.clone(),
                status: o.status.as_str(),
                detail: o.detail.clone().unwrap_or_default(),
            };
            let reports = reports(&outcomes, false);
            self.inner.stats.record(&route.assignments, &reports, true);
            metrics::counter!(m::REQUESTS, "outcome" => "unavailable").increment(1);
            return Err(error);
        }

        // 3. Merge the route's queues that answered; ids are borrowed from their answers.
        let answers: Vec<Vec<CandidateRef<'_>>> =
            outcomes.iter().map(|o| o.candidates.refs()).collect();
        let lists: Vec<QueueList<'_>> = route
            .queues
            .iter()
            .zip(&outcomes)
            .zip(&answers)
            .filter(|((_, o), _)| o.status == QueueStatus::Ok)
            .map(|((q, _), candidates)| QueueList {
                queue: &q.name,
                weight: q.weight,
                quota: q.quota.map(|n| n.max(0) as usize),
                candidates,
            })
            .collect();
        let mut merged = merge::merge(route.merge, &lists);
        metrics::histogram!(m::MERGE_SIZE).record(merged.len() as f64);

        // 4. Propensity boost for the audience the request's context names.
        let propensity = config
            .filters
            .propensity
            .as_ref()
            .zip(state.propensity.as_deref().map(|l| &l.table))
            .and_then(|(spec, table)| Stage::new(spec, table, &request.context));
        if let Some(stage) = &propensity {
            stage.boost(&mut merged);
        }

        // 5. Filters, each keeping or removing; then the fallback fills what is missing.
        let exclude = ExcludeFilter::new(&request.exclude);
        let blocklist = BlocklistFilter::new(&state.blocklist);
        let min_lift = PropensityFilter::new(propensity.as_ref());
        let per_source =
            MaxPerSourceFilter::new(config.filters.max_per_source.map(|n| n.max(1) as usize));
        let filters = [&exclude as &dyn Filter, &blocklist, &min_lift, &per_source];
        let mut kept = run_all(&filters, merged);
        if let Some(name) = route.fallback
            && let Some(i) = outcomes.iter().position(|o| o.name == name)
            && kept.len() < k
        {
            // Fallback items go through the same filter stages (max_per_source included).
            let before = kept.len();
            merge::append_fallback(&mut kept, &answers[i], name);
            kept = run_all(&filters, kept);
            let added = kept.len().min(k).saturating_sub(before);
            metrics::counter!(m::FALLBACK_FILLED).increment(added as u64);
        }

        // 6. Truncate.
        kept.truncate(k);

        let queues = reports(&outcomes, request.debug);
        let view = ResponseView {
            candidates: &kept,
            assignments: &route.assignments,
            queues: &queues,
            degraded,
            took_ms: start.elapsed().as_secs_f64() * 1000.0,
        };
        let answer = finish(&view)?;
        self.after_response(request, &view, &state);
        Ok(answer)
    }

    /// Metrics, stats and the exposure log.
    fn after_response(&self, request: &RecallRequest, response: &ResponseView, state: &Compiled) {
        let outcome = if response.degraded { "degraded" } else { "ok" };
        metrics::counter!(m::REQUESTS, "outcome" => outcome).increment(1);
        metrics::histogram!(m::REQUEST_SECONDS).record(response.took_ms / 1000.0);
        if response.degraded {
            metrics::counter!(m::DEGRADED).increment(1);
        }
        self.inner
            .stats
            .record(response.assignments, response.queues, response.degraded);
        if let Some(log) = &state.exposure {
            log.send(ExposureRecord {
                ts_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                user_id: request.user_id.clone(),
                assignments: response.assignments.to_vec(),
                items: response
                    .candidates
                    .iter()
                    .map(|c| c.item_id.to_string())
                    .collect(),
                degraded: response.degraded,
            });
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.handle().stats()
    }
}

/// A queue is asked for its quota when it has one, else for `k`.
fn queue_call<'a>(state: &'a Compiled, route: &'a QueueRoute, k: usize) -> QueueCall<'a> {
    QueueCall {
        url: state.urls.get(&route.name),
        k: route.quota.map_or(k, |quota| quota.max(1) as usize) as u32,
        route,
    }
}

fn reports(outcomes: &[QueueOutcome], debug: bool) -> Vec<QueueReport> {
    outcomes
        .iter()
        .map(|o| QueueReport {
            name: o.name.clone(),
            returned: o.candidates.len(),
            took_ms: o.took_ms,
            status: o.status,
            detail: o.detail.clone(),
            unknown_history: o.candidates.unknown_history(),
            version: o.candidates.version().map(str::to_string),
            candidates: debug.then(|| o.candidates.to_candidates()),
        })
        .collect()
}

impl GatewayHandle {
    /// Validates `config` and swaps it in atomically; requests already running finish on the
    /// old one. A rejected config leaves the old one serving and is reported by
    /// [`GatewayHandle::last_error`] (and `/readyz`) until a later config is accepted.
    pub fn update(&self, config: RoutingConfig) -> Result<()> {
        let previous = self.inner.state.load();
        match Compiled::new(config, Some(&previous)) {
            Ok(compiled) => {
                tracing::info!(hash = %compiled.hash, gateway = %compiled.config.gateway, "routing config loaded");
                self.inner.state.store(Arc::new(compiled));
                *self.lock_error() = None;
                self.inner.configured.store(true, Ordering::Release);
                metrics::counter!(m::RELOADS, "result" => "ok").increment(1);
                Ok(())
            }
            Err(e) => {
                self.reject(&e);
                Err(e)
            }
        }
    }

    /// Records a config that could not even be read or parsed; the old config keeps serving.
    pub fn reject(&self, error: &Error) {
        tracing::error!(error = %error, "routing config rejected, the previous one keeps serving");
        *self.lock_error() = Some(error.to_string());
        metrics::counter!(m::RELOADS, "result" => "invalid").increment(1);
    }

    /// False while no valid config has been loaded ([`Gateway::awaiting_config`]).
    pub fn configured(&self) -> bool {
        self.inner.configured.load(Ordering::Acquire)
    }

    /// The config now serving (an empty one while not [`configured`](Self::configured)).
    pub fn config(&self) -> RoutingConfig {
        self.inner.state.load().config.clone()
    }

    /// Content hash of the config now serving.
    pub fn config_hash(&self) -> String {
        self.inner.state.load().hash.clone()
    }

    /// What `/readyz`, `/stats` and the console report: a refused edit of the source, else the
    /// last rejected config.
    pub fn last_error(&self) -> Option<String> {
        let source = lock(&self.inner.source_error).clone();
        source.or_else(|| self.lock_error().clone())
    }

    /// Sets (or with `None` clears) a refused edit of the config's source, shown by
    /// [`GatewayHandle::last_error`] until cleared while the previous config keeps serving.
    /// Logging is the caller's: it knows when the problem first appeared and when it went away.
    pub fn set_source_error(&self, error: Option<String>) {
        *lock(&self.inner.source_error) = error;
    }

    /// Replaces the queues' problems (queue → reason); an empty map clears them. Like
    /// [`set_source_error`](Self::set_source_error), logging is the caller's.
    pub fn set_queue_problems(&self, problems: BTreeMap<String, String>) {
        *lock(&self.inner.queue_problems) = problems;
    }

    /// Replaces the item titles the console shows beside item ids.
    pub fn set_titles(&self, titles: HashMap<String, String>) {
        self.inner.titles.store(Arc::new(titles));
    }

    /// The titles of those of `ids` that have one.
    pub fn titles<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
        let titles = self.inner.titles.load();
        ids.into_iter()
            .filter_map(|id| titles.get(id).map(|t| (id.to_string(), t.clone())))
            .collect()
    }

    /// Live counters for console pages.
    pub fn stats(&self) -> StatsSnapshot {
        let state = self.inner.state.load();
        let mut snapshot = self.inner.stats.snapshot();
        // Rows for the queues the config routes to, and only those: a queue removed from the
        // config is no longer shown (its counts return if it comes back).
        let referenced: std::collections::BTreeSet<String> =
            state.config.referenced_queues().into_iter().collect();
        snapshot.queues.retain(|name, _| referenced.contains(name));
        for name in referenced {
            snapshot.queues.entry(name).or_default();
        }
        for (name, q) in &mut snapshot.queues {
            q.circuit = self.inner.breakers.state(name).label().to_string();
        }
        snapshot.gateway = state.config.gateway.clone();
        snapshot.config_hash = state.hash.clone();
        snapshot.last_reload_error = self.last_error();
        snapshot.queue_problems = lock(&self.inner.queue_problems).clone();
        snapshot
    }

    fn lock_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        lock(&self.inner.last_error)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
