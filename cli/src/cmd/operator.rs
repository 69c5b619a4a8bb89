use std::net::SocketAddr;

use anyhow::Context;
use kan_operator::{BuildConfig, LeaderElection, OperatorConfig};

/// Run the Kubernetes operator (RecallQueue, RecallGateway and RecallExperiment controllers).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Namespace to watch; repeat or comma-separate for several. All namespaces when unset.
    #[arg(
        long = "namespace",
        env = "KAN_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Image of worker and gateway pods whose spec names none.
    #[arg(long, env = "KAN_DEFAULT_IMAGE")]
    pub default_image: Option<String>,
    /// imagePullPolicy of worker and gateway containers (Always, IfNotPresent, Never).
    #[arg(long, env = "KAN_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: Option<String>,
    /// OTLP endpoint passed to worker and gateway pods.
    #[arg(long, env = "KAN_CHILD_OTLP_ENDPOINT")]
    pub child_otlp_endpoint: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub listener: crate::cmd::listen::ListenerArgs,
    /// Elect a leader on a Lease so only one replica writes (needed with more than one replica).
    #[arg(long, env = "KAN_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "kan-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds the Lease stays valid without renewal: a standby takes over from a leader that
    /// crashed within this plus --lease-retry-s.
    #[arg(long, env = "KAN_LEASE_DURATION_S", default_value_t = kan_operator::leader::DEFAULT_DURATION_S)]
    pub lease_duration_s: u64,
    /// Seconds before expiry at which the leader renews the Lease; a third of
    /// --lease-duration-s (at least 2) when unset.
    #[arg(long, env = "KAN_LEASE_GRACE_S")]
    pub lease_grace_s: Option<u64>,
    /// Seconds between a standby's reads of the Lease: a standby takes over from a leader that
    /// stopped (and released the Lease) within this.
    #[arg(long, env = "KAN_LEASE_RETRY_S", default_value_t = kan_operator::leader::DEFAULT_RETRY_S)]
    pub lease_retry_s: u64,
    /// Log format (the filter comes from KAN_LOG, default info; spans go to
    /// OTEL_EXPORTER_OTLP_ENDPOINT when set).
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: crate::telemetry::LogFormat,
    /// Seconds between two polls of an experiment's online readout from its gateway (into
    /// RecallExperiment status.readout); 0 turns polling off.
    #[arg(long, env = "KAN_READOUT_PERIOD_S", default_value_t = kan_operator::readout::DEFAULT_PERIOD.as_secs())]
    pub readout_period_s: u64,
    /// Milliseconds a gateway pod gets to answer a readout poll.
    #[arg(long, env = "KAN_READOUT_TIMEOUT_MS", default_value_t = kan_operator::readout::DEFAULT_TIMEOUT.as_millis() as u64)]
    pub readout_timeout_ms: u64,
    /// Base URL to poll readouts from instead of every ready pod of the gateway's Service (an
    /// operator outside the cluster, tests); `{namespace}`, `{gateway}` and `{service}` are
    /// replaced, e.g. `http://127.0.0.1:8001/api/v1/namespaces/{namespace}/services/{service}:http/proxy`
    /// behind `kubectl proxy`. It then reads one pod of the gateway, not their sum.
    #[arg(long, env = "KAN_READOUT_URL")]
    pub readout_url: Option<String>,
    /// Identity in the Lease and in events (the pod name); the host name when unset.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.lease_duration_s < 4 {
        anyhow::bail!("--lease-duration-s must be at least 4 seconds");
    }
    let identity = args
        .identity
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("kan-operator-{}", std::process::id()));
    let election = LeaderElection {
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace,
        identity: identity.clone(),
        duration_s: args.lease_duration_s,
        grace_s: args
            .lease_grace_s
            .unwrap_or_else(|| 2.max(args.lease_duration_s / 3)),
        retry_s: args.lease_retry_s,
    };
    if args.leader_elect {
        election
            .check()
            .map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
    }
    let mut build = BuildConfig::default();
    if let Some(image) = args.default_image {
        build.default_image = image;
    }
    build.image_pull_policy = args.image_pull_policy;
    build.otlp_endpoint = args.child_otlp_endpoint;
    let cfg = OperatorConfig {
        build,
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|ns| !ns.trim().is_empty())
            .collect(),
        leader_election: args.leader_elect.then_some(election),
        listen: args.listen,
        listener: args.listener.limits("operator"),
        instance: Some(identity),
        readout: kan_operator::readout::ReadoutConfig {
            period: (args.readout_period_s > 0)
                .then(|| std::time::Duration::from_secs(args.readout_period_s)),
            timeout: std::time::Duration::from_millis(args.readout_timeout_ms.max(1)),
            url: args.readout_url.filter(|u| !u.trim().is_empty()),
        },
    };

    let log_format = args.log_format;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        // Inside the runtime: the OTLP exporter needs one.
        let telemetry = crate::telemetry::init("kan-operator", log_format)?;
        let client = kube::Client::try_default().await.context(
            "connecting to the Kubernetes API (in-cluster service account or KUBECONFIG)",
        )?;
        kan_operator::run(
            cfg,
            client,
            telemetry.metrics.clone(),
            crate::signal::shutdown(),
        )
        .await
        .context("kan operator")
    })
}
