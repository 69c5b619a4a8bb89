//! The Qdrant backend through the real client and real gRPC, against an in-process stand-in
//! server (`common/fake_qdrant.rs`): `kan index load`'s loading and alias swap, and a worker
//! searching the collection of its own bundle version.

mod common;
#[path = "common/fake_qdrant.rs"]
mod fake_qdrant;

use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use fake_qdrant::FakeQdrant;
use kan_api::crd::StrategyType;
use kan_worker::bundle::Bundle;
use kan_worker::index::qdrant::{self, ITEM_ID_FIELD};
use serde_json::{Value, json};

const ALIAS: &str = "items";

/// Loads the bundle in `dir` under `version` as `kan index load` does.
async fn load(fake: &FakeQdrant, dir: &Path, version: &str) -> kan_worker::Result<String> {
    let bundle = Bundle::load(dir, None)?;
    let (dim, vectors) = bundle.item_vectors()?;
    let client = qdrant::connect(fake.url(), Duration::from_secs(5))?;
    let report = qdrant::load_bundle(&client, ALIAS, version, &bundle.items, dim, &vectors).await?;
    assert_eq!(report.points, ITEMS);
    Ok(report.collection)
}

fn qdrant_index(fake: &FakeQdrant) -> Value {
    json!({"index": {"type": "qdrant", "qdrant": {"url": fake.url(), "collection": ALIAS, "timeoutMs": 2000}}})
}

fn item2vec_bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Item2vec);
    dir
}

#[tokio::test]
async fn loading_fills_a_versioned_collection_and_moves_the_alias_to_it() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let v1 = load(&fake, dir.path(), "v1").await.unwrap();
    assert_eq!(v1, "items-v1");
    assert_eq!(fake.point_count(&v1), Some(ITEMS));
    assert_eq!(fake.payload_indexes(&v1), [ITEM_ID_FIELD]);
    assert_eq!(fake.alias_target(ALIAS).as_deref(), Some("items-v1"));

    // A new version gets its own collection; the alias moves, the old version stays for rollback.
    let v2 = load(&fake, dir.path(), "v2").await.unwrap();
    assert_eq!(fake.alias_target(ALIAS), Some(v2));
    assert_eq!(fake.collections(), ["items-v1", "items-v2"]);

    // Reloading a version completes its collection in place and never deletes one.
    load(&fake, dir.path(), "v1").await.unwrap();
    assert_eq!(fake.alias_target(ALIAS).as_deref(), Some("items-v1"));
    assert_eq!(fake.point_count("items-v1"), Some(ITEMS));
    assert_eq!(fake.payload_indexes("items-v1"), [ITEM_ID_FIELD]);
    assert_eq!(fake.collections(), ["items-v1", "items-v2"]);
    assert_eq!(fake.deletes(), 0);
}

/// The bundle version of `dir`.
fn version_of(dir: &Path) -> String {
    Bundle::load(dir, None).unwrap().version().to_string()
}

#[tokio::test]
async fn reloading_the_version_a_worker_serves_never_interrupts_it() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let version = version_of(dir.path());
    load(&fake, dir.path(), &version).await.unwrap();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        qdrant_index(&fake),
    ))
    .await;
    let before = recall(&served, json!({"user_id": "u0", "k": 5})).await;
    load(&fake, dir.path(), &version).await.unwrap();
    assert_eq!(fake.deletes(), 0);
    assert_eq!(fake.alias_target(ALIAS), Some(format!("items-{version}")));
    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        before
    );
}

#[tokio::test]
async fn a_worker_keeps_searching_its_own_versions_collection_after_the_alias_moves_on() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let version = version_of(dir.path());
    load(&fake, dir.path(), &version).await.unwrap();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        qdrant_index(&fake),
    ))
    .await;
    let before = recall(&served, json!({"user_id": "u0", "k": 5})).await;
    // A newer bundle is loaded: the alias moves to its collection, whose points number items
    // differently (here: the best hit's point now carries another bundle's id).
    let newer = load(&fake, dir.path(), "newer").await.unwrap();
    assert_eq!(fake.alias_target(ALIAS), Some(newer.clone()));
    let point: u64 = before[0].trim_start_matches('i').parse().unwrap();
    fake.set_payload(&newer, point, ITEM_ID_FIELD, "from-the-newer-bundle");
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        before
    );
}

