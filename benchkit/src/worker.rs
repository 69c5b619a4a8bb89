//! The worker load generator behind `kan bench worker`: a synthetic bundle at scale for any
//! strategy ([`crate::bundles`]) served in-process, with closed-loop (max throughput) and
//! open-loop (fixed rate) latency percentiles. Vector strategies are served twice — embedded HNSW
//! and exact scan — with recall@k of the ANN against the exact answer, and the encoder strategies
//! report the share of the ONNX encoder in the latency. Requests go through [`Worker::recall`]
//! (the whole request path minus HTTP parsing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kan_api::bundle::files;
use kan_api::crd::StrategyType;
use kan_api::wire::RecallRequest;
use kan_api::worker_config::WorkerConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::json;

use kan_onnx::UserEncoder;
use kan_testkit::vectors::clustered_vectors_with_noise;
use kan_worker::index::hnsw::HnswParams;
use kan_worker::{Worker, WorkerOptions};

use crate::bundles;
use crate::error::{Error, Result};
use crate::percentile::nearest_rank;

/// Writes a K-interest ONNX user encoder over the item vectors: (vectors, dim, K) → model.
pub type InterestEncoder = fn(&[f32], usize, usize) -> std::result::Result<Vec<u8>, String>;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub items: usize,
    pub dim: usize,
    pub k: u32,
    /// History items per request (and the encoder's input length).
    pub history: usize,
    /// Interest clusters each request's history is drawn from.
    pub interests: usize,
    /// User vectors the encoder strategies' model outputs (1: the synthetic mean encoder; K > 1:
    /// a multi-interest encoder made by `interest_encoder`).
    pub user_vectors: usize,
    /// Makes a K-interest `model.onnx` from (item vectors, dim, K); `kan bench worker` passes
    /// `kan train`'s multi-interest pooling encoder.
    pub interest_encoder: Option<InterestEncoder>,
    /// Any strategy; vector strategies (dssm, gat, item2vec) also run the exact baseline.
    pub strategy: StrategyType,
    /// Requests used for recall@k.
    pub recall_queries: usize,
    pub duration: Duration,
    pub concurrency: usize,
    /// Open-loop rate (requests per second); none skips the open-loop run.
    pub rate: Option<f64>,
    /// Skip the exact-scan worker (scaling curves that need only the served latency).
    pub skip_exact: bool,
    pub hnsw: HnswParams,
    /// Where the worker saves (and on a rerun loads) its HNSW graph; none: built every run.
    pub bundle_cache: Option<PathBuf>,
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

/// The exact-scan baseline of a vector strategy, served from the same bundle.
#[derive(Debug, Clone, Serialize)]
pub struct ExactBaseline {
    pub load_s: f64,
    /// Share of the exact top-k the served (HNSW) worker also returned.
    pub recall_at_k: f64,
    pub closed: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub items: usize,
    pub dim: usize,
    pub k: u32,
    pub strategy: String,
    /// Interest clusters per request history, and user vectors per request.
    pub interests: usize,
    pub user_vectors: usize,
    /// hnsw for vector strategies, none otherwise.
    pub index: String,
    /// Bundle load (and index build) time of the served worker.
    pub load_s: f64,
    /// Mean candidates per response over the probe requests (a strategy answering nothing
    /// would otherwise look fast).
    pub mean_candidates: f64,
    pub closed: Latency,
    pub open: Option<Latency>,
    pub exact: Option<ExactBaseline>,
    /// Mean ONNX encoder time per request, and its share of the served mean latency.
    pub inference_mean_ms: Option<f64>,
    pub inference_share: Option<f64>,
}

