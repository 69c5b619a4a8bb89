//! `kan bench ann`: embedded HNSW vs exact scan (see `kan_bench::ann`); run
//! `bench/serving/faiss_hnsw.py --dir OUT` afterwards for FAISS on the same files.

use std::path::PathBuf;

use anyhow::Context;
use kan_bench::ann::{AnnConfig, AnnReport, run as run_bench};

/// Benchmark the embedded ANN index against an exact scan; write base/queries/ground truth.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Item vectors (.npy float32, raw .f32 with --dim, or a bundle's item_vectors.safetensors);
    /// synthetic clustered vectors when unset.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// Synthetic catalogue size.
    #[arg(long, default_value_t = 1_000_000)]
    pub items: usize,
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    #[arg(long, default_value_t = 100)]
    pub k: usize,
    /// Random items averaged into one query (a user vector).
    #[arg(long, default_value_t = 20)]
    pub history: usize,
    /// Clusters a synthetic query's items come from (1: single-interest users).
    #[arg(long, default_value_t = kan_bench::bundles::INTERESTS)]
    pub interests: usize,
    #[command(flatten)]
    pub hnsw: super::bench_shared::HnswArgs,
    /// Throughput is measured with 1..=threads threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Queries timed one by one on the exact scan.
    #[arg(long, default_value_t = 200)]
    pub exact_latency_queries: usize,
    /// Output folder: base.npy, queries.npy, gt.npy, kan.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Further search widths to measure on the same graph, e.g. `64,128,512`.
    #[arg(long, value_delimiter = ',')]
    pub ef_sweep: Vec<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = AnnConfig {
        vectors: args.vectors,
        items: args.items,
        dim: args.dim,
        queries: args.queries,
        k: args.k,
        history: args.history,
        interests: args.interests,
        hnsw: args.hnsw.params(),
        threads: args.threads,
        exact_latency_queries: args.exact_latency_queries,
        out: args.out,
        ef_sweep: args.ef_sweep,
    };
    let report = run_bench(&config).context("running the ANN benchmark")?;
    print(&report);
    Ok(())
}

fn print(r: &AnnReport) {
    println!(
        "{} items x {}-d from {}; {} queries, k {}, M {}, efConstruction {}, efSearch {}",
        r.items, r.dim, r.source, r.queries, r.k, r.m, r.ef_construction, r.ef_search
    );
    for e in &r.engines {
        let qps: Vec<String> = e
            .throughput
            .iter()
            .map(|t| format!("{} thr {:.0} q/s", t.threads, t.qps))
            .collect();
        println!(
            "  {:<22} build {:>7.1} s  recall@{} {:.4}  p50 {:.3} ms  p99 {:.3} ms  {}",
            e.engine,
            e.build_s,
            r.k,
            e.recall_at_k,
            e.p50_ms,
            e.p99_ms,
            qps.join(", ")
        );
    }
    for p in &r.ef_sweep {
        println!(
            "  hnsw ef {:<5} recall@{} {:.4}  p50 {:.3} ms  p99 {:.3} ms",
            p.ef_search, r.k, p.recall_at_k, p.p50_ms, p.p99_ms
        );
    }
}
