//! `kan bench worker|gateway|soak|platform|ann|freshness`: load generators. Each target lives in its own module.

/// Load-test a component and report latency percentiles.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub target: Target,
}

#[derive(clap::Subcommand, Debug)]
pub enum Target {
    /// Benchmark the recall worker in-process on synthetic bundles (ANN vs exact, ort share).
    Worker(super::bench_worker::Args),
    /// Benchmark the gateway.
    Gateway(super::bench_gateway::Args),
    /// Soak the gateway: N× its capacity open-loop, a queue killed and one slowed mid-run.
    Soak(super::bench_soak::Args),
    /// The whole platform (`kan up DIR` in its own process): capacity, CPU per request,
    /// open-loop latency at 25/50/75% of capacity.
    Platform(super::bench_platform::Args),
    /// Embedded HNSW vs exact scan on 1M-scale vectors; writes files a FAISS run can share.
    Ann(super::bench_ann::Args),
    /// Event → recall freshness (social, trending) under load, and ingestion throughput.
    Freshness(super::bench_freshness::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.target {
        Target::Worker(args) => super::bench_worker::run(args),
        Target::Gateway(args) => super::bench_gateway::run(args),
        Target::Soak(args) => super::bench_soak::run(args),
        Target::Platform(args) => super::bench_platform::run(args),
        Target::Ann(args) => super::bench_ann::run(args),
        Target::Freshness(args) => super::bench_freshness::run(args),
    }
}

use kan_worker::index::hnsw::HnswParams;

/// Runs a benchmark on a runtime of `threads` workers and prints its report as JSON.
pub fn run_and_print<R: serde::Serialize, E: std::error::Error + Send + Sync + 'static>(
    threads: usize,
    what: &'static str,
    bench: impl std::future::Future<Output = Result<R, E>>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(bench)
        .with_context(|| format!("running the {what}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// HNSW settings shared by `kan bench worker` and `kan bench ann`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct HnswArgs {
    #[arg(long, default_value_t = HnswParams::default().max_connections)]
    pub hnsw_m: usize,
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    pub hnsw_ef_construction: usize,
    #[arg(long, default_value_t = HnswParams::default().ef_search)]
    pub hnsw_ef: usize,
}

impl HnswArgs {
    pub fn params(self) -> HnswParams {
        HnswParams {
            max_connections: self.hnsw_m,
            ef_construction: self.hnsw_ef_construction,
            ef_search: self.hnsw_ef,
        }
    }
}
