//! The running side of `kan up`: workers on loopback ports, the gateway, and the poll loop that
//! applies directory edits and readiness changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kan_api::routing::RoutingConfig;
use kan_api::worker_config::WorkerConfig;
use kan_gateway::Gateway;
use kan_gateway::local::LocalQueues;
use kan_worker::bundle::Bundle;
use kan_worker::{Worker, WorkerOptions};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::oneshot;

use super::dir::{DirReader, DirState, Trouble, TroubleChange};
use super::plan::{Plan, plan};
use super::{Args, QueueCalls};
use crate::cmd::listen::{AdmissionArgs, ListenerArgs};

struct RunningWorker {
    config: WorkerConfig,
    worker: Worker,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    /// Where the gateway finds this worker's router in-process, if it does.
    local: Option<(LocalQueues, String)>,
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        if let Some((local, authority)) = &self.local {
            local.unregister(authority);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Platform {
    options: WorkerOptions,
    listener: ListenerArgs,
    admission: AdmissionArgs,
    metrics: PrometheusHandle,
    /// Set when queue calls go to the workers' routers in-process.
    local: Option<LocalQueues>,
    workers: BTreeMap<String, RunningWorker>,
    gateway: Gateway,
    plan: Plan,
    /// Queues routed by the last accepted routing; `None` forces a re-render.
    ready: Option<Vec<String>>,
    /// Queues of the plan that could not be started, with why (retried on the next change).
    not_started: BTreeMap<String, String>,
    /// The (queue, bundle version) pairs the console's titles were read from.
    titles_from: Vec<(String, String)>,
}

pub async fn run(args: Args, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let mut reader = DirReader::default();
    let DirState {
        objects,
        mut fingerprint,
        ..
    } = reader.read(&args.dir)?;
    let first = plan(&objects, &args.dir)?;
    let store = args
        .signals
        .store(true)?
        .context("kan up always has a signal store")?;
    let options = WorkerOptions {
        bundle_cache: args.bundle_cache.clone(),
        ort_dylib: args.ort_dylib.clone(),
        signals: Some(store.clone()),
        ..WorkerOptions::default()
    };
    let initial =
        RoutingConfig::render(&first.gateway_name, &first.gateway, &BTreeMap::new(), []).config;
    let gateway = Gateway::new(initial).context("starting the gateway")?;
    let mut platform = Platform {
        options,
        listener: args.listener.clone(),
        admission: args.admission.clone(),
        metrics: metrics.clone(),
        local: (args.queue_calls == QueueCalls::InProcess).then(|| gateway.local_queues()),
        workers: BTreeMap::new(),
        gateway: gateway.clone(),
        plan: first.clone(),
        ready: None,
        not_started: BTreeMap::new(),
        titles_from: Vec::new(),
    };
    platform.apply(first).await;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the gateway to {}", args.listen))?;
    let router = gateway
        .router_with_admission(Some(metrics), args.admission.admission("gateway"))
        .merge(args.signals.routes(store.clone(), gateway.handle()));
    let (stop_gateway, gateway_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(kan_http::serve(
        listener,
        router,
        args.listener.limits("gateway"),
        async {
            let _ = gateway_stopped.await;
        },
    ));
    println!(
        "Kan is up: gateway http://{} (POST /v1/recall, POST /v1/events into the {} signal store, /readyz, /metrics, /stats), console http://{}/ui; {} queue(s); Ctrl-C stops",
        args.listen,
        store.name(),
        args.listen,
        platform.workers.len()
    );

    let stop = crate::signal::shutdown();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(args.poll_ms.max(50)));
    let mut trouble = Trouble::default();
    // A refused plan of the directory now served (kept until the directory changes again).
    let mut refused: Option<String> = None;
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {
                let now = match reader.read(&args.dir) {
                    Ok(state) => {
                        if state.fingerprint != fingerprint {
                            fingerprint = state.fingerprint;
                            refused = match plan(&state.objects, &args.dir) {
                                Ok(next) => {
                                    tracing::info!(dir = %args.dir.display(), "directory changed; applying");
                                    platform.apply(next).await;
                                    None
                                }
                                Err(e) => Some(format!("directory change refused: {e}")),
                            };
                        } else {
                            platform.refresh_routing().await;
                        }
                        let lines: Vec<String> = refused.iter().cloned().chain(state.waiting).collect();
                        (!lines.is_empty()).then(|| lines.join("\n"))
                    }
                    Err(e) => Some(format!("directory change refused: {e:#}")),
                };
                report(&mut trouble, now, &platform.gateway);
            }
        }
    }
    println!("shutting down");
    let _ = stop_gateway.send(());
    let _ = server.await;
    platform.workers.clear();
    Ok(())
}

