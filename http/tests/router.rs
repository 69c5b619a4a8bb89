//! The pieces as the gateway and the worker assemble them: admission on one route, the JSON
//! fallback, and `json_errors` over the whole router.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use kan_api::wire::{ErrorBody, ErrorCode};
use kan_http::Admission;
use tower::ServiceExt;

fn app() -> Router {
    Router::new()
        .route(
            "/v1/recall",
            post(|State(n): State<u32>| async move { format!("{n}") })
                .layer(Admission::new(4, "t")),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(7)
        .fallback(kan_http::not_found)
        .layer(axum::middleware::map_response(kan_http::json_errors))
}

async fn error_of(request: Request<Body>) -> (StatusCode, ErrorBody) {
    let response = app().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).expect("the JSON error body"),
    )
}

#[tokio::test]
async fn an_unknown_path_and_a_wrong_method_are_json_errors() {
    let (status, body) =
        error_of(Request::get("/nope").body(Body::empty()).expect("request")).await;
    assert_eq!(
        (status, body.error.code),
        (StatusCode::NOT_FOUND, ErrorCode::NotFound)
    );
    assert!(
        body.error.message.contains("/nope"),
        "{}",
        body.error.message
    );
    let (status, body) = error_of(
        Request::get("/v1/recall")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, body.error.code),
        (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed)
    );
}

#[tokio::test]
async fn admitted_requests_and_probes_are_untouched() {
    let response = app()
        .oneshot(
            Request::post("/v1/recall")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 64)
        .await
        .expect("body");
    assert_eq!(&bytes[..], b"7");
}
