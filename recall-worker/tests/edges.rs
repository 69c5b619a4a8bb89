//! The worker's edges: every error status carries the JSON error body and `POST /v1/recall`
//! takes only JSON.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use kan_api::crd::StrategyType;
use kan_api::wire::{ErrorBody, ErrorCode};
use serde_json::json;
use tower::ServiceExt;

async fn operational() -> kan_worker::Worker {
    worker(config(
        StrategyType::Operational,
        None,
        json!({"strategy": {"operational": {"items": [{"itemId": "a"}]}}}),
    ))
    .await
}

async fn error_of(worker: &kan_worker::Worker, request: Request<Body>) -> (StatusCode, ErrorBody) {
    let response = worker.router(None).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status} answered a non-JSON body ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

#[tokio::test]
async fn unknown_paths_wrong_methods_and_missing_metrics_are_json_errors() {
    let worker = operational().await;
    let (status, body) =
        error_of(&worker, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body.error.code),
        (StatusCode::NOT_FOUND, ErrorCode::NotFound)
    );
    let (status, body) = error_of(
        &worker,
        Request::get("/v1/recall").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.error.code),
        (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
    );
    let (status, body) = error_of(
        &worker,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.error.code),
        (StatusCode::NOT_FOUND, ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let worker = operational().await;
    let request = Request::post("/v1/recall")
        .header("content-type", "application/json")
        .body(Body::from(vec![b' '; 3 << 20]))
        .unwrap();
    let (status, body) = error_of(&worker, request).await;
    assert_eq!(
        (status, body.error.code),
        (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge)
    );
}

#[tokio::test]
async fn a_body_not_sent_as_json_is_a_415() {
    let worker = operational().await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let request = Request::post("/v1/recall")
            .header("content-type", content_type)
            .body(Body::from(r#"{"user_id":"u1"}"#))
            .unwrap();
        let (status, body) = error_of(&worker, request).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert_eq!(body.error.code, ErrorCode::UnsupportedMediaType);
    }
}

#[tokio::test]
async fn duplicate_keys_are_refused_naming_the_key() {
    let worker = operational().await;
    let request = Request::post("/v1/recall")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"user_id":"u1","k":3,"k":5}"#))
        .unwrap();
    let (status, body) = error_of(&worker, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body.error.field.as_deref(), Some("k"));
}

/// Answers `body` as JSON, or in the compact layout with `compact`; returns the response.
async fn recall_with(
    worker: &kan_worker::Worker,
    body: serde_json::Value,
    compact: bool,
) -> axum::response::Response {
    let mut request = Request::post("/v1/recall").header("content-type", "application/json");
    if compact {
        request = request.header("accept", kan_api::wire::compact::MEDIA_TYPE);
    }
    worker
        .router(None)
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn history_ids_the_bundle_does_not_know_are_counted_in_the_answer() {
    let worker = operational().await;
    let body = json!({"user_id": "u1", "history": ["a", "zz", "yy"]});
    let response = recall_with(&worker, body.clone(), false).await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["unknown_history"], json!(2), "{answer}");

    // The compact layout has no field for it: a header carries it.
    let response = recall_with(&worker, body, true).await;
    assert_eq!(
        response
            .headers()
            .get(kan_api::wire::compact::UNKNOWN_HISTORY_HEADER)
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );

    // All known (or no history sent): nothing to report, the field is absent.
    for body in [
        json!({"user_id": "u1", "history": ["a"]}),
        json!({"user_id": "u1"}),
    ] {
        let response = recall_with(&worker, body, false).await;
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(answer.get("unknown_history").is_none(), "{answer}");
    }
}
