//! Readiness, bad bundles, hot reload and bad input, through HTTP.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::*;
use kan_api::bundle::files;
use kan_api::crd::StrategyType;
use proptest::prelude::*;
use serde_json::json;

#[tokio::test]
async fn a_checksum_mismatch_keeps_the_worker_not_ready_and_says_which_file() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Itemcf);
    std::fs::write(dir.path().join(files::ITEMS), "tampered\n").unwrap();
    let worker = worker(config(StrategyType::Itemcf, Some(dir.path()), json!({}))).await;
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("checksum mismatch for bundle file items.txt"),
        "{error}"
    );
    let (status, body) = call(
        &worker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u1"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        call(&worker, "GET", "/healthz", None).await.0,
        StatusCode::OK,
        "the process is up"
    );
}

#[tokio::test]
async fn a_bundle_pinned_to_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Popular);
    let mut cfg = config(StrategyType::Popular, Some(dir.path()), json!({}));
    cfg.spec.bundle.as_mut().unwrap().sha256 = Some("0123456789abcdef".into());
    let worker = worker(cfg).await;
    assert!(worker.last_error().unwrap().contains("pins bundle.sha256"));
}

#[tokio::test]
async fn an_unloadable_onnx_model_is_rejected_with_a_message() {
    if ort_dylib().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Dssm);
    // Replace the model with garbage and re-sign the manifest so only the model is at fault.
    let mut w = kan_testkit::bundle::BundleWriter::new(dir.path()).unwrap();
    for name in [
        files::ITEMS,
        files::USERS,
        files::USER_HISTORY,
        files::ITEM_VECTORS,
    ] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        w.bytes(name, &bytes).unwrap();
    }
    w.bytes(files::MODEL, b"not an onnx model").unwrap();
    w.finish(
        StrategyType::Dssm,
        Some(DIM as u32),
        json!({"history_length": HISTORY_LENGTH}),
    )
    .unwrap();
    let worker = worker(config(StrategyType::Dssm, Some(dir.path()), json!({}))).await;
    let error = worker.last_error().unwrap();
    assert!(error.contains("is not a loadable ONNX model"), "{error}");
    assert_eq!(
        call(&worker, "GET", "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_model_that_breaks_the_encoder_contract_is_rejected() {
    if ort_dylib().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_bundle_with(dir.path(), StrategyType::Gat, "embedding");
    let worker = worker(config(StrategyType::Gat, Some(dir.path()), json!({}))).await;
    let error = worker.last_error().unwrap();
    assert!(error.contains("has no output 'user_embedding'"), "{error}");
}

#[tokio::test]
async fn an_unreachable_qdrant_makes_the_worker_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), StrategyType::Item2vec);
    let index = json!({"index": {"type": "qdrant", "qdrant": {"url": "http://127.0.0.1:9", "collection": "items", "timeoutMs": 200}}});
    let worker = worker(config(StrategyType::Item2vec, Some(dir.path()), index)).await;
    let (status, body) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["index"], "qdrant");
    assert!(body["error"].as_str().unwrap().contains("qdrant"), "{body}");
    let (status, _) = call(
        &worker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u", "history": ["i1"]})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_new_bundle_is_swapped_in_and_a_bad_one_leaves_the_old_serving() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = write_bundle(dir.path(), StrategyType::Popular);
    let worker = worker(config(StrategyType::Popular, Some(dir.path()), json!({}))).await;
    let (_, body) = call(
        &worker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u", "k": 1})),
    )
    .await;
    assert_eq!(body["version"], v1.version.as_str());

    // A new version: different titles file, so a different content hash.
    let mut w = kan_testkit::bundle::BundleWriter::new(dir.path()).unwrap();
    for name in [
        files::ITEMS,
        files::USERS,
        files::USER_HISTORY,
        files::POPULAR,
    ] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap();
        w.bytes(name, &bytes).unwrap();
    }
    w.bytes(files::TITLES, b"i0\tFirst\n").unwrap();
    let v2 = w.finish(StrategyType::Popular, None, json!({})).unwrap();
    worker.refresh().await.unwrap();
    let (_, body) = call(
        &worker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u", "k": 1})),
    )
    .await;
    assert_eq!(body["version"], v2.version.as_str());

    // Corrupt it: the reload fails, v2 keeps serving, /readyz says why.
    std::fs::write(dir.path().join(files::POPULAR), b"garbage").unwrap();
    assert!(worker.refresh().await.is_err());
    let (_, body) = call(
        &worker,
        "POST",
        "/v1/recall",
        Some(json!({"user_id": "u", "k": 1})),
    )
    .await;
    assert_eq!(body["version"], v2.version.as_str());
    let (status, ready) = call(&worker, "GET", "/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "the old bundle still serves");
    assert!(
        ready["error"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch"),
        "{ready}"
    );
}

#[tokio::test]
async fn bad_requests_get_a_400_naming_the_field() {
    let worker = worker(config(
        StrategyType::Operational,
        None,
        json!({"strategy": {"operational": {"items": [{"itemId": "a"}]}}}),
    ))
    .await;
    for (body, field) in [
        (json!({"user_id": "u", "colour": "red"}), "colour"),
        (json!({"user_id": "u", "k": 0}), "k"),
        (json!({"user_id": "u", "k": -3}), "k"),
        (json!({"user_id": 7}), "user_id"),
        (json!({"user_id": "u", "exclude": "a"}), "exclude"),
    ] {
        let (status, error) = call(&worker, "POST", "/v1/recall", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["code"], "invalid_argument");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
}

#[tokio::test]
async fn a_caller_that_accepts_the_compact_layout_gets_the_same_answer_in_it() {
    use tower::ServiceExt;
    let worker = worker(config(
        StrategyType::Operational,
        None,
        json!({"strategy": {"operational": {"items": [{"itemId": "a"}, {"itemId": "é✓"}]}}}),
    ))
    .await;
    let json_answer = recall(&worker, json!({"user_id": "u"})).await;
    assert_eq!(json_answer, ["a", "é✓"]);
    for (accept, compact) in [
        (
            "application/vnd.kan.candidates, application/json;q=0.5",
            true,
        ),
        ("application/json", false),
        ("*/*", false),
    ] {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/recall")
            .header("accept", accept)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"user_id":"u"}"#))
            .unwrap();
        let response = worker.router(None).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let answer = if compact {
            assert_eq!(content_type, kan_api::wire::compact::MEDIA_TYPE);
            kan_api::wire::compact::CompactAnswer::decode(&body)
                .unwrap()
                .to_response()
        } else {
            assert_eq!(content_type, "application/json", "{accept}");
            serde_json::from_slice::<kan_api::wire::WorkerResponse>(&body).unwrap()
        };
        let ids: Vec<_> = answer
            .candidates
            .iter()
            .map(|c| c.item_id.as_str())
            .collect();
        assert_eq!(ids, json_answer, "{accept}");
        assert_eq!(answer.queue, worker.config().name);
    }
    // Errors stay JSON whatever the caller accepts.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/recall")
        .header("accept", "application/vnd.kan.candidates")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"user_id":"u","k":0}"#))
        .unwrap();
    let response = worker.router(None).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_json_bodies_never_cause_a_5xx(body in arbitrary_body()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            write_bundle(dir.path(), StrategyType::Itemcf);
            let worker = worker(config(StrategyType::Itemcf, Some(dir.path()), json!({}))).await;
            let (status, _) = call_raw(&worker, body).await;
            assert!(status.is_success() || status.is_client_error(), "status {status}");
        });
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "[a-z0-9_]{0,8}".prop_map(serde_json::Value::from),
        prop_oneof![Just("i1"), Just("i2"), Just("u1")].prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("user_id".to_string()),
                    Just("k".to_string()),
                    Just("history".to_string()),
                    Just("exclude".to_string()),
                    Just("context".to_string()),
                    Just("debug".to_string()),
                    "[a-z]{1,5}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly JSON shaped like a request, sometimes arbitrary bytes.
fn arbitrary_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

async fn call_raw(worker: &kan_worker::Worker, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/v1/recall")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = worker.router(None).oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
}
