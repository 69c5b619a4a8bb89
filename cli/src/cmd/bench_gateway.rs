//! `kan bench gateway`: gateway throughput, latency and overhead against in-process fake queues.

use std::time::Duration;

use kan_api::crd::MergePolicy;
use kan_bench::gateway::{BenchConfig, run as run_bench};

/// Benchmark the gateway: N fake queues × M candidates behind one gateway, driven over HTTP.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 5)]
    pub queues: usize,
    #[arg(long, default_value_t = 300)]
    pub candidates: usize,
    /// Latency of every fake queue in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub queue_latency_ms: u64,
    /// Concurrent clients (one request in flight each).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// rrf, weighted-interleave, quota or score.
    #[arg(long, default_value = "rrf", value_parser = parse_policy)]
    pub policy: MergePolicy,
    /// Candidates asked of the gateway.
    #[arg(long, default_value_t = 500)]
    pub k: u32,
    /// Runtime worker threads of the clients and fake queues.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Worker threads of the gateway's own runtime.
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// Fake queues answer JSON only, like workers from before the compact answer layout.
    #[arg(long)]
    pub json_answers: bool,
    /// Run with the telemetry `kan gateway` installs (Prometheus recorder, tracing subscriber
    /// at `KAN_LOG` or info, W3C propagator), so spans and metrics cost what they cost in
    /// production. Logs go to stderr.
    #[arg(long)]
    pub telemetry: bool,
}

fn parse_policy(s: &str) -> Result<MergePolicy, String> {
    s.parse()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = if args.telemetry {
        Some(crate::telemetry::init_to_stderr("kan-bench-gateway")?)
    } else {
        None
    };
    let config = BenchConfig {
        queues: args.queues,
        candidates: args.candidates,
        queue_latency: Duration::from_millis(args.queue_latency_ms),
        concurrency: args.concurrency.max(1),
        duration: Duration::from_secs(args.duration_s.max(1)),
        warmup: Duration::from_secs(args.warmup_s),
        policy: args.policy,
        k: args.k,
        gateway_threads: args.gateway_threads,
        compact_answers: !args.json_answers,
    };
    super::bench_shared::run_and_print(args.threads, "gateway benchmark", run_bench(&config))
}
