//! `kan gateway`: serve the merging gateway from a routing config file, reloading it on change.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use kan_gateway::Gateway;

use crate::cmd::listen::{AdmissionArgs, ListenerArgs};
use crate::telemetry::{self, LogFormat};

/// Run the merging gateway (A/B assignment, fan-out, merge, filters) from a routing config.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Routing config (YAML or JSON); watched and hot-reloaded.
    #[arg(long, default_value = "/etc/kan/routing.yaml")]
    pub config: PathBuf,
    /// Address of /v1/recall, /healthz, /readyz, /metrics and /stats.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Also serve /metrics on this address.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding a bearer token that /v1/recall, /stats and /ui then require
    /// (`Authorization: Bearer <token>`, 16 characters at least); /healthz, /readyz and /metrics
    /// stay open for probes and scrapers.
    #[arg(long, env = "KAN_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Do not watch the config file for changes.
    #[arg(long)]
    pub no_watch: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub listener: ListenerArgs,
    #[command(flatten)]
    pub admission: AdmissionArgs,
}

/// Paths served without the bearer token: probes and the Prometheus scrape.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

pub fn run(args: Args) -> anyhow::Result<()> {
    // Held until the end: flushes spans on drop.
    let telemetry = telemetry::init("kan-gateway", args.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(serve(args, telemetry.metrics.clone()))
}

async fn serve(
    args: Args,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<()> {
    let config = kan_gateway::load_config(&args.config)?;
    let gateway = Gateway::new(config)
        .with_context(|| format!("starting the gateway from {}", args.config.display()))?;
    let _watcher = if args.no_watch {
        None
    } else {
        Some(kan_gateway::watch(gateway.handle(), &args.config)?)
    };
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --metrics-listen {addr}"))?;
        let router = kan_gateway::server::metrics_router(metrics.clone());
        let limits = args.listener.limits("gateway-metrics");
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
    tracing::info!(listen = %args.listen, config = %args.config.display(), hash = %gateway.handle().config_hash(), "gateway serving");
    let mut router =
        gateway.router_with_admission(Some(metrics), args.admission.admission("gateway"));
    if let Some(path) = &args.auth_token_file {
        router = router.layer(kan_http::BearerAuth::from_file(path, OPEN_PATHS)?);
    }
    kan_http::serve(
        listener,
        router,
        args.listener.limits("gateway"),
        crate::signal::shutdown(),
    )
    .await
    .context("serving HTTP")
}
