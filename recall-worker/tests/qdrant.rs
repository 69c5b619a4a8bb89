//! The Qdrant backend through the real client and real gRPC, against an in-process stand-in
//! server (`common/fake_qdrant.rs`): `kan index load`'s loading and alias swap, a worker
//! searching the collection of its own bundle version, the collection lifecycle (workers racing
//! to load a new version, a loader cut off mid-upload, garbage collection) and the search retry.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/fake_qdrant.rs"]
mod fake_qdrant;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use fake_qdrant::FakeQdrant;
use kan_api::crd::StrategyType;
use kan_worker::Worker;
use kan_worker::bundle::Bundle;
use kan_worker::index::qdrant::collections::{self, Lifecycle};
use kan_worker::index::qdrant::{self, ITEM_ID_FIELD};
use serde_json::{Value, json};

const ALIAS: &str = "items";

/// `kan index load`'s settings: its defaults but batches of `batch` points and a short lease.
fn lifecycle(batch: usize, keep_versions: usize) -> Lifecycle {
    Lifecycle {
        loader: collections::loader_id(),
        lease: Duration::from_secs(1),
        keep_versions,
        batch,
        served_grace: collections::SERVED_GRACE,
    }
}

/// Loads the bundle in `dir` under `version` as `kan index load` does.
async fn load(fake: &FakeQdrant, dir: &Path, version: &str) -> kan_worker::Result<String> {
    load_with(fake, dir, version, &lifecycle(1000, 3)).await
}

async fn load_with(
    fake: &FakeQdrant,
    dir: &Path,
    version: &str,
    lifecycle: &Lifecycle,
) -> kan_worker::Result<String> {
    let bundle = Bundle::load(dir, None)?;
    let (dim, vectors) = bundle.item_vectors()?;
    let client = qdrant::connect(fake.url(), Duration::from_secs(5))?;
    let report = qdrant::load_bundle(
        &client,
        ALIAS,
        version,
        &bundle.items,
        dim,
        &vectors,
        lifecycle,
    )
    .await?;
    assert_eq!(report.points, ITEMS);
    Ok(report.collection)
}

