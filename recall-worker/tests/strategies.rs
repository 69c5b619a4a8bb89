//! Every strategy through HTTP on a tiny bundle written in the test.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use kan_api::crd::StrategyType;
use kan_worker::index::exact::ExactIndex;
use kan_worker::index::{SearchParams, normalise};
use serde_json::json;

/// The exact answer for a history: top `k` by cosine to the normalised sum of its vectors, the
/// history and `exclude` left out.
fn expected_vector_recall(history: &[usize], exclude: &[usize], k: usize) -> Vec<String> {
    let vectors = vectors();
    let mut user = vec![0f32; DIM];
    for &i in history {
        user.iter_mut()
            .zip(&vectors[i * DIM..(i + 1) * DIM])
            .for_each(|(u, v)| *u += v);
    }
    assert!(normalise(&mut user));
    let skip: kan_worker::index::ItemSet =
        history.iter().chain(exclude).map(|&i| i as u32).collect();
    let index = ExactIndex::new(DIM, Arc::new(vectors));
    index
        .search_sync(
            &user,
            SearchParams {
                limit: k,
                score_threshold: None,
                exclude: &skip,
            },
        )
        .iter()
        .map(|h| item(h.item as usize))
        .collect()
}

async fn encoder_strategy_recalls_the_exact_neighbours_of_the_history(strategy: StrategyType) {
    if ort_dylib().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), strategy);
    let worker = worker(config(strategy, Some(dir.path()), json!({}))).await;
    assert_eq!(worker.last_error(), None);
    let got = recall(
        &worker,
        json!({"user_id": "nobody", "k": 5, "history": ["i3", "i7"], "exclude": ["i9"]}),
    )
    .await;
    // Recency weights do not exist in the synthetic encoder: a plain normalised sum.
    let want = expected_vector_recall(&[3, 7], &[9], 5);
    assert_eq!(got.len(), 5);
    let overlap = got.iter().filter(|g| want.contains(g)).count();
    assert!(overlap >= 4, "got {got:?}, exact {want:?}");
    assert!(!got.contains(&item(9)) && !got.contains(&item(3)));
}

#[tokio::test]
async fn dssm_recalls_the_exact_neighbours_of_the_history_through_onnx() {
    encoder_strategy_recalls_the_exact_neighbours_of_the_history(StrategyType::Dssm).await;
}

#[tokio::test]
async fn gat_recalls_the_exact_neighbours_of_the_history_through_onnx() {
    encoder_strategy_recalls_the_exact_neighbours_of_the_history(StrategyType::Gat).await;
}

#[tokio::test]
async fn sequence_is_served_by_the_encoder_path_like_dssm() {
    encoder_strategy_recalls_the_exact_neighbours_of_the_history(StrategyType::Sequence).await;
}

#[tokio::test]
async fn encoder_strategies_return_nothing_for_a_user_without_history() {
    if ort_dylib().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Dssm);
    let worker = worker(config(StrategyType::Dssm, Some(dir.path()), json!({}))).await;
    assert!(
        recall(&worker, json!({"user_id": "stranger"}))
            .await
            .is_empty()
    );
    // A known user without a request history is served from the bundle's history.
    let got = recall(&worker, json!({"user_id": "u2", "k": 3})).await;
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|g| !user_history(2).iter().any(|&i| item(i) == *g))
    );
}

#[tokio::test]
async fn item2vec_ranks_by_the_recency_weighted_mean_of_the_history() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Item2vec);
    // recencyDecay 1.0 makes the weighted mean the plain mean, comparable with the exact scan.
    let worker = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        json!({"strategy": {"item2vec": {"recencyDecay": 1.0}}}),
    ))
    .await;
    let got = recall(
        &worker,
        json!({"user_id": "u1", "k": 6, "history": ["i3", "i7"], "exclude": ["i11"]}),
    )
    .await;
    assert_eq!(got, expected_vector_recall(&[3, 7], &[11], 6));
    assert!(
        recall(&worker, json!({"user_id": "stranger"}))
            .await
            .is_empty(),
        "cold start: nothing"
    );
}

#[tokio::test]
async fn itemcf_sums_neighbour_weights_of_recent_items() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Itemcf);
    let worker = worker(config(
        StrategyType::Itemcf,
        Some(dir.path()),
        json!({"strategy": {"itemcf": {"recencyDecay": 0.5}}}),
    ))
    .await;
    // i10 -> i11 (1.0), i12 (0.5); i20 (older, weight 0.5) -> i21 (0.5), i22 (0.25)
    let got = recall(&worker, json!({"user_id": "x", "history": ["i10", "i20"]})).await;
    assert_eq!(got, vec!["i11", "i12", "i21", "i22"]);
    let got = recall(
        &worker,
        json!({"user_id": "x", "history": ["i10", "i20"], "exclude": ["i11"], "k": 2}),
    )
    .await;
    assert_eq!(got, vec!["i12", "i21"]);
    // From the bundle: u1's history is i4, i5, i6 → neighbours i7, i8 (i5, i6 are history).
    let got = recall(&worker, json!({"user_id": "u1"})).await;
    assert_eq!(got, vec!["i7", "i8"]);
}