#[tokio::test]
async fn a_worker_searching_qdrant_answers_like_the_exact_scan_of_its_bundle() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let version = Bundle::load(dir.path(), None)
        .unwrap()
        .version()
        .to_string();
    load(&fake, dir.path(), &version).await.unwrap();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        qdrant_index(&fake),
    ))
    .await;
    let exact = worker(config(StrategyType::Item2vec, Some(dir.path()), json!({}))).await;
    let (status, ready) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["index"], "qdrant");

    for u in 0..USERS {
        let request = json!({"user_id": format!("u{u}"), "k": 8});
        let got = recall(&served, request.clone()).await;
        assert_eq!(got, recall(&exact, request).await, "user u{u}");
        // History items are excluded server-side (must_not has_id), so k items still come back.
        assert_eq!(got.len(), 8);
        for i in user_history(u) {
            assert!(!got.contains(&item(i)), "u{u} got history item {i}");
        }
    }
    // The caller's exclusions too.
    let first = recall(&served, json!({"user_id": "u0", "k": 3})).await;
    let without = recall(
        &served,
        json!({"user_id": "u0", "k": 3, "exclude": [first[0]]}),
    )
    .await;
    assert!(!without.contains(&first[0]));
    assert_eq!(without[..2], first[1..]);
    assert!(fake.queries() >= USERS as u64);
}

#[tokio::test]
async fn the_worker_is_not_ready_until_its_versions_collection_exists_and_says_why() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        qdrant_index(&fake),
    ))
    .await;
    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let error = body["error"].as_str().unwrap();
    let version = version_of(dir.path());
    assert!(
        error.contains(&format!("items-{version}"))
            && error.contains("kan index load")
            && error.contains("doesn't exist"),
        "{error}"
    );

    // Another version's collection behind the alias does not make this worker ready.
    load(&fake, dir.path(), "v1").await.unwrap();
    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    load(&fake, dir.path(), &version).await.unwrap();
    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn failed_upserts_are_retried_and_a_lasting_failure_names_the_batch() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    // A few failures (a restarting server) are absorbed: the client retries UNAVAILABLE once
    // itself, and the loader retries each batch with backoff.
    fake.fail_next_upserts(3);
    load(&fake, dir.path(), "v1").await.unwrap();
    assert_eq!(fake.point_count("items-v1"), Some(ITEMS));

    fake.fail_next_upserts(u32::MAX);
    let error = load(&fake, dir.path(), "v2").await.unwrap_err().to_string();
    assert!(
        error.contains("upserting batch 0 into items-v2") && error.contains("on purpose"),
        "{error}"
    );
    // The alias still points at the complete version.
    assert_eq!(fake.alias_target(ALIAS).as_deref(), Some("items-v1"));
}

#[tokio::test]
async fn hits_whose_item_the_served_bundle_does_not_know_are_dropped() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let collection = load(&fake, dir.path(), &version_of(dir.path()))
        .await
        .unwrap();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        qdrant_index(&fake),
    ))
    .await;
    let before = recall(&served, json!({"user_id": "u0", "k": 5})).await;
    // The best hit now carries an id this bundle does not know (a collection written by
    // something else): the worker must not answer it as some other item.
    let point: u64 = before[0].trim_start_matches('i').parse().unwrap();
    fake.set_payload(&collection, point, ITEM_ID_FIELD, "from-another-bundle");
    let after = recall(&served, json!({"user_id": "u0", "k": 5})).await;
    assert!(!after.contains(&before[0]), "{after:?}");
    assert!(!after.iter().any(|i| i == "from-another-bundle"));
    assert_eq!(after[..before.len() - 1], before[1..]);
}

#[tokio::test]
async fn a_refused_api_key_gets_its_own_code_and_a_message_without_grpc_metadata() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    load(&fake, dir.path(), &version_of(dir.path()))
        .await
        .unwrap();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        qdrant_index(&fake),
    ))
    .await;
    fake.require_api_key("the-right-key");

    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("Invalid api-key") && error.contains("apiKeySecret"),
        "{error}"
    );
    assert!(!error.contains("MetadataMap"), "{error}");

    let (status, body) = call(
        &served,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u0", "k": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "misconfigured", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("refuses the worker's configuration") && !message.contains("MetadataMap"),
        "{message}"
    );
}
