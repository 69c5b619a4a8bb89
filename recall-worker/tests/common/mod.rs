//! Test fixtures: a tiny bundle per strategy written with the bundle writer, worker configs, and
//! an HTTP client over the router.
#![allow(dead_code)]
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kan_api::bundle::files;
use kan_api::crd::StrategyType;
use kan_api::worker_config::WorkerConfig;
use kan_testkit::bundle::{BundleWriter, TensorData, offsets};
use kan_testkit::onnx::encoder_onnx;
use kan_testkit::vectors::clustered_vectors;
use kan_worker::{Worker, WorkerOptions};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const ITEMS: usize = 40;
pub const USERS: usize = 10;
pub const DIM: usize = 8;
pub const HISTORY_LENGTH: usize = 5;
/// `params.reference_time` of the fixtures.
pub const REFERENCE_TIME: i64 = 1_700_000_000;

pub fn item(i: usize) -> String {
    format!("i{i}")
}

pub fn vectors() -> Vec<f32> {
    clustered_vectors(ITEMS, DIM, 4, 11)
}

/// User `u` engaged with items `4u, 4u+1, 4u+2`, most recent first, one hour apart.
pub fn user_history(u: usize) -> Vec<usize> {
    vec![4 * u, 4 * u + 1, 4 * u + 2]
}

/// Writes a bundle for `strategy` into `dir` (common files plus the strategy's own).
pub fn write_bundle(dir: &Path, strategy: StrategyType) -> kan_api::bundle::BundleManifest {
    write_bundle_with(dir, strategy, "user_embedding")
}

pub fn write_bundle_with(
    dir: &Path,
    strategy: StrategyType,
    onnx_output: &str,
) -> kan_api::bundle::BundleManifest {
    write_bundle_of(dir, strategy, vectors(), &|vectors| {
        encoder_onnx(vectors, DIM, HISTORY_LENGTH, onnx_output)
    })
}

/// [`write_bundle`] with other item vectors: another bundle version over the same items.
pub fn write_bundle_with_vectors(
    dir: &Path,
    strategy: StrategyType,
    vectors: Vec<f32>,
) -> kan_api::bundle::BundleManifest {
    write_bundle_of(dir, strategy, vectors, &|vectors| {
        encoder_onnx(vectors, DIM, HISTORY_LENGTH, "user_embedding")
    })
}

/// As [`write_bundle`], with the encoder strategies' `model.onnx` made by `model` from the item
/// vectors.
pub fn write_bundle_with_model(
    dir: &Path,
    strategy: StrategyType,
    model: &dyn Fn(&[f32]) -> Vec<u8>,
) -> kan_api::bundle::BundleManifest {
    write_bundle_of(dir, strategy, vectors(), model)
}

