//! `kan bench freshness`: event → recall freshness (social, trending) under load, and ingestion
//! throughput, with the store on loopback (see [`kan_bench::freshness`]).

use std::time::Duration;

use kan_bench::freshness::{FreshnessConfig, run as run_bench};

/// Measure event-to-recall freshness and ingestion throughput (store on loopback).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Engagements whose freshness is measured.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// Redis to use (`redis://127.0.0.1:PORT`); without it a `redis-server` is started on a
    /// free loopback port (appendonly, appendfsync always) and stopped at the end.
    #[arg(long)]
    pub redis: Option<String>,
    /// Use the in-process store instead of Redis.
    #[arg(long)]
    pub in_process: bool,
    /// Clients sending recall requests to the gateway meanwhile (one in flight each).
    #[arg(long, default_value_t = 4)]
    pub load_concurrency: usize,
    /// Seconds of the ingestion throughput phase.
    #[arg(long, default_value_t = 5)]
    pub ingest_seconds: u64,
    /// Concurrent ingesting clients (batches of 100 events).
    #[arg(long, default_value_t = 8)]
    pub ingest_concurrency: usize,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = FreshnessConfig {
        events: args.events,
        redis: args.redis,
        in_process: args.in_process,
        load_concurrency: args.load_concurrency,
        ingest: Duration::from_secs(args.ingest_seconds),
        ingest_concurrency: args.ingest_concurrency,
    };
    super::bench_shared::run_and_print(args.threads, "freshness benchmark", async move {
        run_bench(&config).await
    })
}
