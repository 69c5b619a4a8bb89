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