fn write_bundle_of(
    dir: &Path,
    strategy: StrategyType,
    vectors: Vec<f32>,
    model: &dyn Fn(&[f32]) -> Vec<u8>,
) -> kan_api::bundle::BundleManifest {
    let mut w = BundleWriter::new(dir).unwrap();
    w.ids(files::ITEMS, &(0..ITEMS).map(item).collect::<Vec<_>>())
        .unwrap();
    w.ids(
        files::USERS,
        &(0..USERS).map(|u| format!("u{u}")).collect::<Vec<_>>(),
    )
    .unwrap();
    let histories: Vec<Vec<usize>> = (0..USERS).map(user_history).collect();
    let flat: Vec<i64> = histories.iter().flatten().map(|&i| i as i64).collect();
    let times: Vec<i64> = histories
        .iter()
        .flat_map(|h| (0..h.len()).map(|j| REFERENCE_TIME - 3600 * j as i64))
        .collect();
    w.tensors(
        files::USER_HISTORY,
        vec![
            (
                "offsets",
                TensorData::I64(vec![USERS + 1], offsets(histories.iter().map(Vec::len))),
            ),
            ("items", TensorData::I64(vec![flat.len()], flat.clone())),
            ("timestamps", TensorData::I64(vec![times.len()], times)),
        ],
    )
    .unwrap();
    let mut dim = None;
    match strategy {
        StrategyType::Dssm
        | StrategyType::Gat
        | StrategyType::Spectral
        | StrategyType::Sequence
        | StrategyType::Item2vec => {
            dim = Some(DIM as u32);
            w.tensors(
                files::ITEM_VECTORS,
                vec![(
                    "vectors",
                    TensorData::F32(vec![ITEMS, DIM], vectors.clone()),
                )],
            )
            .unwrap();
            if strategy != StrategyType::Item2vec {
                w.bytes(files::MODEL, &model(&vectors)).unwrap();
            }
        }
        StrategyType::Itemcf => {
            // item j -> j+1 (1.0), j+2 (0.5)
            let neighbours: Vec<i64> = (0..ITEMS)
                .flat_map(|j| [((j + 1) % ITEMS) as i64, ((j + 2) % ITEMS) as i64])
                .collect();
            let weights: Vec<f32> = (0..ITEMS).flat_map(|_| [1.0, 0.5]).collect();
            w.tensors(
                files::NEIGHBOURS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![ITEMS + 1], offsets(vec![2; ITEMS])),
                    ),
                    ("neighbours", TensorData::I64(vec![2 * ITEMS], neighbours)),
                    ("weights", TensorData::F32(vec![2 * ITEMS], weights)),
                ],
            )
            .unwrap();
        }
        StrategyType::Social => {
            // u0's friends: u1 (strong), u2 (weak); everyone else has none.
            let mut lengths = vec![0; USERS];
            lengths[0] = 2;
            w.tensors(
                files::FRIENDS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![USERS + 1], offsets(lengths)),
                    ),
                    ("friends", TensorData::I64(vec![2], vec![1, 2])),
                    ("strength", TensorData::F32(vec![2], vec![1.0, 0.1])),
                ],
            )
            .unwrap();
        }
        StrategyType::Exploratory => {
            // item j is in category j % 4; item quality grows with j.
            let alpha: Vec<f32> = (0..ITEMS).map(|j| 1.0 + j as f32).collect();
            w.tensors(
                files::CATEGORIES,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![ITEMS + 1], offsets(vec![1; ITEMS])),
                    ),
                    (
                        "categories",
                        TensorData::I64(vec![ITEMS], (0..ITEMS).map(|j| (j % 4) as i64).collect()),
                    ),
                    ("alpha", TensorData::F32(vec![ITEMS], alpha)),
                    ("beta", TensorData::F32(vec![ITEMS], vec![2.0; ITEMS])),
                ],
            )
            .unwrap();
            w.ids(
                files::CATEGORY_NAMES,
                &["news", "sport", "music", "film"].map(String::from),
            )
            .unwrap();
            // Related categories: sport → music, nothing else.
            w.tensors(
                files::RELATED_TAGS,
                vec![
                    ("offsets", TensorData::I64(vec![5], vec![0, 0, 1, 1, 1])),
                    ("related", TensorData::I64(vec![1], vec![2])),
                    ("weights", TensorData::F32(vec![1], vec![1.0])),
                ],
            )
            .unwrap();
        }
        StrategyType::Popular => {
            w.tensors(
                files::POPULAR,
                vec![
                    ("global/items", TensorData::I64(vec![20], (0..20).collect())),
                    (
                        "global/scores",
                        TensorData::F32(vec![20], (0..20).map(|i| 100.0 - i as f32).collect()),
                    ),
                    (
                        "segment/region=SH/items",
                        TensorData::I64(vec![5], (30..35).collect()),
                    ),
                    (
                        "segment/region=SH/scores",
                        TensorData::F32(vec![5], vec![9.0, 8.0, 7.0, 6.0, 5.0]),
                    ),
                ],
            )
            .unwrap();
        }
        StrategyType::Attribute => {
            // Item j has tag j % 4 (news, sport, music, film); priors fall with the index, so
            // each tag's postings list its items in index order; news and sport are related.
            let prior: Vec<f32> = (0..ITEMS).map(|j| 1.0 - j as f32 / 100.0).collect();
            let postings: Vec<i64> = (0..4)
                .flat_map(|t| (t..ITEMS).step_by(4).map(|j| j as i64))
                .collect();
            let scores: Vec<f32> = postings.iter().map(|&j| prior[j as usize]).collect();
            w.tensors(
                files::ITEM_TAGS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![ITEMS + 1], offsets(vec![1; ITEMS])),
                    ),
                    (
                        "tags",
                        TensorData::I64(vec![ITEMS], (0..ITEMS).map(|j| (j % 4) as i64).collect()),
                    ),
                    ("weights", TensorData::F32(vec![ITEMS], vec![1.0; ITEMS])),
                    ("prior", TensorData::F32(vec![ITEMS], prior)),
                ],
            )
            .unwrap();
            w.tensors(
                files::TAG_ITEMS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![5], offsets(vec![ITEMS / 4; 4])),
                    ),
                    ("items", TensorData::I64(vec![ITEMS], postings)),
                    ("scores", TensorData::F32(vec![ITEMS], scores)),
                ],
            )
            .unwrap();
            w.tensors(
                files::RELATED_TAGS,
                vec![
                    (
                        "offsets",
                        TensorData::I64(vec![5], offsets(vec![1, 1, 0, 0])),
                    ),
                    ("related", TensorData::I64(vec![2], vec![1, 0])),
                    ("weights", TensorData::F32(vec![2], vec![1.0, 1.0])),
                ],
            )
            .unwrap();
            w.ids(
                files::TAG_NAMES,
                &["news", "sport", "music", "film"].map(String::from),
            )
            .unwrap();
        }
        StrategyType::Operational => unreachable!("operational queues have no bundle"),
    }
    w.finish(
        strategy,
        dim,
        json!({"reference_time": REFERENCE_TIME, "history_length": HISTORY_LENGTH, "new_item_prior": 0.5}),
    )
    .unwrap()
}