/// Percentiles of latencies in seconds.
pub fn latency(mut samples: Vec<f64>, elapsed: Duration) -> Latency {
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| nearest_rank(&samples, p) * 1000.0;
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

fn worker_config(config: &BenchConfig, dir: &Path) -> Result<WorkerConfig> {
    let mut spec = json!({
        "strategy": {"type": config.strategy.as_str()},
        "candidates": config.k, "maxCandidates": config.k, "timeoutMs": 10000,
    });
    if let serde_json::Value::Object(settings) = bundles::settings(config.strategy) {
        for (key, value) in settings {
            spec["strategy"][key] = value;
        }
    }
    if config.strategy != StrategyType::Operational {
        spec["bundle"] = json!({"uri": dir.display().to_string()});
    }
    serde_json::from_value(json!({"name": "bench", "spec": spec}))
        .map_err(|e| Error::Config(e.to_string()))
}

/// Clusters of the benchmark catalogue (about 1000 items each).
fn clusters(items: usize) -> usize {
    (items / 1000).max(10)
}

/// Requests of known users (`u0..`) with topical histories (two clusters), deterministic per
/// seed.
fn requests(config: &BenchConfig, n: usize, seed: u64) -> Vec<RecallRequest> {
    let mut rng = StdRng::seed_from_u64(seed);
    let clusters = clusters(config.items);
    (0..n)
        .map(|u| RecallRequest {
            user_id: format!("u{}", u % bundles::USERS),
            k: Some(config.k),
            history: Some(
                bundles::user_items(
                    &mut rng,
                    config.items,
                    clusters,
                    config.history,
                    config.interests,
                )
                .into_iter()
                .map(|i| format!("i{i}"))
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
/// hide its queueing (no coordinated omission). Arrivals are paced by a thread of their own
/// sleeping with the OS timer: tokio's timer ticks in whole milliseconds, and a pacer that wakes
/// late would have its own lateness counted as the worker's latency.
async fn open_loop(
    worker: &Worker,
    requests: Arc<Vec<RecallRequest>>,
    rate: f64,
    duration: Duration,
) -> Latency {
    let n = (rate * duration.as_secs_f64()) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let runtime = tokio::runtime::Handle::current();
    let worker = worker.clone();
    let start = Instant::now();
    let pacer = tokio::task::spawn_blocking(move || {
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let due = start + gap * i as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let (worker, requests) = (worker.clone(), requests.clone());
            tasks.push(runtime.spawn(async move {
                worker
                    .recall(&requests[i % requests.len()])
                    .await
                    .ok()
                    .map(|_| due.elapsed().as_secs_f64())
            }));
        }
        tasks
    });
    let mut samples = Vec::new();
    for t in pacer.await.unwrap_or_default() {
        if let Ok(Some(s)) = t.await {
            samples.push(s);
        }
    }
    latency(samples, start.elapsed())
}

async fn timed_load(config: &BenchConfig, exact_max_items: usize) -> Result<(Worker, f64)> {
    let options = WorkerOptions {
        ort_dylib: config.ort_dylib.clone(),
        hnsw: config.hnsw,
        bundle_cache: config.bundle_cache.clone(),
        exact_max_items,
        ..WorkerOptions::default()
    };
    let t = Instant::now();
    let worker = Worker::load(worker_config(config, &config.dir)?, options).await?;
    Ok((worker, t.elapsed().as_secs_f64()))
}

/// Mean encoder time per request, measured alone on one thread.
fn inference_mean_ms(config: &BenchConfig) -> Result<f64> {
    let env = kan_onnx::environment(config.ort_dylib.as_deref())?;
    let encoder = UserEncoder::load(
        env,
        kan_onnx::Model::File(&config.dir.join(files::MODEL)),
        config.history,
        config.dim,
        1,
        1,
    )?;
    let histories: Vec<Vec<u32>> = requests(config, 500, 11)
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
    Ok(t.elapsed().as_secs_f64() * 1000.0 / histories.len() as f64)
}

/// Runs the whole benchmark.
pub async fn run(config: BenchConfig) -> Result<BenchReport> {
    let vector = bundles::uses_vectors(config.strategy);
    let clusters = clusters(config.items);
    let vectors = vector.then(|| {
        clustered_vectors_with_noise(config.items, config.dim, clusters, bundles::NOISE, 42)
    });
    let model = match (config.user_vectors, config.interest_encoder, &vectors) {
        (0 | 1, _, _) => None,
        (k, Some(make), Some(vectors)) if kan_worker::strategy::uses_encoder(config.strategy) => {
            Some(
                make(vectors, config.dim, k)
                    .map_err(|e| Error::Config(format!("the multi-interest encoder: {e}")))?,
            )
        }
        (k, _, _) => {
            return Err(Error::Config(format!(
                "{k} user vectors need an encoder strategy (dssm, gat) and a multi-interest encoder"
            )));
        }
    };
    bundles::write(
        &config.dir,
        config.strategy,
        &bundles::Scale {
            items: config.items,
            dim: config.dim,
            history_length: config.history,
            clusters,
            vectors: vectors.as_deref(),
            model: model.as_deref(),
        },
    )
    .map_err(Error::Fixture)?;
    drop(model);
    drop(vectors);
    // exact_max_items 0: HNSW at every size, so small catalogues are measured too.
    let (served, load_s) = timed_load(&config, 0).await?;
    let exact = if vector && !config.skip_exact {
        Some(timed_load(&config, usize::MAX).await?)
    } else {
        None
    };

    let probe = requests(&config, config.recall_queries.max(1), 7);
    let (mut found, mut wanted, mut returned) = (0usize, 0usize, 0usize);
    for r in &probe {
        let got = served.recall(r).await?.candidates;
        returned += got.len();
        if let Some((exact, _)) = &exact {
            let truth: std::collections::HashSet<String> = exact
                .recall(r)
                .await?
                .candidates
                .into_iter()
                .map(|c| c.item_id)
                .collect();
            wanted += truth.len();
            found += got.iter().filter(|c| truth.contains(&c.item_id)).count();
        }
    }
    let load = Arc::new(requests(&config, 4096, 9));
    let closed = closed_loop(&served, load.clone(), config.concurrency, config.duration).await;
    let open = match config.rate {
        Some(rate) => Some(open_loop(&served, load.clone(), rate, config.duration).await),
        None => None,
    };
    let exact = match exact {
        Some((worker, load_s)) => Some(ExactBaseline {
            load_s,
            recall_at_k: found as f64 / wanted.max(1) as f64,
            closed: closed_loop(&worker, load.clone(), config.concurrency, config.duration).await,
        }),
        None => None,
    };
    let inference_mean_ms = if kan_worker::strategy::uses_encoder(config.strategy) {
        Some(inference_mean_ms(&config)?)
    } else {
        None
    };
    Ok(BenchReport {
        items: config.items,
        dim: config.dim,
        k: config.k,
        strategy: config.strategy.to_string(),
        interests: config.interests,
        user_vectors: config.user_vectors.max(1),
        index: if vector { "hnsw" } else { "none" }.to_string(),
        load_s,
        mean_candidates: returned as f64 / probe.len() as f64,
        inference_share: inference_mean_ms.map(|m| m / closed.mean_ms.max(1e-9)),
        closed,
        open,
        exact,
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_serves_every_closed_and_open_loop_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = run(BenchConfig {
            items: 2_000,
            dim: 8,
            k: 10,
            history: 5,
            interests: 2,
            user_vectors: 1,
            interest_encoder: None,
            strategy: StrategyType::Popular,
            recall_queries: 5,
            duration: Duration::from_millis(300),
            concurrency: 2,
            rate: Some(100.0),
            skip_exact: true,
            hnsw: HnswParams::default(),
            bundle_cache: None,
            ort_dylib: None,
            dir: dir.path().to_path_buf(),
        })
        .await
        .expect("bench");
        assert_eq!(report.mean_candidates, 10.0);
        assert!(report.closed.requests > 0);
        // 100/s for 0.3 s: 30 arrivals, every one answered and timed from its scheduled time.
        let open = report.open.expect("open loop");
        assert_eq!(open.requests, 30);
        assert!(open.p50_ms > 0.0 && open.p50_ms <= open.p99_ms, "{open:?}");
    }
}
