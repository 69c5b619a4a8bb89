//! `kan bench soak`: the gateway under sustained overload (capacity, then N× capacity open-loop
//! with one queue killed and one slowed mid-run), on the `kan bench gateway` machinery.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kan_api::crd::MergePolicy;
use kan_api::routing::RoutingConfig;
use kan_bench::gateway::BenchConfig;
use kan_bench::soak::{GatewayUnderTest, SoakConfig, SpawnedGateway, soak};

/// Soak the gateway: measure capacity, offer a multiple of it for a while, report as JSON.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fake queues (at least 3: one is killed and one slowed mid-run).
    #[arg(long, default_value_t = 5)]
    pub queues: usize,
    #[arg(long, default_value_t = 300)]
    pub candidates: usize,
    /// Latency of every fake queue in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub queue_latency_ms: u64,
    /// Length of the capacity measurement (closed loop), in seconds.
    #[arg(long, default_value_t = 5)]
    pub capacity_s: u64,
    /// Clients of the capacity measurement (one request in flight each).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Offered load as a multiple of the measured capacity.
    #[arg(long, default_value_t = 10.0)]
    pub overload: f64,
    /// Length of the overload phase, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    /// The gateway's request deadline, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub deadline_ms: i32,
    /// Candidates asked of the gateway.
    #[arg(long, default_value_t = 500)]
    pub k: u32,
    /// Client requests in flight at most (keeps the clients' sockets under the fd limit).
    #[arg(long, default_value_t = 4000)]
    pub max_client_in_flight: usize,
    /// The gateway's admission bound (requests in flight), as `kan gateway --max-in-flight`
    /// sets it; 0 serves without admission control (the "before" baseline).
    #[arg(long, default_value_t = kan_http::default_max_in_flight())]
    pub max_in_flight: usize,
    /// Runtime worker threads of the clients and fake queues.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Worker threads of the gateway's own runtime (in-process gateway only; `kan gateway`
    /// sizes its runtime from the cores).
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// Serve the gateway in this process instead of starting `kan gateway` as a child process
    /// (RSS and fds are then the whole process's, clients included).
    #[arg(long)]
    pub in_process: bool,
    /// Seconds of light load (50 requests a second) after the overload has drained, before RSS
    /// and fds are read again.
    #[arg(long, default_value_t = 5)]
    pub settle_s: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = SoakConfig {
        bench: BenchConfig {
            queues: args.queues,
            candidates: args.candidates,
            queue_latency: Duration::from_millis(args.queue_latency_ms),
            concurrency: args.concurrency.max(1),
            duration: Duration::from_secs(args.capacity_s.max(1)),
            warmup: Duration::from_secs(1),
            policy: MergePolicy::Rrf,
            k: args.k,
            gateway_threads: args.gateway_threads,
            compact_answers: true,
        },
        overload: args.overload,
        duration: Duration::from_secs(args.duration_s.max(1)),
        deadline_ms: args.deadline_ms,
        max_client_in_flight: args.max_client_in_flight.max(1),
        gateway: if args.in_process {
            GatewayUnderTest::InProcess {
                max_in_flight: (args.max_in_flight > 0).then_some(args.max_in_flight),
            }
        } else {
            GatewayUnderTest::Process(Arc::new(launcher(args.max_in_flight)?))
        },
        settle: Duration::from_secs(args.settle_s),
    };
    super::bench_shared::run_and_print(args.threads, "soak benchmark", soak(&config))
}

/// Starts `kan gateway` (this executable) on a free loopback port with the routing config in a
/// temporary directory, admission bounded by `max_in_flight` (0: unbounded, the baseline). Its
/// log goes to `gateway.log` in that directory.
fn launcher(
    max_in_flight: usize,
) -> anyhow::Result<impl Fn(&RoutingConfig) -> std::io::Result<SpawnedGateway> + Send + Sync> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let bound = if max_in_flight == 0 {
        tokio::sync::Semaphore::MAX_PERMITS
    } else {
        max_in_flight
    };
    Ok(move |routing: &RoutingConfig| {
        let config = dir.path().join("routing.json");
        std::fs::write(
            &config,
            serde_json::to_vec(routing).map_err(std::io::Error::other)?,
        )?;
        // The port is free when asked; nothing else on loopback races for it here.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.path().join("gateway.log"))?;
        let child = Command::new(&exe)
            .arg("gateway")
            .arg("--config")
            .arg(&config)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--max-in-flight={bound}"))
            .arg("--no-watch")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(SpawnedGateway {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
        })
    })
}
