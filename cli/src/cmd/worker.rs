//! `kan worker`: serve one recall queue from its config (a RecallQueue manifest or the rendered
//! `{name, spec}` the operator writes), reloading on config change, bundle change and SIGHUP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kan_worker::{Worker, WorkerOptions};

use crate::cmd::listen::{AdmissionArgs, ListenerArgs};
use crate::telemetry::{self, LogFormat};

/// Run a recall worker: one strategy over one bundle, on `/v1/recall`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Worker config: a RecallQueue manifest or `{name, spec}` (ConfigMap key `worker.yaml`).
    #[arg(long, default_value = "/etc/kan/worker.yaml")]
    pub config: PathBuf,
    /// Address of /v1/recall, /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Also serve /metrics on this address.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for bundles downloaded over http(s).
    #[arg(long)]
    pub bundle_cache: Option<PathBuf>,
    /// ONNX Runtime shared library (libonnxruntime.so); defaults to $ORT_DYLIB_PATH.
    #[arg(long)]
    pub ort_dylib: Option<PathBuf>,
    /// Directory where items added through `POST /v1/items` are kept across restarts
    /// (`added-items.json`); without it they last until the process ends.
    #[arg(long, env = "KAN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// ONNX sessions per model (concurrent inferences).
    #[arg(long, default_value_t = 2)]
    pub session_pool: usize,
    /// Seconds between checks of the config file and the bundle's manifest for changes.
    #[arg(long, default_value_t = 10)]
    pub watch_interval_s: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub listener: ListenerArgs,
    #[command(flatten)]
    pub admission: AdmissionArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let telemetry = telemetry::init("kan-worker", args.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(serve(args, telemetry.metrics.clone()))
}

fn read_config(path: &PathBuf) -> anyhow::Result<(String, kan_api::worker_config::WorkerConfig)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let config = kan_api::manifest::parse_worker_config(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok((text, config))
}

async fn serve(
    args: Args,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<()> {
    let (mut text, config) = read_config(&args.config)?;
    let options = WorkerOptions {
        bundle_cache: args.bundle_cache.clone(),
        ort_dylib: args.ort_dylib.clone(),
        session_pool: args.session_pool,
        state_dir: args.state_dir.clone(),
        ..WorkerOptions::default()
    };
    let worker = Worker::start(config, options)
        .await
        .with_context(|| format!("starting the worker from {}", args.config.display()))?;
    let interval = Duration::from_secs(args.watch_interval_s.max(1));
    worker.spawn_watchers(interval);
    // Config reload: the operator rewrites the ConfigMap; Kubernetes updates the mounted file.
    let watched = worker.clone();
    let path = args.config.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            match read_config(&path) {
                Ok((new_text, config)) if new_text != text => {
                    text = new_text;
                    tracing::info!(config = %path.display(), "config changed, reloading");
                    if let Err(e) = watched.reload(config).await {
                        tracing::error!(error = %e, "config reload failed; the previous config keeps serving");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot read the config; keeping the current one")
                }
            }
        }
    });
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --metrics-listen {addr}"))?;
        let router = kan_worker::server::metrics_router(metrics.clone());
        let limits = args.listener.limits("worker-metrics");
        tokio::spawn(kan_http::serve(
            listener,
            router,
            limits,
            crate::signal::shutdown(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    tracing::info!(listen = %args.listen, queue = %worker.config().name, ready = worker.current().is_some(), "worker serving");
    let router = worker.router_with_admission(Some(metrics), args.admission.admission("worker"));
    kan_http::serve(
        listener,
        router,
        args.listener.limits("worker"),
        crate::signal::shutdown(),
    )
    .await
    .context("serving HTTP")
}