/// Polls `/readyz` until ready (panics after 20 s), returning every not-ready reason seen.
async fn until_ready(worker: &Worker) -> Vec<String> {
    let started = Instant::now();
    let mut reasons = Vec::new();
    loop {
        let (status, body) = call(worker, "GET", "/readyz", None).await;
        if status == StatusCode::OK {
            return reasons;
        }
        let reason = body["error"].as_str().unwrap_or_default().to_string();
        if reasons.last() != Some(&reason) {
            reasons.push(reason);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready after 20 s: {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker on the stand-in, ready.
async fn ready_worker(fake: &FakeQdrant, dir: &Path) -> Worker {
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir),
        qdrant_index(fake),
    ))
    .await;
    until_ready(&served).await;
    served
}

fn qdrant_index(fake: &FakeQdrant) -> Value {
    json!({"index": {"type": "qdrant", "qdrant": {"url": fake.url(), "collection": ALIAS, "timeoutMs": 2000}}})
}

/// Workers that wait for `kan index load` instead of loading (`collections.load: false`).
fn manual(fake: &FakeQdrant) -> Value {
    json!({"index": {"type": "qdrant", "qdrant": {"url": fake.url(), "collection": ALIAS, "timeoutMs": 2000, "collections": {"load": false}}}})
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
    let served = ready_worker(&fake, dir.path()).await;
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
    let served = ready_worker(&fake, dir.path()).await;
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
    let served = ready_worker(&fake, dir.path()).await;
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
async fn a_worker_searching_qdrant_refuses_new_items_and_says_why() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let served = ready_worker(&fake, dir.path()).await;
    let before = recall(&served, json!({"user_id": "u0", "k": 5})).await;
    let vector = vectors()[..DIM].to_vec();
    let (status, body) = call(
        &served,
        "POST",
        "/v1/items",
        Some(json!({"items": [{"id": "new", "vector": vector}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "items");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Qdrant") && message.contains("embedded"),
        "{message}"
    );
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        before
    );
}

#[tokio::test]
async fn a_worker_that_does_not_load_is_not_ready_until_its_versions_collection_exists_and_says_why()
 {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let served = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        manual(&fake),
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
    let served = ready_worker(&fake, dir.path()).await;
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
    let served = ready_worker(&fake, dir.path()).await;
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

#[tokio::test]
async fn two_workers_of_a_new_version_race_one_loads_and_the_other_waits_then_serves() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let version = version_of(dir.path());
    // A slow upload, so the second worker finds the first one loading.
    fake.slow_upserts(Duration::from_millis(800));
    let spec = || {
        config(
            StrategyType::Item2vec,
            Some(dir.path()),
            qdrant_index(&fake),
        )
    };
    let (a, b) = tokio::join!(worker(spec()), worker(spec()));
    let (seen_a, seen_b) = tokio::join!(until_ready(&a), until_ready(&b));

    // Exactly one claimed the collection and uploaded it, once.
    let collection = format!("items-{version}");
    assert_eq!(fake.creates(), 1);
    assert_eq!(fake.upserted_points(), ITEMS as u64);
    assert_eq!(fake.point_count(&collection), Some(ITEMS));
    let meta = fake.metadata(&collection);
    assert_eq!(meta["kan_complete"], true, "{meta}");
    assert_eq!(meta["kan_points"], ITEMS, "{meta}");
    // The loader moved the alias for outside readers.
    assert_eq!(fake.alias_target(ALIAS), Some(collection.clone()));
    // Neither was ready before the collection was complete; one said it was loading, the other
    // that it waited for the loader (named after the lock in the collection's metadata).
    let loader = meta["kan_loader"].as_str().unwrap().to_string();
    let said = |seen: &[String], what: &str| seen.iter().any(|r| r.contains(what));
    let waited = |seen: &[String]| said(seen, &format!("waiting for {loader} to finish loading"));
    assert!(
        (said(&seen_a, "loading qdrant collection") && waited(&seen_b))
            || (said(&seen_b, "loading qdrant collection") && waited(&seen_a)),
        "a: {seen_a:?}\nb: {seen_b:?}"
    );
    // Both serve the same lists as the exact scan of the bundle.
    let exact = worker(config(StrategyType::Item2vec, Some(dir.path()), json!({}))).await;
    for u in 0..3 {
        let request = json!({"user_id": format!("u{u}"), "k": 8});
        let want = recall(&exact, request.clone()).await;
        assert_eq!(recall(&a, request.clone()).await, want);
        assert_eq!(recall(&b, request).await, want);
    }
}

#[tokio::test]
async fn a_loader_cut_off_mid_upload_is_taken_over_after_its_lease_and_nothing_partial_is_served() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let version = version_of(dir.path());
    let collection = format!("items-{version}");
    // `kan index load` in batches of 10 dies after two of its four batches.
    fake.pause_upserts_after(2);
    let dead = lifecycle(10, 3);
    let dead_loader = dead.loader.clone();
    let doomed = {
        let dir = dir.path().to_path_buf();
        let url = fake.url().to_string();
        let version = version.clone();
        tokio::spawn(async move {
            let bundle = Bundle::load(&dir, None).unwrap();
            let (dim, vectors) = bundle.item_vectors().unwrap();
            let client = qdrant::connect(&url, Duration::from_secs(30)).unwrap();
            let _ = qdrant::load_bundle(
                &client,
                ALIAS,
                &version,
                &bundle.items,
                dim,
                &vectors,
                &dead,
            )
            .await;
        })
    };
    let started = Instant::now();
    while fake.point_count(&collection) != Some(20) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no partial load"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.abort();
    let _ = doomed.await;
    fake.resume_upserts();

    // A worker that waits for `kan index load` does not serve the partial collection.
    let waiting = worker(config(
        StrategyType::Item2vec,
        Some(dir.path()),
        manual(&fake),
    ))
    .await;
    let (status, body) = call(&waiting, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not complete yet"),
        "{body}"
    );

    // A worker that loads waits out the dead loader's lease, then takes the load over.
    let mut spec = qdrant_index(&fake);
    spec["index"]["qdrant"]["collections"] = json!({"leaseSeconds": 1});
    let taker = worker(config(StrategyType::Item2vec, Some(dir.path()), spec)).await;
    let (status, body) = call(
        &taker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u0", "k": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let seen = until_ready(&taker).await;
    assert!(
        seen.iter()
            .any(|r| r.contains(&format!("waiting for {dead_loader} to finish loading"))),
        "{seen:?}"
    );
    let meta = fake.metadata(&collection);
    assert_eq!(meta["kan_complete"], true, "{meta}");
    assert_ne!(meta["kan_loader"], dead_loader.as_str(), "{meta}");
    assert_eq!(fake.point_count(&collection), Some(ITEMS));
    assert_eq!(fake.deletes(), 0);
    until_ready(&waiting).await;
    let exact = worker(config(StrategyType::Item2vec, Some(dir.path()), json!({}))).await;
    let request = json!({"user_id": "u1", "k": 8});
    assert_eq!(
        recall(&taker, request.clone()).await,
        recall(&exact, request).await
    );
}

#[tokio::test]
async fn garbage_collection_keeps_the_newest_versions_the_alias_target_and_what_a_worker_serves() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    let version = version_of(dir.path());
    let served_collection = format!("items-{version}");
    // A worker serves the bundle's own version; its readiness check stamps it as served.
    load(&fake, dir.path(), &version).await.unwrap();
    let served = ready_worker(&fake, dir.path()).await;
    let before = recall(&served, json!({"user_id": "u0", "k": 5})).await;
    let started = Instant::now();
    while fake
        .metadata(&served_collection)
        .get("kan_served_at")
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(5), "never stamped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Not Kan's: never touched, whatever its name.
    fake.add_foreign_collection("items-foreign", DIM, 3);

    let keep_one = lifecycle(1000, 1);
    for v in ["v1", "v2", "v3"] {
        load_with(&fake, dir.path(), v, &keep_one).await.unwrap();
    }
    // Newest one (v3, also the alias target) kept, the served version kept, v1 and v2 gone.
    let mut want = vec!["items-foreign", "items-v3", served_collection.as_str()];
    want.sort_unstable();
    assert_eq!(fake.collections(), want);
    assert_eq!(fake.alias_target(ALIAS).as_deref(), Some("items-v3"));
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        before
    );

    // Rolled back for outside readers: the alias target stays however old it is.
    load_with(&fake, dir.path(), &version, &keep_one)
        .await
        .unwrap();
    assert_eq!(fake.alias_target(ALIAS), Some(served_collection.clone()));
    load_with(&fake, dir.path(), "v4", &lifecycle(1000, 1))
        .await
        .unwrap();
    assert!(fake.collections().contains(&served_collection));
    assert!(!fake.collections().contains(&"items-v3".to_string()));

    // Once no worker has stamped it within the grace window, an old version goes.
    let no_grace = Lifecycle {
        served_grace: Duration::ZERO,
        ..lifecycle(1000, 1)
    };
    load_with(&fake, dir.path(), "v5", &no_grace).await.unwrap();
    assert_eq!(fake.collections(), ["items-foreign", "items-v5"]);
}

#[tokio::test]
async fn a_search_that_fails_transiently_is_retried_once_within_the_deadline() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let dir = item2vec_bundle();
    load(&fake, dir.path(), &version_of(dir.path()))
        .await
        .unwrap();
    let served = ready_worker(&fake, dir.path()).await;
    let want = recall(&served, json!({"user_id": "u0", "k": 5})).await;

    // The client re-dials once by itself on UNAVAILABLE; the second failure is the worker's
    // retry to absorb.
    let queries = fake.queries();
    fake.fail_next_queries(&[tonic::Code::Unavailable, tonic::Code::Unavailable]);
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        want
    );
    assert_eq!(fake.queries() - queries, 3);
    // A code the client does not retry at all (an overloaded server).
    fake.fail_next_queries(&[tonic::Code::ResourceExhausted]);
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        want
    );

    // Once only: two failures of the worker's own attempts fail the search.
    fake.fail_next_queries(&[tonic::Code::ResourceExhausted; 2]);
    let (status, body) = call(
        &served,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u0", "k": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Not a transient failure: no retry.
    let queries = fake.queries();
    fake.fail_next_queries(&[tonic::Code::InvalidArgument]);
    let (status, body) = call(
        &served,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u0", "k": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(fake.queries() - queries, 1);
}

#[tokio::test]
async fn a_new_bundle_version_keeps_the_old_one_serving_until_its_collection_is_loaded() {
    let fake = FakeQdrant::spawn().await.unwrap();
    let old = item2vec_bundle();
    let served = ready_worker(&fake, old.path()).await;
    let old_version = version_of(old.path());
    let before = recall(&served, json!({"user_id": "u0", "k": 5})).await;

    // The queue moves to a bundle whose vectors differ (another version); its upload hangs.
    let new = tempfile::tempdir().unwrap();
    let reversed: Vec<f32> = vectors().chunks(DIM).rev().flatten().copied().collect();
    write_bundle_with_vectors(new.path(), StrategyType::Item2vec, reversed);
    let new_version = version_of(new.path());
    assert_ne!(new_version, old_version);
    fake.pause_upserts_after(0);
    let reload = {
        let served = served.clone();
        let config = config(
            StrategyType::Item2vec,
            Some(new.path()),
            qdrant_index(&fake),
        );
        tokio::spawn(async move { served.reload(config).await })
    };
    let started = Instant::now();
    while !fake.collections().contains(&format!("items-{new_version}")) {
        assert!(started.elapsed() < Duration::from_secs(10), "no load began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Meanwhile the old version answers, ready.
    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], old_version.as_str());
    assert_eq!(
        recall(&served, json!({"user_id": "u0", "k": 5})).await,
        before
    );

    fake.resume_upserts();
    reload.await.unwrap().unwrap();
    let (status, body) = call(&served, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], new_version.as_str());
    assert_eq!(
        fake.alias_target(ALIAS),
        Some(format!("items-{new_version}"))
    );
}
