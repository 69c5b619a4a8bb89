//! What several `kan bench` targets share: running a benchmark on a runtime of its own and
//! printing its report, and the HNSW flags. The targets depend on this module and `bench`
//! depends on the targets, never the other way round.

use anyhow::Context;
use kan_worker::index::hnsw::HnswParams;

/// Runs a benchmark on a runtime of `threads` workers and prints its report as JSON.
pub fn run_and_print<R: serde::Serialize, E: std::error::Error + Send + Sync + 'static>(
    threads: usize,
    what: &'static str,
    bench: impl std::future::Future<Output = Result<R, E>>,
) -> anyhow::Result<()> {
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
