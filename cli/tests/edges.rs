//! The gateway and a worker answer the same bad request with the same status and JSON error:
//! one parser, one error shape.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use kan_api::crd::{FilterSpec, MergeSpec, QueueRoute};
use kan_api::routing::RoutingConfig;
use kan_api::worker_config::WorkerConfig;
use tower::ServiceExt;

async fn answer(router: axum::Router, body: &'static str) -> (u16, serde_json::Value) {
    let request = Request::post("/v1/recall")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = router.oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON error"))
}

#[tokio::test]
async fn the_gateway_and_a_worker_give_the_same_answer_to_the_same_bad_body() {
    let config: WorkerConfig = serde_json::from_value(serde_json::json!({
        "name": "ops",
        "spec": {"strategy": {"type": "operational", "operational": {"items": [{"itemId": "a"}]}},
                 "candidates": 10, "maxCandidates": 20, "timeoutMs": 1000}
    }))
    .expect("worker config");
    let worker = kan_worker::Worker::start(config, kan_worker::WorkerOptions::default())
        .await
        .expect("worker");
    let gateway = kan_gateway::Gateway::new(RoutingConfig {
        gateway: "gw".into(),
        endpoints: BTreeMap::new(),
        queues: vec![QueueRoute::named("ops")],
        merge: MergeSpec::default(),
        filters: FilterSpec::default(),
        fallback: None,
        deadline_ms: 1000,
        circuit_breaker: None,
        exposure_log: None,
        experiments: Vec::new(),
    })
    .expect("gateway");
    for body in [
        r#"["u1", 5]"#,
        r#"{"user_id":"u1","user_id":"u2"}"#,
        r#"{"user_id":"u1","k":"ten"}"#,
        r#"{"user_id":"u1","kk":1}"#,
        r#"{"k":1}"#,
        r#"{"user_id":"u1","k":0}"#,
        r#"{"user_id":"u1","exclude":[""]}"#,
        r#"{"user_id":"u1","context":{"a":"x","a":"y"}}"#,
        r#"{"user_id":"u1""#,
    ] {
        let from_gateway = answer(gateway.router(None), body).await;
        let from_worker = answer(worker.router(None), body).await;
        assert_eq!(from_gateway.0, 400, "{body}: {from_gateway:?}");
        assert_eq!(from_gateway, from_worker, "{body}");
    }
}