#[tokio::test]
async fn social_recalls_what_strong_friends_engaged_with() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Social);
    let worker = worker(config(
        StrategyType::Social,
        Some(dir.path()),
        json!({"strategy": {"social": {"halfLifeHours": 1.0}}}),
    ))
    .await;
    let got = recall(&worker, json!({"user_id": "u0", "k": 6})).await;
    // u1 (strength 1.0) engaged with i4, i5, i6 (newest first); u2 (0.1) with i8, i9, i10.
    assert_eq!(got, vec!["i4", "i5", "i6", "i8", "i9", "i10"]);
    assert!(
        recall(&worker, json!({"user_id": "u5"})).await.is_empty(),
        "no friends: nothing"
    );
    assert!(
        recall(&worker, json!({"user_id": "stranger"}))
            .await
            .is_empty(),
        "unknown user: nothing"
    );
}

#[tokio::test]
async fn exploratory_avoids_dominant_interests_and_is_deterministic_per_user() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Exploratory);
    let worker = worker(config(
        StrategyType::Exploratory,
        Some(dir.path()),
        json!({"strategy": {"exploratory": {"dominantInterests": 1, "seed": 3}}}),
    ))
    .await;
    // History in category 1 only (items 1, 5, 9 ≡ 1 mod 4).
    let body = json!({"user_id": "u1", "k": 15, "history": ["i1", "i5", "i9"]});
    let first = recall(&worker, body.clone()).await;
    assert_eq!(first.len(), 15);
    assert!(
        first
            .iter()
            .all(|id| id[1..].parse::<usize>().unwrap() % 4 != 1),
        "{first:?}"
    );
    assert_eq!(
        recall(&worker, body).await,
        first,
        "same user, same day, same list"
    );
    let cold = recall(&worker, json!({"user_id": "stranger", "k": 20})).await;
    let categories: HashSet<usize> = cold
        .iter()
        .map(|id| id[1..].parse::<usize>().unwrap() % 4)
        .collect();
    assert_eq!(
        categories.len(),
        4,
        "cold start: every category is eligible: {cold:?}"
    );
}

/// (item id, score) of a recall answer.
async fn scored(worker: &kan_worker::Worker, body: serde_json::Value) -> Vec<(String, f64)> {
    let (status, json) = call(worker, "POST", "/v1/recall", Some(body)).await;
    assert_eq!(status, axum::http::StatusCode::OK, "{json}");
    json["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["item_id"].as_str().unwrap().to_string(),
                c["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn exploratory_expansion_doubles_the_draws_of_items_next_to_the_users_interests() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Exploratory);
    let settings = |kg: bool| json!({"strategy": {"exploratory": {"dominantInterests": 1, "seed": 3, "kgExpansion": kg}}});
    let plain = worker(config(
        StrategyType::Exploratory,
        Some(dir.path()),
        settings(false),
    ))
    .await;
    let expanded = worker(config(
        StrategyType::Exploratory,
        Some(dir.path()),
        settings(true),
    ))
    .await;
    // History in category 1 (sport, dominant); the bundle relates sport to music (category 2).
    let body = json!({"user_id": "u1", "k": 20, "history": ["i1", "i5", "i9"]});
    let before: std::collections::HashMap<String, f64> =
        scored(&plain, body.clone()).await.into_iter().collect();
    let after = scored(&expanded, body).await;
    // The same draws (same user, day and seed): an item in both lists has its score doubled
    // when it is a music item, unchanged otherwise.
    let common: Vec<_> = after
        .iter()
        .filter_map(|(id, score)| Some((id, score, before.get(id)?)))
        .collect();
    assert!(common.len() >= 10, "{after:?} vs {before:?}");
    for (id, score, was) in common {
        let category = id[1..].parse::<usize>().unwrap() % 4;
        let factor = if category == 2 { 2.0 } else { 1.0 };
        assert!(
            (score - factor * was).abs() < 1e-5,
            "{id} (category {category}): {score} vs {was}"
        );
    }
    // Music items now lead the list.
    let top: Vec<usize> = after[..5]
        .iter()
        .map(|(id, _)| id[1..].parse::<usize>().unwrap() % 4)
        .collect();
    assert!(top.iter().filter(|&&c| c == 2).count() >= 3, "{after:?}");
}

#[tokio::test]
async fn exploratory_expansion_on_a_bundle_without_the_category_graph_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Exploratory);
    // A bundle from before the graph was written: no related_tags.safetensors.
    let manifest_path = dir.path().join(kan_api::bundle::MANIFEST_FILE);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["files"]
        .as_object_mut()
        .unwrap()
        .remove(kan_api::bundle::files::RELATED_TAGS);
    let files: std::collections::BTreeMap<String, String> =
        serde_json::from_value(manifest["files"].clone()).unwrap();
    manifest["version"] = kan_api::bundle::content_version(&files).into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    std::fs::remove_file(dir.path().join(kan_api::bundle::files::RELATED_TAGS)).unwrap();

    let settings = |kg: bool| json!({"strategy": {"exploratory": {"dominantInterests": 1, "kgExpansion": kg}}});
    let worker = worker(config(
        StrategyType::Exploratory,
        Some(dir.path()),
        settings(false),
    ))
    .await;
    assert_eq!(
        recall(&worker, json!({"user_id": "u1", "k": 5}))
            .await
            .len(),
        5
    );
    let err = worker
        .reload(config(
            StrategyType::Exploratory,
            Some(dir.path()),
            settings(true),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kgExpansion") && err.contains("retrain"),
        "{err}"
    );
    // The queue that was serving keeps serving.
    assert_eq!(
        recall(&worker, json!({"user_id": "u1", "k": 5}))
            .await
            .len(),
        5
    );
}

#[tokio::test]
async fn popular_serves_the_segment_of_the_request_context_then_global() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Popular);
    let worker = worker(config(
        StrategyType::Popular,
        Some(dir.path()),
        json!({"strategy": {"popular": {"segmentBy": ["region"]}}}),
    ))
    .await;
    let got = recall(
        &worker,
        json!({"user_id": "u", "k": 7, "context": {"region": "SH"}}),
    )
    .await;
    assert_eq!(got, vec!["i30", "i31", "i32", "i33", "i34", "i0", "i1"]);
    let got = recall(
        &worker,
        json!({"user_id": "u", "k": 3, "context": {"region": "BJ"}, "exclude": ["i1"]}),
    )
    .await;
    assert_eq!(got, vec!["i0", "i2", "i3"]);
}