/// Shows the directory's trouble in `/readyz`, `/stats` and the console, and logs it once per
/// change (plus a line when it is fixed) rather than every poll.
fn report(trouble: &mut Trouble, now: Option<String>, gateway: &Gateway) {
    let Some(change) = trouble.set(now) else {
        return;
    };
    match change {
        TroubleChange::Now(problem) => tracing::error!(
            problem = %problem,
            "the running platform keeps its previous state until this is fixed"
        ),
        TroubleChange::Fixed => tracing::info!("directory problem fixed; back to normal"),
    }
    gateway
        .handle()
        .set_source_error(trouble.current().map(str::to_string));
}

impl Platform {
    /// Moves the running workers and the gateway to `next`.
    async fn apply(&mut self, next: Plan) {
        self.workers
            .retain(|name, _| next.workers.contains_key(name));
        self.not_started.clear();
        for (name, config) in &next.workers {
            match self.workers.get(name) {
                Some(running) if running.config == *config => {}
                Some(running) => {
                    if let Err(e) = running.worker.reload(config.clone()).await {
                        tracing::error!(queue = %name, error = %e, "queue reload failed; the previous version keeps serving");
                    }
                    if let Some(r) = self.workers.get_mut(name) {
                        r.config = config.clone();
                    }
                }
                None => match self.start_worker(config.clone()).await {
                    Ok(running) => {
                        self.workers.insert(name.clone(), running);
                    }
                    Err(e) => {
                        let reason = format!("{e:#}");
                        tracing::error!(queue = %name, error = %reason, "queue not started");
                        self.not_started.insert(name.clone(), reason);
                    }
                },
            }
        }
        self.plan = next;
        self.ready = None;
        self.refresh_routing().await;
    }

    async fn start_worker(&self, config: WorkerConfig) -> anyhow::Result<RunningWorker> {
        let name = config.name.clone();
        let worker = Worker::start(config.clone(), self.options.clone())
            .await
            .with_context(|| format!("starting queue {name}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a worker port")?;
        let authority = listener.local_addr().context("worker address")?.to_string();
        let url = format!("http://{authority}");
        let router = worker
            .router_with_admission(Some(self.metrics.clone()), self.admission.admission(&name));
        let local = self.local.clone().map(|local| {
            local.register(&authority, router.clone());
            (local, authority)
        });
        let limits = self.listener.limits(&name);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = kan_http::serve(listener, router, limits, async {
                let _ = stopped.await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(queue = %name, error = %e, "worker server stopped");
            }
        });
        tracing::info!(queue = %config.name, %url, "queue started");
        Ok(RunningWorker {
            config,
            worker,
            url,
            stop: Some(stop),
            local,
        })
    }

    /// Re-renders the routing when the set of Ready queues changed: only Ready queues are routed.
    /// Also tells the gateway each queue's problem and the titles of the bundles now served, for
    /// the console.
    async fn refresh_routing(&mut self) {
        let mut ready = BTreeMap::new();
        let mut problems = self.not_started.clone();
        for (name, running) in &self.workers {
            let readiness = running.worker.readiness().await;
            if readiness.ready {
                ready.insert(name.clone(), running.url.clone());
            }
            if let Some(error) = readiness.error {
                problems.insert(name.clone(), error);
            }
        }
        let handle = self.gateway.handle();
        handle.set_queue_problems(problems);
        self.refresh_titles();
        let names: Vec<String> = ready.keys().cloned().collect();
        if self.ready.as_ref() == Some(&names) {
            return;
        }
        let plan = &self.plan;
        let rendered = RoutingConfig::render(
            &plan.gateway_name,
            &plan.gateway,
            &ready,
            plan.experiments.iter().map(|(n, s)| (n.as_str(), s)),
        );
        for excluded in &rendered.excluded {
            tracing::warn!(experiment = %excluded.name, reason = %excluded.reason, "experiment not routed");
        }
        match self.gateway.handle().update(rendered.config) {
            Ok(()) => {
                tracing::info!(ready = ?names, "routing updated");
                self.ready = Some(names);
            }
            Err(e) => {
                tracing::error!(error = %e, "routing rejected; the previous routing keeps serving")
            }
        }
    }

    /// Rereads the titles of the served bundles when a queue's bundle version changed.
    fn refresh_titles(&mut self) {
        let served: Vec<(String, String, Option<Arc<Bundle>>)> = self
            .workers
            .iter()
            .filter_map(|(name, running)| {
                let loaded = running.worker.current()?;
                Some((name.clone(), loaded.version.clone(), loaded.bundle.clone()))
            })
            .collect();
        let from: Vec<(String, String)> = served
            .iter()
            .map(|(name, version, _)| (name.clone(), version.clone()))
            .collect();
        if from == self.titles_from {
            return;
        }
        let mut titles = HashMap::new();
        for (name, _, bundle) in &served {
            let Some(bundle) = bundle else { continue };
            match bundle.titles() {
                Ok(more) => titles.extend(more),
                Err(e) => tracing::warn!(queue = %name, error = %e, "item titles not read"),
            }
        }
        self.gateway.handle().set_titles(titles);
        self.titles_from = from;
    }
}
