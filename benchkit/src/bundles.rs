//! Synthetic bundles at benchmark scale for every strategy, so `kan bench worker` drives each one
//! through the same request path ([`kan_worker::Worker::recall`]). Shapes follow
//! [`kan_api::bundle::files`]; sizes are fixed below and stated in BENCHMARKS.md. Item `i` lives
//! in cluster `i % clusters` of the vectors, and item-CF neighbours and categories follow the
//! same clusters, so every strategy sees the same catalogue structure.

use std::path::Path;

use kan_api::bundle::{files, params};
use kan_api::crd::StrategyType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use kan_testkit::bundle::{BundleWriter, TensorData, offsets};
use kan_testkit::onnx::encoder_onnx;

/// Known users (social needs a friend graph and their histories).
pub const USERS: usize = 10_000;
/// Engagements per user in `user_history.safetensors`, one hour apart.
pub const USER_HISTORY: usize = 50;
/// Friends per user (social).
pub const FRIENDS: usize = 20;
/// Neighbours per item (item-CF).
pub const NEIGHBOURS: usize = 20;
/// Categories (exploratory): item `i` is in category `i % CATEGORIES`.
pub const CATEGORIES: usize = 500;
/// Length of the global popular list.
pub const POPULAR: usize = 1_000;
/// Pinned items (operational).
pub const PINS: usize = 100;
/// Per-coordinate noise of the benchmark vectors around their cluster centre: noise norm
/// ≈ 0.46 against a unit centre in 64-d, so clusters are distinct but wide (see BENCHMARKS.md;
/// `kan_testkit::vectors::clustered_vectors`' default ±0.35 is nearly uniform directions).
pub const NOISE: f32 = 0.1;
/// Interest clusters a benchmark user's history is drawn from by default.
pub const INTERESTS: usize = 2;

/// `n` history items of a user with `interests` interests: items of that many random clusters
/// (item `i` is in cluster `i % clusters`), as real histories are topical, not uniform. A user
/// vector between two tight clusters is the hard case for graph indexes (BENCHMARKS.md).
pub fn user_items(
    rng: &mut StdRng,
    items: usize,
    clusters: usize,
    n: usize,
    interests: usize,
) -> Vec<usize> {
    let clusters = clusters.clamp(1, items.max(1));
    let interests: Vec<usize> = (0..interests.max(1))
        .map(|_| rng.random_range(0..clusters))
        .collect();
    (0..n)
        .map(|t| {
            let c = interests[t % interests.len()];
            let members = (items - c).div_ceil(clusters);
            c + clusters * rng.random_range(0..members)
        })
        .collect()
}

/// `params.reference_time` of the bundles.
pub const REFERENCE_TIME: i64 = 1_700_000_000;

/// What to write: `vectors` (row-major `[items, dim]`) are needed by the vector strategies.
pub struct Scale<'a> {
    pub items: usize,
    pub dim: usize,
    /// Encoder input length (dssm, gat).
    pub history_length: usize,
    pub clusters: usize,
    pub vectors: Option<&'a [f32]>,
    /// The encoder strategies' `model.onnx`; none: the synthetic single-vector encoder (the
    /// normalised mean of the history's vectors).
    pub model: Option<&'a [u8]>,
}

/// True for strategies that search item vectors (and so are benchmarked HNSW vs exact).
pub fn uses_vectors(strategy: StrategyType) -> bool {
    matches!(
        strategy,
        StrategyType::Dssm
            | StrategyType::Gat
            | StrategyType::Spectral
            | StrategyType::Sequence
            | StrategyType::Item2vec
    )
}

/// Strategy settings for the worker spec (operational's pins; the others use defaults).
pub fn settings(strategy: StrategyType) -> Value {
    match strategy {
        StrategyType::Operational => {
            let items: Vec<Value> = (0..PINS)
                .map(|i| json!({"itemId": format!("pin{i}")}))
                .collect();
            json!({"operational": {"items": items}})
        }
        _ => json!({}),
    }
}

