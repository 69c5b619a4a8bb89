//! `kan bench worker`: the recall worker's load generator (see `kan_bench::worker`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kan_api::crd::StrategyType;
use kan_bench::worker::{BenchConfig, BenchReport, Latency, run as run_bench};

/// Benchmark a worker in-process on a synthetic bundle (vector strategies: HNSW vs exact scan).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Catalogue sizes to run, e.g. `--items 100000 --items 1000000`.
    #[arg(long, default_values_t = [100_000usize])]
    pub items: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    #[arg(long, default_value_t = 100)]
    pub k: u32,
    /// Any strategy; dssm, gat and item2vec also run the exact-scan baseline.
    #[arg(long, default_value = "dssm")]
    pub strategy: StrategyType,
    /// Skip the exact-scan baseline of vector strategies.
    #[arg(long)]
    pub skip_exact: bool,
    #[arg(long, default_value_t = 20)]
    pub history: usize,
    /// Clusters each request's history comes from (1: single-interest users).
    #[arg(long, default_value_t = kan_bench::bundles::INTERESTS)]
    pub interests: usize,
    /// User vectors of the encoder strategies' model, one run each, e.g. `--user-vectors 1
    /// --user-vectors 2`: 1 is the synthetic mean encoder (`user_embedding` [B, D]); K > 1 is
    /// `kan train`'s multi-interest pooling encoder ([B, K, D]: K searches merged by best score).
    #[arg(long, default_values_t = [1usize])]
    pub user_vectors: Vec<usize>,
    #[arg(long, default_value_t = 200)]
    pub recall_queries: usize,
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Open-loop rate in requests per second (skipped when unset).
    #[arg(long)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub hnsw: super::bench_shared::HnswArgs,
    /// ONNX Runtime library; defaults to $ORT_DYLIB_PATH.
    #[arg(long)]
    pub ort_dylib: Option<PathBuf>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Save HNSW graphs here and load them on reruns of the same size (load time instead of
    /// build time in `load_s`), as a worker with `--bundle-cache` does on restart.
    #[arg(long)]
    pub bundle_cache: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    for &items in &args.items {
        for &user_vectors in &args.user_vectors {
            run_one(&args, &runtime, items, user_vectors)?;
        }
    }
    Ok(())
}

/// A K-interest encoder over the benchmark's item vectors (`kan train`'s pooling, no tower).
fn interest_encoder(vectors: &[f32], dim: usize, k: usize) -> Result<Vec<u8>, String> {
    kan_train::strategies::interests::mean_encoder_onnx(vectors, dim, k).map_err(|e| e.to_string())
}

fn run_one(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    items: usize,
    user_vectors: usize,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "kan-bench-worker-{}-{items}-{user_vectors}",
        std::process::id()
    ));
    let config = BenchConfig {
        items,
        dim: args.dim,
        k: args.k,
        history: args.history,
        interests: args.interests,
        user_vectors,
        interest_encoder: Some(interest_encoder),
        strategy: args.strategy,
        recall_queries: args.recall_queries,
        duration: Duration::from_secs(args.duration_s.max(1)),
        concurrency: args.concurrency,
        rate: args.rate,
        skip_exact: args.skip_exact,
        hnsw: args.hnsw.params(),
        bundle_cache: args.bundle_cache.clone(),
        ort_dylib: args.ort_dylib.clone(),
        dir: dir.clone(),
    };
    let load_before = load_average();
    let report = runtime.block_on(run_bench(config));
    let _ = std::fs::remove_dir_all(&dir);
    let report = report
        .with_context(|| format!("benchmark at {items} items, {user_vectors} user vectors"))?;
    let load = format!("{} -> {}", load_before, load_average());
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["load_average"] = load.into();
        println!("{value}");
    } else {
        print(&report);
        println!("  load average (1/5/15 min) before -> after: {load}");
    }
    Ok(())
}

/// The 1/5/15-minute load averages, to print beside figures from a shared machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn row(name: &str, l: &Latency) {
    println!(
        "  {name:<14} {:>8.0} req/s  mean {:>7.3}  p50 {:>7.3}  p90 {:>7.3}  p99 {:>7.3}  p99.9 {:>7.3} ms  ({} requests)",
        l.throughput_rps, l.mean_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.requests
    );
}

fn print(r: &BenchReport) {
    println!(
        "{} items x {}-d, strategy {}, k {}, index {}, {} interests per history, {} user vector(s)",
        r.items, r.dim, r.strategy, r.k, r.index, r.interests, r.user_vectors
    );
    println!(
        "  load {:.1} s; {:.1} candidates per response",
        r.load_s, r.mean_candidates
    );
    row("served closed", &r.closed);
    if let Some(open) = &r.open {
        row("served open", open);
    }
    if let Some(exact) = &r.exact {
        row("exact closed", &exact.closed);
        println!(
            "  exact load {:.1} s; recall@{} hnsw vs exact {:.4}; latency ratio exact/hnsw (p50) {:.1}x",
            exact.load_s,
            r.k,
            exact.recall_at_k,
            exact.closed.p50_ms / r.closed.p50_ms.max(1e-9)
        );
    }
    if let (Some(ms), Some(share)) = (r.inference_mean_ms, r.inference_share) {
        println!(
            "  ort inference: {ms:.3} ms mean, {:.0}% of the served mean latency",
            share * 100.0
        );
    }
}