/// A worker config for `strategy` serving the bundle in `dir` (settings merged into the spec).
pub fn config(strategy: StrategyType, dir: Option<&Path>, extra: Value) -> WorkerConfig {
    let mut spec = json!({"strategy": {"type": strategy.as_str()}, "candidates": 10, "maxCandidates": 20, "timeoutMs": 5000});
    if let Some(dir) = dir {
        spec["bundle"] = json!({"uri": format!("file://{}", dir.display())});
    }
    merge(&mut spec, extra);
    serde_json::from_value(json!({"name": format!("{}-test", strategy.as_str()), "spec": spec}))
        .unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// ONNX Runtime for encoder tests, or None (with a message) when it is not installed.
pub fn ort_dylib() -> Option<PathBuf> {
    match std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        _ => {
            eprintln!(
                "skipping: ONNX Runtime not found; run scripts/install-tools.sh and `source scripts/env.sh` (ORT_DYLIB_PATH)"
            );
            None
        }
    }
}

pub fn options() -> WorkerOptions {
    WorkerOptions {
        ort_dylib: std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from),
        ..WorkerOptions::default()
    }
}

pub async fn worker(config: WorkerConfig) -> Worker {
    Worker::start(config, options())
        .await
        .expect("worker starts")
}

/// Sends a request to the worker's router: (status, JSON body).
pub async fn call(
    worker: &Worker,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = worker.router(None).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, json)
}

pub async fn recall(worker: &Worker, body: Value) -> Vec<String> {
    let (status, json) = call(worker, "POST", "/v1/recall", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item_id"].as_str().unwrap().to_string())
        .collect()
}
