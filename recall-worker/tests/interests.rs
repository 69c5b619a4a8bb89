//! Multi-interest encoders (`user_embedding` `[B, K, D]`): the worker searches each of a user's
//! K vectors — in the exact scan, the embedded HNSW index and Qdrant — and serves the best score
//! per item, top k. The expected lists are computed here by brute force, independently of the
//! worker's merge.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/fake_qdrant.rs"]
#[allow(dead_code)]
mod fake_qdrant;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use fake_qdrant::FakeQdrant;
use kan_api::crd::StrategyType;
use kan_testkit::onnx::interests_encoder_onnx;
use kan_worker::bundle::Bundle;
use kan_worker::index::qdrant;
use kan_worker::index::qdrant::collections::{self, Lifecycle};
use kan_worker::{Worker, WorkerOptions};
use serde_json::json;

const K: usize = 2;

fn multi_interest_bundle(interests: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_bundle_with_model(dir.path(), StrategyType::Dssm, &|vectors| {
        interests_encoder_onnx(vectors, DIM, HISTORY_LENGTH, interests)
    });
    dir
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

/// The `k` items with the best `max_j cos(interest_j, item)`, history excluded, where interest
/// `j < interests` is the history's `j`-th item (what the fixture encoder outputs).
fn brute_force(history: &[usize], interests: usize, k: usize) -> Vec<String> {
    let vectors = vectors();
    let row = |i: usize| &vectors[i * DIM..(i + 1) * DIM];
    let interests: Vec<Vec<f32>> = history
        .iter()
        .take(interests)
        .map(|&i| unit(row(i)))
        .collect();
    let seen: HashSet<usize> = history.iter().copied().collect();
    let mut scored: Vec<(f32, usize)> = (0..ITEMS)
        .filter(|i| !seen.contains(i))
        .map(|i| {
            let best = interests
                .iter()
                .map(|u| u.iter().zip(unit(row(i))).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::MIN, f32::max);
            (best, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| item(i)).collect()
}

/// Histories whose two most recent items sit in different clusters (item `i` is in cluster
/// `i % 4`), so the two interests pull apart.
fn histories() -> Vec<Vec<usize>> {
    (0..8).map(|u| vec![u, u + 9, u + 22]).collect()
}

async fn assert_serves_the_best_score_per_item(worker: &Worker) {
    for history in histories() {
        let ids: Vec<String> = history.iter().map(|&i| item(i)).collect();
        let got = recall(worker, json!({"user_id": "new", "k": 12, "history": ids})).await;
        assert_eq!(got, brute_force(&history, K, 12), "history {history:?}");
    }
}

#[tokio::test]
async fn k_interest_vectors_are_searched_one_by_one_and_merged_by_best_score_in_the_exact_scan() {
    if ort_dylib().is_none() {
        return;
    }
    let dir = multi_interest_bundle(K);
    let served = worker(config(StrategyType::Dssm, Some(dir.path()), json!({}))).await;
    assert_serves_the_best_score_per_item(&served).await;
}

#[tokio::test]
async fn the_embedded_hnsw_index_serves_k_interest_vectors_the_same_way() {
    if ort_dylib().is_none() {
        return;
    }
    let dir = multi_interest_bundle(K);
    let options = WorkerOptions {
        exact_max_items: 0,
        ..options()
    };
    let served = Worker::start(
        config(StrategyType::Dssm, Some(dir.path()), json!({})),
        options,
    )
    .await
    .expect("worker starts");
    // 40 items: the graph is exact at this size.
    assert_serves_the_best_score_per_item(&served).await;
}

async fn load(fake: &FakeQdrant, dir: &Path) {
    let bundle = Bundle::load(dir, None).unwrap();
    let (dim, vectors) = bundle.item_vectors().unwrap();
    let client = qdrant::connect(fake.url(), Duration::from_secs(5)).unwrap();
    qdrant::load_bundle(
        &client,
        "items",
        bundle.version(),
        &bundle.items,
        dim,
        &vectors,
        &Lifecycle {
            loader: collections::loader_id(),
            lease: Duration::from_secs(1),
            keep_versions: 3,
            batch: qdrant::UPSERT_BATCH,
            served_grace: collections::SERVED_GRACE,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn qdrant_gets_a_users_k_searches_in_one_batch_request() {
    if ort_dylib().is_none() {
        return;
    }
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = multi_interest_bundle(K);
    load(&fake, dir.path()).await;
    let index = json!({"index": {"type": "qdrant", "qdrant": {"url": fake.url(), "collection": "items", "timeoutMs": 2000}}});
    let served = worker(config(StrategyType::Dssm, Some(dir.path()), index)).await;
    let before = fake.query_batches();
    assert_serves_the_best_score_per_item(&served).await;
    assert_eq!(fake.query_batches() - before, histories().len() as u64);
}

#[tokio::test]
async fn a_single_interest_history_gives_the_same_list_as_one_vector() {
    if ort_dylib().is_none() {
        return;
    }
    // K = 1 in a [B, K, D] model is the single-vector model.
    let dir = multi_interest_bundle(1);
    let served = worker(config(StrategyType::Dssm, Some(dir.path()), json!({}))).await;
    let history = [5usize, 6, 7];
    let ids: Vec<String> = history.iter().map(|&i| item(i)).collect();
    let got = recall(&served, json!({"user_id": "new", "k": 6, "history": ids})).await;
    assert_eq!(got, brute_force(&history, 1, 6));
}

#[tokio::test]
async fn a_model_with_more_interest_vectors_than_the_worker_searches_is_refused_at_load() {
    if ort_dylib().is_none() {
        return;
    }
    let dir = multi_interest_bundle(kan_core::interests::MAX_INTERESTS + 1);
    let worker = worker(config(StrategyType::Dssm, Some(dir.path()), json!({}))).await;
    let error = worker.last_error().unwrap();
    assert!(
        error.contains("17 interest vectors") && error.contains("at most 16"),
        "{error}"
    );
}

#[tokio::test]
async fn a_bundle_that_changes_only_the_user_encoder_reuses_the_saved_hnsw_graph() {
    if ort_dylib().is_none() {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let one = tempfile::tempdir().unwrap();
    write_bundle(one.path(), StrategyType::Dssm);
    let many = multi_interest_bundle(K);
    let options = || WorkerOptions {
        bundle_cache: Some(cache.path().to_path_buf()),
        exact_max_items: 0,
        ..options()
    };
    for dir in [one.path(), many.path()] {
        Worker::start(config(StrategyType::Dssm, Some(dir), json!({})), options())
            .await
            .expect("worker starts");
    }
    let versions: HashSet<String> = [one.path(), many.path()]
        .iter()
        .map(|d| Bundle::load(d, None).unwrap().version().to_string())
        .collect();
    assert_eq!(versions.len(), 2, "two bundle versions");
    let saved = std::fs::read_dir(cache.path().join("hnsw"))
        .unwrap()
        .count();
    assert_eq!(saved, 1, "one graph: the item vectors are the same");
}
