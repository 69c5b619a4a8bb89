//! The gateway benchmark without the CLI (same code as `kan bench gateway`):
//! `cargo run --release -p kan-gateway --example bench_gateway -- [concurrency] [seconds] [queue_latency_ms] [threads]`.

use std::time::Duration;

use kan_api::crd::MergePolicy;
use kan_gateway::bench::{BenchConfig, run};

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let config = BenchConfig {
        queues: 5,
        candidates: 300,
        queue_latency: Duration::from_millis(arg(2, 0)),
        concurrency: arg(0, 16) as usize,
        duration: Duration::from_secs(arg(1, 10)),
        warmup: Duration::from_secs(2),
        policy: MergePolicy::Rrf,
        k: 500,
    };
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(arg(3, 2) as usize)
        .enable_all()
        .build()?
        .block_on(run(&config))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?
    );
    Ok(())
}
