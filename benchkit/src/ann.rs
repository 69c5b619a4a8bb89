//! `kan bench ann`: the embedded HNSW index against an exact scan on the same vectors, and the
//! files a peer (`bench/serving/faiss_hnsw.py`) needs to run the same benchmark: `base.npy`
//! (items), `queries.npy` and `gt.npy` (the exact top-k, computed once here and shared).
//!
//! Queries are user vectors as the worker sees them: the normalised mean of `history` item
//! vectors from two clusters (what the synthetic DSSM encoder outputs for a benchmark user).
//! Latency is single-query on one thread; throughput runs independent single queries on
//! 1..=threads OS threads.

use std::collections::HashSet;

use kan_worker::index::ItemSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use kan_testkit::vectors::clustered_vectors_with_noise;
use kan_worker::index::exact::ExactIndex;
use kan_worker::index::hnsw::{HnswIndex, HnswParams};
use kan_worker::index::{Hit, SearchParams, normalise};

use crate::bundles;
use crate::error::{Error, Result};
use crate::percentile::nearest_rank;
use crate::vector_files::{Matrix, read_vectors, write_npy_f32, write_npy_i32};

#[derive(Debug, Clone)]
pub struct AnnConfig {
    /// Item vectors to load (.npy, .f32 or .safetensors); synthetic clustered when none.
    pub vectors: Option<PathBuf>,
    /// Synthetic catalogue size, and the dimension (also of a raw .f32 file).
    pub items: usize,
    pub dim: usize,
    pub queries: usize,
    pub k: usize,
    /// Items averaged into one query.
    pub history: usize,
    /// Interest clusters a synthetic query's items come from.
    pub interests: usize,
    pub hnsw: HnswParams,
    /// Throughput is measured with 1..=threads threads.
    pub threads: usize,
    /// Queries timed one by one for the exact scan's latency (it is slow at 1M).
    pub exact_latency_queries: usize,
    /// Where base.npy, queries.npy, gt.npy and report.json go.
    pub out: PathBuf,
    /// Further search widths measured on the same graph (recall and single-thread latency).
    pub ef_sweep: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub threads: usize,
    pub qps: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    pub engine: String,
    pub build_s: f64,
    pub recall_at_k: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub throughput: Vec<Throughput>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnnReport {
    pub source: String,
    pub items: usize,
    pub dim: usize,
    pub queries: usize,
    pub k: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub engines: Vec<EngineReport>,
    /// Recall and latency of the HNSW graph at each swept search width.
    pub ef_sweep: Vec<EfPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EfPoint {
    pub ef_search: usize,
    pub recall_at_k: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Normalised means of `history` rows: topical (two clusters, as `kan bench worker` users) when
/// the cluster count is known, else uniformly random rows.
fn user_queries(
    base: &Matrix<f32>,
    n: usize,
    (history, interests): (usize, usize),
    clusters: Option<usize>,
    seed: u64,
) -> Matrix<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(n * base.cols);
    while data.len() < n * base.cols {
        let mut q = vec![0f32; base.cols];
        let rows: Vec<usize> = match clusters {
            Some(c) => bundles::user_items(&mut rng, base.rows, c, history.max(1), interests),
            None => (0..history.max(1))
                .map(|_| rng.random_range(0..base.rows))
                .collect(),
        };
        for r in rows {
            let row = &base.data[r * base.cols..(r + 1) * base.cols];
            q.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        if normalise(&mut q) {
            data.extend_from_slice(&q);
        }
    }
    Matrix {
        rows: n,
        cols: base.cols,
        data,
    }
}

fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    nearest_rank(sorted, p) * 1000.0
}

/// Single-query latencies (seconds, sorted) of the first `n` queries on this thread, and the
/// answers in query order.
fn latencies(
    queries: &Matrix<f32>,
    n: usize,
    search: &(dyn Fn(&[f32]) -> Vec<Hit> + Sync),
) -> (Vec<f64>, Vec<Vec<Hit>>) {
    let (mut out, answers): (Vec<f64>, Vec<Vec<Hit>>) = queries
        .data
        .chunks_exact(queries.cols)
        .take(n)
        .map(|q| {
            let t = Instant::now();
            let hits = std::hint::black_box(search(q));
            (t.elapsed().as_secs_f64(), hits)
        })
        .unzip();
    out.sort_by(f64::total_cmp);
    (out, answers)
}

/// Queries per second with `threads` threads each running single queries, and the answers.
fn throughput(
    queries: &Matrix<f32>,
    threads: usize,
    search: &(dyn Fn(&[f32]) -> Vec<Hit> + Sync),
) -> (f64, Vec<Vec<Hit>>) {
    let rows: Vec<&[f32]> = queries.data.chunks_exact(queries.cols).collect();
    let t = Instant::now();
    let parts: Vec<Vec<(usize, Vec<Hit>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|tid| {
                let rows = &rows;
                s.spawn(move || {
                    (tid..rows.len())
                        .step_by(threads.max(1))
                        .map(|i| (i, search(rows[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let qps = rows.len() as f64 / t.elapsed().as_secs_f64().max(1e-9);
    let mut answers = vec![Vec::new(); rows.len()];
    for (i, hits) in parts.into_iter().flatten() {
        answers[i] = hits;
    }
    (qps, answers)
}

/// A failed search answers nothing and is counted, so the run can report it instead of
/// measuring a broken index.
fn counting_failures(result: kan_worker::Result<Vec<Hit>>, failures: &AtomicUsize) -> Vec<Hit> {
    result.unwrap_or_else(|_| {
        failures.fetch_add(1, Ordering::Relaxed);
        Vec::new()
    })
}

/// Runs the benchmark and writes the shared files into `config.out`.
pub fn run(config: &AnnConfig) -> Result<AnnReport> {
    std::fs::create_dir_all(&config.out).map_err(|e| Error::io(&config.out, e))?;
    let clusters = (config.items / 1000).max(10);
    let (source, mut base, query_clusters) = match &config.vectors {
        Some(path) => (
            path.display().to_string(),
            read_vectors(path, Some(config.dim))?,
            None,
        ),
        None => (
            format!(
                "synthetic clustered ({clusters} clusters, noise ±{})",
                bundles::NOISE
            ),
            Matrix {
                rows: config.items,
                cols: config.dim,
                data: clustered_vectors_with_noise(
                    config.items,
                    config.dim,
                    clusters,
                    bundles::NOISE,
                    42,
                ),
            },
            Some(clusters),
        ),
    };
    if base.rows == 0 || base.cols == 0 {
        return Err(Error::Config(format!("{source}: no vectors")));
    }
    // Cosine = inner product on unit vectors, for both engines.
    for row in base.data.chunks_exact_mut(base.cols) {
        normalise(row);
    }
    let queries = user_queries(
        &base,
        config.queries.max(1),
        (config.history, config.interests),
        query_clusters,
        3,
    );
    write_npy_f32(&config.out.join("base.npy"), &base)?;
    write_npy_f32(&config.out.join("queries.npy"), &queries)?;

    let none = ItemSet::default();
    let params = SearchParams {
        limit: config.k,
        score_threshold: None,
        exclude: &none,
    };
    let threads = config.threads.max(1);
    let dim = base.cols;
    let vectors = std::sync::Arc::new(std::mem::take(&mut base.data));

    // Exact: ground truth with all threads (also its top throughput), then latency and the
    // other thread counts on a subset (a 1M scan takes tens of ms per query).
    let exact = ExactIndex::new(dim, vectors.clone());
    let exact_search = |q: &[f32]| exact.search_sync(q, params);
    let (exact_top_qps, truth) = throughput(&queries, threads, &exact_search);
    let gt: Vec<ItemSet> = truth
        .iter()
        .map(|hits| hits.iter().map(|h| h.item).collect())
        .collect();
    write_npy_i32(
        &config.out.join("gt.npy"),
        &Matrix {
            rows: truth.len(),
            cols: config.k,
            data: truth
                .iter()
                .flat_map(|hits| (0..config.k).map(|j| hits.get(j).map_or(-1, |h| h.item as i32)))
                .collect(),
        },
    )?;
    let subset = Matrix {
        rows: config.exact_latency_queries.min(queries.rows).max(1),
        cols: dim,
        data: queries.data[..config.exact_latency_queries.min(queries.rows).max(1) * dim].to_vec(),
    };
    let (exact_lat, _) = latencies(&subset, subset.rows, &exact_search);
    let mut exact_throughput: Vec<Throughput> = (1..threads)
        .map(|t| Throughput {
            threads: t,
            qps: throughput(&subset, t, &exact_search).0,
        })
        .collect();
    exact_throughput.push(Throughput {
        threads,
        qps: exact_top_qps,
    });

    let t = Instant::now();
    let mut hnsw = HnswIndex::build(dim, &vectors, config.hnsw)?;
    let build_s = t.elapsed().as_secs_f64();
    let recall_of = |answers: &[Vec<Hit>]| {
        let found: usize = answers
            .iter()
            .zip(&gt)
            .map(|(hits, truth)| hits.iter().filter(|h| truth.contains(&h.item)).count())
            .sum();
        let wanted: usize = gt.iter().map(HashSet::len).sum();
        found as f64 / wanted.max(1) as f64
    };
    let failures = AtomicUsize::new(0);
    let mut hnsw_throughput = Vec::new();
    let mut recall = 0.0;
    let hnsw_lat = {
        let hnsw_search = |q: &[f32]| counting_failures(hnsw.search_sync(q, params), &failures);
        for t in 1..=threads {
            let (qps, answers) = throughput(&queries, t, &hnsw_search);
            hnsw_throughput.push(Throughput { threads: t, qps });
            recall = recall_of(&answers);
        }
        latencies(&queries, queries.rows, &hnsw_search).0
    };
    let mut ef_sweep = Vec::new();
    for &ef in &config.ef_sweep {
        hnsw.set_ef_search(ef);
        let hnsw_search = |q: &[f32]| counting_failures(hnsw.search_sync(q, params), &failures);
        let (lat, answers) = latencies(&queries, queries.rows, &hnsw_search);
        ef_sweep.push(EfPoint {
            ef_search: ef,
            recall_at_k: recall_of(&answers),
            p50_ms: percentile_ms(&lat, 0.5),
            p99_ms: percentile_ms(&lat, 0.99),
        });
    }
    let failed = failures.into_inner();
    if failed > 0 {
        return Err(Error::Index(format!("{failed} HNSW searches failed")));
    }

    let report = AnnReport {
        source,
        items: vectors.len() / dim,
        dim,
        queries: queries.rows,
        k: config.k,
        m: config.hnsw.max_connections,
        ef_construction: config.hnsw.ef_construction,
        ef_search: config.hnsw.ef_search,
        engines: vec![
            EngineReport {
                engine: "kan hnsw (usearch)".into(),
                build_s,
                recall_at_k: recall,
                p50_ms: percentile_ms(&hnsw_lat, 0.5),
                p99_ms: percentile_ms(&hnsw_lat, 0.99),
                throughput: hnsw_throughput,
            },
            EngineReport {
                engine: "kan exact scan".into(),
                build_s: 0.0,
                recall_at_k: 1.0,
                p50_ms: percentile_ms(&exact_lat, 0.5),
                p99_ms: percentile_ms(&exact_lat, 0.99),
                throughput: exact_throughput,
            },
        ],
        ef_sweep,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| Error::Config(e.to_string()))?;
    let path = config.out.join("kan.json");
    std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_writes_the_shared_files_and_finds_the_exact_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let config = AnnConfig {
            vectors: None,
            items: 2_000,
            dim: 16,
            queries: 50,
            k: 10,
            history: 5,
            interests: 2,
            hnsw: HnswParams::default(),
            threads: 2,
            exact_latency_queries: 10,
            out: dir.path().to_path_buf(),
            ef_sweep: vec![16, 128],
        };
        let report = run(&config).unwrap();
        for f in ["base.npy", "queries.npy", "gt.npy", "kan.json"] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        let hnsw = &report.engines[0];
        assert!(hnsw.recall_at_k > 0.9, "recall {}", hnsw.recall_at_k);
        assert_eq!(hnsw.throughput.len(), 2);
        let swept: Vec<usize> = report.ef_sweep.iter().map(|p| p.ef_search).collect();
        assert_eq!(swept, vec![16, 128]);
        assert!(report.ef_sweep[1].recall_at_k >= report.ef_sweep[0].recall_at_k);
        let gt = std::fs::read(dir.path().join("gt.npy")).unwrap();
        assert_eq!(gt.len(), 128 + 50 * 10 * 4, "gt is [queries, k] i32");
    }
}
