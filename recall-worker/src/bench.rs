//! The worker load generator behind `kan bench worker`: a synthetic bundle of clustered vectors
//! served twice in-process — embedded HNSW and exact scan — with recall@k of the ANN against the
//! exact answer, closed-loop (max throughput) and open-loop (fixed rate) latency percentiles, and
//! the share of the ONNX encoder in the latency. Requests go through [`Worker::recall`] (the
//! whole request path minus HTTP parsing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kan_api::bundle::files;
use kan_api::crd::StrategyType;
use kan_api::wire::RecallRequest;
use kan_api::worker_config::WorkerConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};
use crate::index::hnsw::HnswParams;
use crate::inference::{UserEncoder, init_runtime};
use crate::synthetic::{BundleWriter, TensorData, clustered_vectors, encoder_onnx};
use crate::worker::{Worker, WorkerOptions};

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub items: usize,
    pub dim: usize,
    pub k: u32,
    /// History items per request.
    pub history: usize,
    /// dssm (ort + ANN) or item2vec (ANN only).
    pub strategy: StrategyType,
    /// Requests used for recall@k.
    pub recall_queries: usize,
    pub duration: Duration,
    pub concurrency: usize,
    /// Open-loop rate (requests per second); none skips the open-loop run.
    pub rate: Option<f64>,
    pub hnsw: HnswParams,
    pub ort_dylib: Option<PathBuf>,
    /// Where the synthetic bundle is written.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub requests: usize,
    pub throughput_rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub items: usize,
    pub dim: usize,
    pub k: u32,
    pub strategy: String,
    pub ann_load_s: f64,
    pub exact_load_s: f64,
    pub recall_at_k: f64,
    pub ann_closed: Latency,
    pub exact_closed: Latency,
    pub ann_open: Option<Latency>,
    /// Mean ONNX encoder time per request, and its share of the ANN mean latency.
    pub inference_mean_ms: Option<f64>,
    pub inference_share: Option<f64>,
}

/// Percentiles of latencies in seconds.
pub fn latency(mut samples: Vec<f64>, elapsed: Duration) -> Latency {
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i] * 1000.0
    };
    let n = samples.len();
    Latency {
        requests: n,
        throughput_rps: n as f64 / elapsed.as_secs_f64().max(1e-9),
        mean_ms: if n == 0 {
            0.0
        } else {
            samples.iter().sum::<f64>() / n as f64 * 1000.0
        },
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
    }
}

fn write_bundle(config: &BenchConfig, vectors: &[f32]) -> Result<()> {
    let mut w = BundleWriter::new(&config.dir)?;
    w.ids(
        files::ITEMS,
        &(0..config.items)
            .map(|i| format!("i{i}"))
            .collect::<Vec<_>>(),
    )?;
    w.tensors(
        files::ITEM_VECTORS,
        vec![(
            "vectors",
            TensorData::F32(vec![config.items, config.dim], vectors.to_vec()),
        )],
    )?;
    if config.strategy != StrategyType::Item2vec {
        w.bytes(
            files::MODEL,
            &encoder_onnx(vectors, config.dim, config.history, "user_embedding"),
        )?;
    }
    w.finish(
        config.strategy,
        Some(config.dim as u32),
        json!({"history_length": config.history}),
    )?;
    Ok(())
}

fn worker_config(config: &BenchConfig, dir: &Path) -> Result<WorkerConfig> {
    let spec = json!({
        "strategy": {"type": config.strategy.as_str()},
        "bundle": {"uri": dir.display().to_string()},
        "candidates": config.k, "maxCandidates": config.k, "timeoutMs": 10000,
    });
    serde_json::from_value(json!({"name": "bench", "spec": spec}))
        .map_err(|e| Error::Config(e.to_string()))
}

fn requests(config: &BenchConfig, n: usize, seed: u64) -> Vec<RecallRequest> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|u| RecallRequest {
            user_id: format!("u{u}"),
            k: Some(config.k),
            history: Some(
                (0..config.history)
                    .map(|_| format!("i{}", rng.random_range(0..config.items)))
                    .collect(),
            ),
            ..RecallRequest::default()
        })
        .collect()
}

