//! `kan gateway`: serve the merging gateway from a routing config file, reloading it on change.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use kan_gateway::Gateway;

use crate::cmd::listen::{AdmissionArgs, ListenerArgs};
use crate::cmd::signals::SignalsArgs;
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
    #[command(flatten)]
    pub signals: SignalsArgs,
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

/// The gateway's routes as `kan gateway` serves them: admission control from the flags, and the
/// bearer token on all but [`OPEN_PATHS`] when `--auth-token-file` is set.
fn router(
    args: &Args,
    gateway: &Gateway,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<axum::Router> {
    let mut router =
        gateway.router_with_admission(Some(metrics), args.admission.admission("gateway"));
    if let Some(store) = args.signals.store(false)? {
        router = router.merge(args.signals.routes(store, gateway.handle()));
    }
    match &args.auth_token_file {
        Some(path) => Ok(router.layer(kan_http::BearerAuth::from_file(path, OPEN_PATHS)?)),
        None => Ok(router),
    }
}

async fn serve(
    args: Args,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<()> {
    let gateway = match kan_gateway::load_config(&args.config).and_then(Gateway::new) {
        Ok(gateway) => gateway,
        // Without a watch nothing could ever replace the refused config.
        Err(e) if args.no_watch => {
            return Err(e)
                .with_context(|| format!("starting the gateway from {}", args.config.display()));
        }
        // A pod given a config it refuses waits (not ready, recalls 503) for a valid one
        // instead of crash-looping; the watch below loads it.
        Err(e) => {
            tracing::error!(config = %args.config.display(), error = %e, "routing config refused: not ready until a valid one arrives");
            Gateway::awaiting_config("", &e)
        }
    };
    let router = router(&args, &gateway, metrics.clone())?;
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
    kan_http::serve(
        listener,
        router,
        args.listener.limits("gateway"),
        crate::signal::shutdown(),
    )
    .await
    .context("serving HTTP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tower::ServiceExt;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn gateway() -> Gateway {
        Gateway::new(kan_api::routing::RoutingConfig {
            gateway: "gw".into(),
            // A queue without an endpoint: the routes under test never call it.
            endpoints: Default::default(),
            queues: vec![kan_api::crd::QueueRoute::named("popular")],
            merge: Default::default(),
            filters: Default::default(),
            fallback: None,
            deadline_ms: 100,
            circuit_breaker: None,
            exposure_log: None,
            experiments: Vec::new(),
        })
        .expect("gateway")
    }

    async fn status(router: &axum::Router, path: &str, token: Option<&str>) -> u16 {
        let mut request = axum::http::Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(axum::body::Body::empty()).expect("request");
        router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn with_a_token_file_stats_and_ui_need_the_token_and_probes_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef-token\n").expect("write");
        let cli = Cli::try_parse_from(["kan", "--auth-token-file", path.to_str().expect("utf-8")])
            .expect("flags");
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let router = router(&cli.args, &gateway(), metrics).expect("router");
        for path in ["/stats", "/ui", "/ui/config"] {
            assert_eq!(status(&router, path, None).await, 401, "{path}");
            assert_eq!(
                status(&router, path, Some("wrong-token-0123456789")).await,
                401
            );
            assert_eq!(
                status(&router, path, Some("0123456789abcdef-token")).await,
                200
            );
        }
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(status(&router, path, None).await, 200, "{path}");
        }
    }

    #[tokio::test]
    async fn without_a_token_file_nothing_asks_for_one_and_a_bad_file_is_an_error() {
        let cli = Cli::try_parse_from(["kan"]).expect("flags");
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let router = router(&cli.args, &gateway(), metrics.clone()).expect("router");
        assert_eq!(status(&router, "/stats", None).await, 200);
        let cli =
            Cli::try_parse_from(["kan", "--auth-token-file", "/nonexistent/token"]).expect("flags");
        assert!(super::router(&cli.args, &gateway(), metrics).is_err());
    }
}