#[tokio::test]
async fn operational_serves_pinned_items_inside_their_windows_without_a_bundle() {
    let pins = json!({"strategy": {"operational": {"items": [
        {"itemId": "launch", "score": 10.0},
        {"itemId": "expired", "end": "2001-01-01T00:00:00Z"},
        {"itemId": "future", "start": "2999-01-01T00:00:00Z"},
        {"itemId": "evergreen"}
    ]}}});
    let worker = worker(config(StrategyType::Operational, None, pins)).await;
    assert_eq!(
        recall(&worker, json!({"user_id": "anyone"})).await,
        vec!["launch", "evergreen"]
    );
    assert_eq!(
        recall(&worker, json!({"user_id": "anyone", "exclude": ["launch"]})).await,
        vec!["evergreen"]
    );
}

#[tokio::test]
async fn k_is_capped_by_max_candidates() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Popular);
    let worker = worker(config(
        StrategyType::Popular,
        Some(dir.path()),
        json!({"candidates": 3, "maxCandidates": 4}),
    ))
    .await;
    assert_eq!(
        recall(&worker, json!({"user_id": "u", "k": 100}))
            .await
            .len(),
        4
    );
    assert_eq!(
        recall(&worker, json!({"user_id": "u"})).await.len(),
        3,
        "the queue's default k"
    );
}

#[tokio::test]
async fn an_hnsw_graph_is_saved_in_the_bundle_cache_and_loaded_by_the_next_start() {
    let (bundle, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Item2vec);
    let cached = || kan_worker::WorkerOptions {
        bundle_cache: Some(cache.path().to_path_buf()),
        exact_max_items: 0,
        ..options()
    };
    let spec = || {
        config(
            StrategyType::Item2vec,
            Some(bundle.path()),
            json!({"strategy": {"item2vec": {"recencyDecay": 1.0}},
                   "index": {"type": "embedded", "hnsw": {"m": 8, "efConstruction": 32}}}),
        )
    };
    let body = json!({"user_id": "u1", "k": 6, "history": ["i3", "i7"]});
    let first = kan_worker::Worker::start(spec(), cached()).await.unwrap();
    let built = recall(&first, body.clone()).await;
    let saved: Vec<_> = std::fs::read_dir(cache.path().join("hnsw"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    // Named by the spec's graph parameters, so other parameters never load this graph.
    let name = saved[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("-m8-efc32.usearch"), "{name}");

    let second = kan_worker::Worker::start(spec(), cached()).await.unwrap();
    assert_eq!(recall(&second, body.clone()).await, built);

    // A damaged graph is not served: the next start rebuilds it and answers the same.
    std::fs::write(&saved[0], b"truncated").unwrap();
    let third = kan_worker::Worker::start(spec(), cached()).await.unwrap();
    assert_eq!(recall(&third, body).await, built);
    assert!(std::fs::metadata(&saved[0]).unwrap().len() > 100);
}