async fn closed_loop(
    worker: &Worker,
    requests: Arc<Vec<RecallRequest>>,
    concurrency: usize,
    duration: Duration,
) -> Latency {
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|t| {
            let (worker, requests) = (worker.clone(), requests.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut i = t;
                while start.elapsed() < duration {
                    let began = Instant::now();
                    if worker.recall(&requests[i % requests.len()]).await.is_ok() {
                        samples.push(began.elapsed().as_secs_f64());
                    }
                    i += concurrency;
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await.unwrap_or_default());
    }
    latency(samples, start.elapsed())
}

/// Fixed-rate arrivals; latency counts from the scheduled send time, so a slow server cannot
/// hide its queueing (no coordinated omission).
async fn open_loop(
    worker: &Worker,
    requests: Arc<Vec<RecallRequest>>,
    rate: f64,
    duration: Duration,
) -> Latency {
    let start = Instant::now();
    let n = (rate * duration.as_secs_f64()) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (worker, requests) = (worker.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            worker
                .recall(&requests[i % requests.len()])
                .await
                .ok()
                .map(|_| due.elapsed().as_secs_f64())
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            samples.push(s);
        }
    }
    latency(samples, start.elapsed())
}

/// Runs the whole benchmark.
pub async fn run(config: BenchConfig) -> Result<BenchReport> {
    let vectors = clustered_vectors(config.items, config.dim, (config.items / 1000).max(10), 42);
    write_bundle(&config, &vectors)?;
    let base = WorkerOptions {
        ort_dylib: config.ort_dylib.clone(),
        hnsw: config.hnsw,
        ..WorkerOptions::default()
    };
    let wc = worker_config(&config, &config.dir)?;
    let t = Instant::now();
    let ann = Worker::load(
        wc.clone(),
        WorkerOptions {
            exact_max_items: 0,
            ..base.clone()
        },
    )
    .await?;
    let ann_load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let exact = Worker::load(
        wc,
        WorkerOptions {
            exact_max_items: usize::MAX,
            ..base
        },
    )
    .await?;
    let exact_load_s = t.elapsed().as_secs_f64();

    let probe = requests(&config, config.recall_queries.max(1), 7);
    let (mut found, mut wanted) = (0usize, 0usize);
    for r in &probe {
        let truth: std::collections::HashSet<String> = exact
            .recall(r)
            .await?
            .candidates
            .into_iter()
            .map(|c| c.item_id)
            .collect();
        wanted += truth.len();
        found += ann
            .recall(r)
            .await?
            .candidates
            .iter()
            .filter(|c| truth.contains(&c.item_id))
            .count();
    }
    let load = Arc::new(requests(&config, 4096, 9));
    let ann_closed = closed_loop(&ann, load.clone(), config.concurrency, config.duration).await;
    let exact_closed = closed_loop(&exact, load.clone(), config.concurrency, config.duration).await;
    let ann_open = match config.rate {
        Some(rate) => Some(open_loop(&ann, load.clone(), rate, config.duration).await),
        None => None,
    };
    let inference_mean_ms = if config.strategy == StrategyType::Item2vec {
        None
    } else {
        let env = init_runtime(config.ort_dylib.as_deref())?;
        let encoder = UserEncoder::load(
            env,
            &config.dir.join(files::MODEL),
            config.history,
            config.dim,
            1,
            1,
        )?;
        let histories: Vec<Vec<u32>> = requests(&config, 500, 11)
            .iter()
            .map(|r| {
                r.history
                    .iter()
                    .flatten()
                    .filter_map(|id| id[1..].parse().ok())
                    .collect()
            })
            .collect();
        let t = Instant::now();
        for h in &histories {
            encoder.encode(h)?;
        }
        Some(t.elapsed().as_secs_f64() * 1000.0 / histories.len() as f64)
    };
    Ok(BenchReport {
        items: config.items,
        dim: config.dim,
        k: config.k,
        strategy: config.strategy.to_string(),
        ann_load_s,
        exact_load_s,
        recall_at_k: found as f64 / wanted.max(1) as f64,
        inference_share: inference_mean_ms.map(|m| m / ann_closed.mean_ms.max(1e-9)),
        ann_closed,
        exact_closed,
        ann_open,
        inference_mean_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_from_the_sorted_samples() {
        let samples: Vec<f64> = (1..=1000).rev().map(|i| i as f64 / 1000.0).collect();
        let l = latency(samples, Duration::from_secs(2));
        assert_eq!(l.requests, 1000);
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.p999_ms, 999.0);
        assert_eq!(l.throughput_rps, 500.0);
    }
}
