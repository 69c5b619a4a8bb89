//! The gateway's edges: every error status carries the JSON error body, `POST /v1/recall` takes
//! only JSON, overload is shed with `503` + `Retry-After`, and the listener's limits hold.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{config, serve};
use kan_api::wire::{Candidate, ErrorBody, ErrorCode};
use kan_gateway::Gateway;
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn cands(ids: &[&str]) -> Vec<Candidate> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Candidate {
            item_id: id.to_string(),
            score: 1.0 - i as f32 * 0.1,
        })
        .collect()
}

async fn queue() -> FakeQueue {
    FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("fake queue")
}

/// Sends `request` through the gateway's router; the status, the headers and the JSON error.
async fn call(
    gateway: &Gateway,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, ErrorBody) {
    let response = gateway
        .router(None)
        .oneshot(request)
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let error = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} answered a non-JSON body ({e}): {}",
            parts.status,
            String::from_utf8_lossy(&bytes)
        )
    });
    (parts.status, parts.headers, error)
}

fn post(body: impl Into<Body>, content_type: Option<&str>) -> Request<Body> {
    let mut builder = Request::post("/v1/recall");
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).expect("request")
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let a = queue().await;
    let gateway = Gateway::new(config(&[("a", &a)])).expect("gateway");
    let request = Request::get("/nope").body(Body::empty()).expect("request");
    let (status, _, error) = call(&gateway, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error.error.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405() {
    let a = queue().await;
    let gateway = Gateway::new(config(&[("a", &a)])).expect("gateway");
    let request = Request::get("/v1/recall")
        .body(Body::empty())
        .expect("request");
    let (status, headers, error) = call(&gateway, request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error.error.code, ErrorCode::MethodNotAllowed);
    assert!(headers.contains_key("allow"), "405 keeps its Allow header");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let a = queue().await;
    let gateway = Gateway::new(config(&[("a", &a)])).expect("gateway");
    let big = vec![b' '; 3 << 20];
    let (status, _, error) = call(&gateway, post(big, Some("application/json"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error.error.code, ErrorCode::PayloadTooLarge);
    assert_eq!(a.calls(), 0);
}

#[tokio::test]
async fn a_body_not_sent_as_json_is_a_415_and_never_reaches_a_queue() {
    let a = queue().await;
    let gateway = Gateway::new(config(&[("a", &a)])).expect("gateway");
    let body = r#"{"user_id":"u1"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (status, _, error) = call(&gateway, post(body, content_type)).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(error.error.code, ErrorCode::UnsupportedMediaType);
    }
    assert_eq!(
        a.calls(),
        0,
        "a cross-origin text/plain POST reaches no queue"
    );
    assert_eq!(gateway.stats().requests, 0, "nor the request counters");
}

#[tokio::test]
async fn a_json_array_and_an_oversized_context_value_are_400s_naming_the_field() {
    let a = queue().await;
    let gateway = Gateway::new(config(&[("a", &a)])).expect("gateway");
    let (status, _, error) = call(&gateway, post(r#"["u1", 5]"#, Some("application/json"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error.error.field.as_deref(), Some("body"));
    let big = json!({"user_id": "42", "k": 5, "context": {"a": "x".repeat(1_900_000)}});
    let (status, _, error) = call(&gateway, post(big.to_string(), Some("application/json"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error.error.field.as_deref(), Some("context.a"));
    assert_eq!(a.calls(), 0);
}

#[tokio::test]
async fn a_required_queue_failure_is_a_503_with_retry_after() {
    let a = queue().await;
    let must = FakeQueue::spawn("must", cands(&["m"]), Behaviour::fail(503))
        .await
        .expect("must");
    let mut c = config(&[("a", &a), ("must", &must)]);
    c.queues[1].required = true;
    let gateway = Gateway::new(c).expect("gateway");
    let (status, headers, error) = call(
        &gateway,
        post(r#"{"user_id":"u1"}"#, Some("application/json")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error.error.code, ErrorCode::Unavailable);
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
}

#[tokio::test]
async fn past_the_in_flight_bound_a_request_is_shed_at_once_and_probes_still_answer() {
    let slow = FakeQueue::spawn(
        "slow",
        cands(&["s"]),
        Behaviour::after(Duration::from_secs(2)),
    )
    .await
    .expect("slow");
    let gateway = Gateway::new(config(&[("slow", &slow)])).expect("gateway");
    let router = gateway.router_with_admission(None, kan_http::Admission::new(1, "gateway"));
    let held = tokio::spawn(
        router
            .clone()
            .oneshot(post(r#"{"user_id":"u1"}"#, Some("application/json"))),
    );
    // The first request is in flight once the queue has it.
    tokio::time::timeout(Duration::from_secs(5), async {
        while slow.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first request reaches the queue");

    let shed = router
        .clone()
        .oneshot(post(r#"{"user_id":"u2"}"#, Some("application/json")))
        .await
        .expect("infallible");
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let bytes = axum::body::to_bytes(shed.into_body(), 1 << 20)
        .await
        .expect("body");
    let error: ErrorBody = serde_json::from_slice(&bytes).expect("JSON error");
    assert_eq!(error.error.code, ErrorCode::Unavailable);
    assert_eq!(slow.calls(), 1, "the shed request reached no queue");

    for probe in ["/healthz", "/readyz"] {
        let response = router
            .clone()
            .oneshot(Request::get(probe).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{probe} is never shed");
    }
    let first = held.await.expect("join").expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_served_gateway_answers_oversized_headers_with_a_json_431() {
    let a = queue().await;
    let gw = serve(config(&[("a", &a)])).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "y".repeat(20 * 1024)
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .expect("answered and closed")
        .expect("read");
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).expect("body");
    let error: ErrorBody = serde_json::from_str(body).expect("JSON error");
    assert_eq!(error.error.code, ErrorCode::HeadersTooLarge);
}

#[tokio::test]
async fn the_console_is_sent_with_security_headers() {
    let a = queue().await;
    let gateway = Gateway::new(config(&[("a", &a)])).expect("gateway");
    for path in ["/ui", "/ui/config"] {
        let response = gateway
            .router(None)
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'sha256-"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }
}
