//! `az://` bundles against Azurite, Microsoft's Azure Storage emulator (started by the test, see
//! `common/azurite.rs`): push, fetch with every sha256 verified, a worker serving from it, and
//! the failures a wrong key and a missing bundle give.

#[path = "common/azurite.rs"]
mod azurite;
mod common;

use axum::http::StatusCode;
use azurite::Azurite;
use common::*;
use kan_api::crd::StrategyType;
use kan_worker::bundle::{self, RemoteOptions};
use kan_worker::{Worker, WorkerOptions};
use serde_json::json;

const CONTAINER: &str = "kan-bundles";

fn az_config(key: &str) -> kan_api::worker_config::WorkerConfig {
    config(
        StrategyType::Popular,
        None,
        json!({"bundle": {"uri": format!("az://{CONTAINER}/{key}/")}}),
    )
}

fn options(cache: &std::path::Path, store: RemoteOptions) -> WorkerOptions {
    WorkerOptions {
        bundle_cache: Some(cache.to_path_buf()),
        bundle_store: store,
        ..WorkerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_served_from_azure_blob_storage_is_ready_and_answers_with_the_pushed_version() {
    let Some(azurite) = Azurite::start(&[CONTAINER]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_bundle(dir.path(), StrategyType::Popular);
    bundle::push(
        dir.path(),
        &format!("az://{CONTAINER}/popular/v1"),
        &azurite.options(),
    )
    .await
    .expect("push");

    // Fetched back byte for byte (every sha256 verified on the way).
    let cache = tempfile::tempdir().unwrap();
    let fetched = bundle::fetch(
        &format!("az://{CONTAINER}/popular/v1"),
        &azurite.options(),
        Some(cache.path()),
    )
    .await
    .unwrap();
    for name in manifest.files.keys() {
        assert_eq!(
            std::fs::read(fetched.join(name)).unwrap(),
            std::fs::read(dir.path().join(name)).unwrap(),
            "{name}"
        );
    }

    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        az_config("popular/v1"),
        options(cache.path(), azurite.options()),
    )
    .await
    .unwrap();
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], manifest.version.as_str());
    let (status, body) = call(
        &worker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "anyone", "k": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], manifest.version.as_str());
    assert_eq!(body["candidates"].as_array().unwrap().len(), 3, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_and_a_missing_bundle_leave_the_worker_not_ready_with_the_reason() {
    let Some(azurite) = Azurite::start(&[CONTAINER]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Popular);
    bundle::push(
        dir.path(),
        &format!("az://{CONTAINER}/popular/v1"),
        &azurite.options(),
    )
    .await
    .expect("push");

    // Another (well-formed) account key: Azurite refuses the signature.
    let wrong = azurite.options_with_key(
        "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    );
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(az_config("popular/v1"), options(cache.path(), wrong))
        .await
        .unwrap();
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("az://{CONTAINER}/popular/v1")),
        "{error}"
    );

    let worker = Worker::start(
        az_config("popular/nope"),
        options(cache.path(), azurite.options()),
    )
    .await
    .unwrap();
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("popular/nope") && error.contains("manifest.json"),
        "{error}"
    );
}
