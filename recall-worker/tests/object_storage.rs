//! Bundles from object storage, against a real S3-compatible server (moto) started per test:
//! a queue served from `s3://` end to end, and every way a download can go wrong leaving the
//! worker not ready or on its old bundle.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::*;
use futures::future::BoxFuture;
use kan_api::bundle::{BundleManifest, files};
use kan_api::crd::StrategyType;
use kan_testkit::bundle::{BundleWriter, TensorData};
use kan_worker::bundle::{self, RemoteOptions};
use kan_worker::{Worker, WorkerOptions};
use moto::Moto;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;

const BUCKET: &str = "kan-bundles";

/// A popular bundle whose item ids start with `prefix`: two prefixes, two versions.
fn popular_bundle(dir: &Path, prefix: &str) -> BundleManifest {
    let mut w = BundleWriter::new(dir).unwrap();
    w.ids(
        files::ITEMS,
        &(0..ITEMS)
            .map(|i| format!("{prefix}{i}"))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    w.tensors(
        files::POPULAR,
        vec![
            ("global/items", TensorData::I64(vec![20], (0..20).collect())),
            (
                "global/scores",
                TensorData::F32(vec![20], (0..20).map(|i| 100.0 - i as f32).collect()),
            ),
        ],
    )
    .unwrap();
    w.finish(StrategyType::Popular, None, json!({})).unwrap()
}

/// Writes a popular bundle and pushes it to `s3://BUCKET/{key}`.
async fn publish(moto: &Moto, key: &str, prefix: &str) -> BundleManifest {
    let dir = tempfile::tempdir().unwrap();
    let manifest = popular_bundle(dir.path(), prefix);
    bundle::push(dir.path(), &format!("s3://{BUCKET}/{key}"), &moto.options())
        .await
        .expect("push");
    manifest
}

fn s3_config(key: &str, endpoint: &str) -> kan_api::worker_config::WorkerConfig {
    config(
        StrategyType::Popular,
        None,
        json!({"bundle": {"uri": format!("s3://{BUCKET}/{key}/"), "endpoint": endpoint}}),
    )
}

fn options(cache: &Path, store: RemoteOptions) -> WorkerOptions {
    WorkerOptions {
        bundle_cache: Some(cache.to_path_buf()),
        // The spec's bundle.endpoint is what the worker uses; keep the key settings only.
        bundle_store: RemoteOptions {
            endpoint: None,
            ..store
        },
        ..WorkerOptions::default()
    }
}

fn direct_store(moto: &Moto) -> Arc<dyn ObjectStore> {
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(&moto.endpoint)
        .with_allow_http(true);
    for (key, value) in &moto.options().settings {
        builder = builder.with_config(key.parse().unwrap(), value);
    }
    Arc::new(builder.build().unwrap())
}

/// Names under the cache directory (downloads and leftovers).
fn cache_entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_served_from_s3_is_ready_answers_recall_and_reports_the_bundle_version() {
    let moto = Moto::start(true, &[BUCKET]);
    let manifest = publish(&moto, "popular/v1", "i").await;
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        s3_config("popular/v1", &moto.endpoint),
        options(cache.path(), moto.options()),
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
    let ids: Vec<&str> = body["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["i0", "i1", "i2"]);
    assert_eq!(cache_entries(cache.path()), vec![manifest.version.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_leave_the_worker_not_ready_with_a_clear_error() {
    let moto = Moto::start(true, &[BUCKET]);
    publish(&moto, "popular/v1", "i").await;
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        s3_config("popular/v1", &moto.endpoint),
        options(cache.path(), moto.options_with_secret("not-the-secret")),
    )
    .await
    .unwrap();
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("manifest.json: access denied: check the credentials"),
        "{error}"
    );
    assert!(cache_entries(cache.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_object_is_refused_and_the_old_bundle_keeps_serving() {
    let moto = Moto::start(true, &[BUCKET]);
    let v1 = publish(&moto, "popular/v1", "i").await;
    publish(&moto, "popular/v2", "x").await;
    direct_store(&moto)
        .delete(&"popular/v2/popular.safetensors".into())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        s3_config("popular/v1", &moto.endpoint),
        options(cache.path(), moto.options()),
    )
    .await
    .unwrap();
    let e = worker
        .reload(s3_config("popular/v2", &moto.endpoint))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("popular.safetensors: object popular/v2/popular.safetensors not found"),
        "{e}"
    );
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "the old bundle serves");
    assert_eq!(body["version"], v1.version.as_str());
    assert!(body["error"].as_str().unwrap().contains("not found"));
    assert_eq!(cache_entries(cache.path()), vec![v1.version.clone()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_object_fails_its_checksum_and_nothing_is_kept() {
    let moto = Moto::start(true, &[BUCKET]);
    publish(&moto, "popular/v1", "i").await;
    let store = direct_store(&moto);
    let path = "popular/v1/items.txt".into();
    let full = store.get(&path).await.unwrap().bytes().await.unwrap();
    store
        .put(&path, full.slice(..full.len() / 2).into())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let worker = Worker::start(
        s3_config("popular/v1", &moto.endpoint),
        options(cache.path(), moto.options()),
    )
    .await
    .unwrap();
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("checksum mismatch for bundle file items.txt"),
        "{error}"
    );
    assert!(
        cache_entries(cache.path()).is_empty(),
        "no partial download is left behind"
    );
}

/// An action the proxy runs once, before forwarding the next GET of its trigger file.
type Pending = Arc<Mutex<Option<BoxFuture<'static, ()>>>>;

/// A proxy in front of moto that runs the armed action before forwarding the first GET whose
/// path ends with `trigger`: the bucket changes at a known point of a download.
async fn proxy(upstream: String, trigger: &'static str) -> (String, Pending) {
    let pending: Pending = Arc::new(Mutex::new(None));
    let armed = pending.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let pending = pending.clone();
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let (parts, body) = request.into_parts();
            if parts.method == axum::http::Method::GET && parts.uri.path().ends_with(trigger) {
                let action = pending.lock().unwrap().take();
                if let Some(action) = action {
                    action.await;
                }
            }
            let body = axum::body::to_bytes(body, 1 << 26).await.unwrap();
            let url = format!(
                "{upstream}{}",
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
            );
            let mut forward = client.request(parts.method.clone(), url).body(body);
            for (name, value) in &parts.headers {
                if !matches!(
                    name.as_str(),
                    "host" | "content-length" | "transfer-encoding"
                ) {
                    forward = forward.header(name, value);
                }
            }
            let response = forward.send().await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap();
            let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
            *out.status_mut() = status;
            for (name, value) in &headers {
                if !matches!(name.as_str(), "content-length" | "transfer-encoding") {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            out
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), armed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_that_changes_during_the_download_is_refused_and_a_retry_serves_the_new_one() {
    // Without request authentication, so the proxy may forward requests signed for its address.
    let moto = Moto::start(false, &[BUCKET]);
    let v1 = publish(&moto, "popular/live", "i").await;
    let cache = tempfile::tempdir().unwrap();
    let store = moto.options();
    // Uploads a bundle with other item ids once the download of v2 has fetched items.txt.
    let upload_dir = tempfile::tempdir().unwrap();
    let v3 = popular_bundle(upload_dir.path(), "y");
    let (endpoint, pending) = proxy(moto.endpoint.clone(), "/popular.safetensors").await;
    let worker = Worker::start(
        s3_config("popular/live", &endpoint),
        options(cache.path(), store.clone()),
    )
    .await
    .unwrap();
    assert_eq!(worker.current().unwrap().version, v1.version);
    // v2 replaces v1 at the same URI; while the worker downloads it (after items.txt, before
    // popular.safetensors, which v2 and v3 share), v3 replaces v2.
    let v2 = publish(&moto, "popular/live", "x").await;
    let action_dir = upload_dir.path().to_path_buf();
    *pending.lock().unwrap() = Some(Box::pin(async move {
        bundle::push(&action_dir, &format!("s3://{BUCKET}/popular/live"), &store)
            .await
            .expect("push v3 mid-download");
    }));
    let e = worker.refresh().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "the bundle changed during the download (manifest version {} became {})",
            v2.version, v3.version
        )),
        "{e}"
    );
    assert_eq!(
        worker.current().unwrap().version,
        v1.version,
        "v1 keeps serving"
    );
    assert_eq!(cache_entries(cache.path()), vec![v1.version.clone()]);
    // The next attempt starts from scratch and serves the bundle now in the bucket.
    worker.refresh().await.unwrap();
    assert_eq!(worker.current().unwrap().version, v3.version);
    assert_eq!(
        recall(&worker, json!({"user_id": "u", "k": 2})).await,
        ["y0", "y1"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_bundle_is_verified_first_and_fetched_back_identical() {
    let moto = Moto::start(true, &[BUCKET]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = popular_bundle(dir.path(), "i");
    std::fs::write(dir.path().join(files::ITEMS), "tampered\n").unwrap();
    let e = bundle::push(dir.path(), &format!("s3://{BUCKET}/bad"), &moto.options())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checksum mismatch for bundle file items.txt"),
        "{e}"
    );
    let listed = direct_store(&moto)
        .list_with_delimiter(Some(&"bad".into()))
        .await
        .unwrap();
    assert!(
        listed.objects.is_empty(),
        "nothing of a broken bundle is uploaded"
    );

    popular_bundle(dir.path(), "i");
    bundle::push(dir.path(), &format!("s3://{BUCKET}/good"), &moto.options())
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let fetched = bundle::fetch(
        &format!("s3://{BUCKET}/good"),
        &moto.options(),
        Some(cache.path()),
    )
    .await
    .unwrap();
    assert_eq!(fetched, cache.path().join(&manifest.version));
    for name in manifest.files.keys() {
        assert_eq!(
            std::fs::read(fetched.join(name)).unwrap(),
            std::fs::read(dir.path().join(name)).unwrap(),
            "{name}"
        );
    }
}
