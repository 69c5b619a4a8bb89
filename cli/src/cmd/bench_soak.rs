//! `kan bench soak`: the gateway under sustained overload (capacity, then N× capacity open-loop
//! with one queue killed and one slowed mid-run), on the `kan bench gateway` machinery.

use std::time::Duration;

use kan_api::crd::MergePolicy;
use kan_gateway::bench::BenchConfig;
use kan_gateway::soak::{SoakConfig, soak};

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
    /// Worker threads of the gateway's own runtime.
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
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
        max_in_flight: (args.max_in_flight > 0).then_some(args.max_in_flight),
    };
    super::bench::run_and_print(args.threads, "soak benchmark", soak(&config))
}