/// Writes the bundle of `strategy` into `dir`; none for operational (it has no bundle).
pub fn write(dir: &Path, strategy: StrategyType, scale: &Scale<'_>) -> std::io::Result<()> {
    if strategy == StrategyType::Operational {
        return Ok(());
    }
    let n = scale.items;
    let mut rng = StdRng::seed_from_u64(5);
    let mut w = BundleWriter::new(dir)?;
    w.ids(
        files::ITEMS,
        &(0..n).map(|i| format!("i{i}")).collect::<Vec<_>>(),
    )?;
    w.ids(
        files::USERS,
        &(0..USERS).map(|u| format!("u{u}")).collect::<Vec<_>>(),
    )?;
    let history: Vec<i64> = (0..USERS * USER_HISTORY)
        .map(|_| rng.random_range(0..n) as i64)
        .collect();
    let times: Vec<i64> = (0..USERS * USER_HISTORY)
        .map(|j| REFERENCE_TIME - 3600 * (j % USER_HISTORY) as i64)
        .collect();
    w.tensors(
        files::USER_HISTORY,
        vec![
            (
                "offsets",
                TensorData::I64(vec![USERS + 1], offsets(vec![USER_HISTORY; USERS])),
            ),
            ("items", TensorData::I64(vec![history.len()], history)),
            ("timestamps", TensorData::I64(vec![times.len()], times)),
        ],
    )?;
    let mut dim = None;
    match strategy {
        StrategyType::Dssm
        | StrategyType::Gat
        | StrategyType::Spectral
        | StrategyType::Sequence
        | StrategyType::Item2vec => {
            let vectors = scale.vectors.unwrap_or_default();
            dim = Some(scale.dim as u32);
            w.tensors(
                files::ITEM_VECTORS,
                vec![(
                    "vectors",
                    TensorData::F32(vec![n, scale.dim], vectors.to_vec()),
                )],
            )?;
            if strategy != StrategyType::Item2vec {
                match scale.model {
                    Some(model) => w.bytes(files::MODEL, model)?,
                    None => w.bytes(
                        files::MODEL,
                        &encoder_onnx(vectors, scale.dim, scale.history_length, "user_embedding"),
                    )?,
                };
            }
        }
        StrategyType::Itemcf => {
            // Neighbours from the item's own cluster, weights falling with rank.
            let c = scale.clusters.max(1);
            let neighbours: Vec<i64> = (0..n)
                .flat_map(|i| (1..=NEIGHBOURS).map(move |t| ((i + c * t) % n) as i64))
                .collect();
            let weights: Vec<f32> = (0..n)
                .flat_map(|_| (1..=NEIGHBOURS).map(|t| 1.0 / t as f32))
                .collect();
            w.tensors(
                files::NEIGHBOURS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![n + 1], offsets(vec![NEIGHBOURS; n])),
                    ),
                    (
                        "neighbours",
                        TensorData::I64(vec![n * NEIGHBOURS], neighbours),
                    ),
                    ("weights", TensorData::F32(vec![n * NEIGHBOURS], weights)),
                ],
            )?;
        }
        StrategyType::Social => {
            let friends: Vec<i64> = (0..USERS * FRIENDS)
                .map(|_| rng.random_range(0..USERS) as i64)
                .collect();
            let strength: Vec<f32> = (0..USERS)
                .flat_map(|_| (1..=FRIENDS).map(|t| 1.0 / t as f32))
                .collect();
            w.tensors(
                files::FRIENDS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![USERS + 1], offsets(vec![FRIENDS; USERS])),
                    ),
                    ("friends", TensorData::I64(vec![friends.len()], friends)),
                    ("strength", TensorData::F32(vec![strength.len()], strength)),
                ],
            )?;
        }
        StrategyType::Exploratory => {
            let alpha: Vec<f32> = (0..n).map(|_| rng.random_range(1.0..50.0)).collect();
            let beta: Vec<f32> = (0..n).map(|_| rng.random_range(1.0..50.0)).collect();
            w.tensors(
                files::CATEGORIES,
                vec![
                    ("offsets", TensorData::I64(vec![n + 1], offsets(vec![1; n]))),
                    (
                        "categories",
                        TensorData::I64(vec![n], (0..n).map(|i| (i % CATEGORIES) as i64).collect()),
                    ),
                    ("alpha", TensorData::F32(vec![n], alpha)),
                    ("beta", TensorData::F32(vec![n], beta)),
                ],
            )?;
            w.ids(
                files::CATEGORY_NAMES,
                &(0..CATEGORIES).map(|c| format!("c{c}")).collect::<Vec<_>>(),
            )?;
        }
        StrategyType::Popular => {
            let m = POPULAR.min(n);
            let step = (n / m.max(1)).max(1);
            w.tensors(
                files::POPULAR,
                vec![
                    (
                        "global/items",
                        TensorData::I64(vec![m], (0..m).map(|i| (i * step) as i64).collect()),
                    ),
                    (
                        "global/scores",
                        TensorData::F32(vec![m], (0..m).map(|i| (m - i) as f32).collect()),
                    ),
                ],
            )?;
        }
        StrategyType::Attribute => {
            // Item `i` has tag `i % CATEGORIES`; postings list a tag's items, higher index first.
            let t = CATEGORIES.min(n).max(1);
            let postings: Vec<i64> = (0..t)
                .flat_map(|c| (c..n).step_by(t).rev().map(|i| i as i64))
                .collect();
            let per_tag: Vec<usize> = (0..t).map(|c| (c..n).step_by(t).count()).collect();
            let scores: Vec<f32> = per_tag
                .iter()
                .flat_map(|&m| (0..m).map(move |r| 1.0 / (1 + r) as f32))
                .collect();
            w.tensors(
                files::ITEM_TAGS,
                vec![
                    ("offsets", TensorData::I64(vec![n + 1], offsets(vec![1; n]))),
                    (
                        "tags",
                        TensorData::I64(vec![n], (0..n).map(|i| (i % t) as i64).collect()),
                    ),
                    ("weights", TensorData::F32(vec![n], vec![1.0; n])),
                    ("prior", TensorData::F32(vec![n], vec![1.0; n])),
                ],
            )?;
            w.tensors(
                files::TAG_ITEMS,
                vec![
                    ("offsets", TensorData::I64(vec![t + 1], offsets(per_tag))),
                    ("items", TensorData::I64(vec![n], postings)),
                    ("scores", TensorData::F32(vec![n], scores)),
                ],
            )?;
            w.tensors(
                files::RELATED_TAGS,
                vec![
                    ("offsets", TensorData::I64(vec![t + 1], offsets(vec![0; t]))),
                    ("related", TensorData::I64(vec![0], Vec::new())),
                    ("weights", TensorData::F32(vec![0], Vec::new())),
                ],
            )?;
            w.ids(
                files::TAG_NAMES,
                &(0..t).map(|c| format!("t{c}")).collect::<Vec<_>>(),
            )?;
        }
        StrategyType::Operational => {}
    }
    w.finish(
        strategy,
        dim,
        json!({
            params::REFERENCE_TIME: REFERENCE_TIME,
            params::HISTORY_LENGTH: scale.history_length,
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use kan_api::worker_config::WorkerConfig;
    use kan_testkit::vectors::clustered_vectors;
    use kan_worker::{Worker, WorkerOptions};

    use super::*;

    #[test]
    fn user_items_come_from_two_clusters_and_stay_in_the_catalogue() {
        let mut rng = StdRng::seed_from_u64(1);
        let items = user_items(&mut rng, 1_005, 10, 40, INTERESTS);
        assert_eq!(items.len(), 40);
        assert!(items.iter().all(|&i| i < 1_005));
        let clusters: std::collections::HashSet<usize> = items.iter().map(|i| i % 10).collect();
        assert!(clusters.len() <= INTERESTS, "{clusters:?}");
    }

    /// Every bundle-backed strategy loads from what `write` produces and answers a request.
    #[tokio::test]
    async fn every_strategy_serves_candidates_from_its_benchmark_bundle() {
        let (items, dim) = (2_000, 8);
        let vectors = clustered_vectors(items, dim, 20, 1);
        for strategy in [
            StrategyType::Item2vec,
            StrategyType::Itemcf,
            StrategyType::Social,
            StrategyType::Exploratory,
            StrategyType::Popular,
            StrategyType::Operational,
            StrategyType::Attribute,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let scale = Scale {
                items,
                dim,
                history_length: 5,
                clusters: 20,
                vectors: Some(&vectors),
                model: None,
            };
            write(dir.path(), strategy, &scale).unwrap();
            let mut spec = json!({
                "strategy": {"type": strategy.as_str()},
                "candidates": 50, "maxCandidates": 50, "timeoutMs": 5000,
            });
            if let Value::Object(extra) = settings(strategy) {
                for (k, v) in extra {
                    spec["strategy"][k] = v;
                }
            }
            if strategy != StrategyType::Operational {
                spec["bundle"] = json!({"uri": dir.path().display().to_string()});
            }
            let config: WorkerConfig =
                serde_json::from_value(json!({"name": "b", "spec": spec})).unwrap();
            let worker = Worker::load(config, WorkerOptions::default())
                .await
                .unwrap();
            let request = kan_api::wire::RecallRequest {
                user_id: "u3".into(),
                k: Some(50),
                history: Some(vec!["i1".into(), "i21".into(), "i41".into()]),
                ..Default::default()
            };
            let got = worker.recall(&request).await.unwrap().candidates;
            assert!(!got.is_empty(), "{strategy}: no candidates");
        }
    }
}
