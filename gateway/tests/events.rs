//! `POST /v1/events` and `GET /v1/experiments/readout` through their routers: a batch is
//! acknowledged once the store has it, a bad batch is refused whole naming the field, a store
//! that is down gets 503 + Retry-After, excess batches are shed, and the readout shows the
//! better arm of a simulated experiment ahead.

mod common;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::future::BoxFuture;
use kan_api::events::Event;
use kan_api::wire::{Assignment, ExposureRecord};
use kan_gateway::Gateway;
use kan_gateway::events::{events_router, readout_router};
use kan_signals::{Appended, Engagement, MemoryStore, SignalStore, Window};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn send(
    router: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, Option<String>, Value) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(body: &Value) -> Request<Body> {
    Request::post("/v1/events")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn batch(ids: &[&str]) -> Value {
    let ts = now_ms();
    json!({"events": ids.iter().map(|id| json!({"id": id, "user_id": "u1", "item_id": format!("item-{id}"), "action": "click", "ts": ts})).collect::<Vec<_>>()})
}

#[tokio::test]
async fn a_valid_batch_is_acknowledged_once_stored_and_a_retry_applies_nothing_twice() {
    let store = Arc::new(MemoryStore::new());
    let router = events_router(store.clone(), kan_http::Admission::new(4, "events"));
    let (status, _, body) = send(&router, post(&batch(&["e1", "e2"]))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"received": 2, "stored": 2, "duplicates": 0}));
    let (status, _, body) = send(&router, post(&batch(&["e2", "e3"]))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"received": 2, "stored": 1, "duplicates": 1}));
    assert_eq!(
        store.history("u1", 10).await.expect("history"),
        ["item-e3", "item-e2", "item-e1"]
    );
}

#[tokio::test]
async fn a_batch_with_one_malformed_event_is_refused_naming_the_field_and_nothing_is_stored() {
    let store = Arc::new(MemoryStore::new());
    let router = events_router(store.clone(), kan_http::Admission::new(4, "events"));
    let mut body = batch(&["a", "b", "c", "d"]);
    body["events"][3]["ts"] = json!(now_ms() + 3_600_000);
    let (status, _, answer) = send(&router, post(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["code"], "invalid_argument");
    assert_eq!(answer["error"]["field"], "events[3].ts");
    body["events"][3]["ts"] = json!(now_ms());
    body["events"][1]["action"] = json!("teleport");
    let (status, _, answer) = send(&router, post(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["field"], "events[1].action");
    assert!(
        store.history("u1", 10).await.expect("history").is_empty(),
        "nothing partial"
    );
    let not_json = Request::post("/v1/events")
        .header("content-type", "text/plain")
        .body(Body::from("x"))
        .expect("request");
    assert_eq!(
        send(&router, not_json).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

/// A store that fails every call, or holds every append until released.
struct Stub {
    fail: bool,
    entered: Notify,
    release: Notify,
}

impl SignalStore for Stub {
    fn name(&self) -> &'static str {
        "stub"
    }
    fn append<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, kan_signals::Result<Appended>> {
        Box::pin(async move {
            if self.fail {
                return Err(kan_signals::Error::Unavailable("connection refused".into()));
            }
            self.entered.notify_one();
            self.release.notified().await;
            Ok(Appended {
                stored: events.len(),
                duplicates: 0,
            })
        })
    }
    fn history<'a>(
        &'a self,
        _: &'a str,
        _: usize,
    ) -> BoxFuture<'a, kan_signals::Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn following<'a>(&'a self, _: &'a str) -> BoxFuture<'a, kan_signals::Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn engagements<'a>(
        &'a self,
        users: &'a [String],
        _: usize,
    ) -> BoxFuture<'a, kan_signals::Result<Vec<Vec<Engagement>>>> {
        Box::pin(async move { Ok(vec![Vec::new(); users.len()]) })
    }
    fn trending<'a>(
        &'a self,
        _: &'a str,
        _: i64,
        _: Window,
        _: usize,
    ) -> BoxFuture<'a, kan_signals::Result<Vec<(String, f64)>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

fn stub(fail: bool) -> Arc<Stub> {
    Arc::new(Stub {
        fail,
        entered: Notify::new(),
        release: Notify::new(),
    })
}

#[tokio::test]
async fn a_store_that_is_down_gets_503_with_retry_after_so_the_caller_retries() {
    let router = events_router(stub(true), kan_http::Admission::new(4, "events"));
    let (status, retry, body) = send(&router, post(&batch(&["e1"]))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "unavailable");
}

#[tokio::test]
async fn past_the_batch_bound_ingestion_sheds_503_with_retry_after_instead_of_queueing() {
    let store = stub(false);
    let router = events_router(store.clone(), kan_http::Admission::new(1, "events"));
    let held = tokio::spawn({
        let router = router.clone();
        async move { send(&router, post(&batch(&["e1"]))).await }
    });
    store.entered.notified().await;
    let (status, retry, _) = send(&router, post(&batch(&["e2"]))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("1"));
    store.release.notify_one();
    assert_eq!(held.await.expect("join").0, StatusCode::OK);
}

#[tokio::test]
async fn the_readout_shows_the_better_arm_ahead_with_an_interval_above_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("exposures.jsonl");
    let store = Arc::new(MemoryStore::new());
    let t = now_ms() - 60_000;
    let mut lines = String::new();
    let mut events = Vec::new();
    for u in 0..600 {
        let arm = if u % 2 == 0 { "control" } else { "treatment" };
        let record = ExposureRecord {
            ts_ms: t,
            user_id: format!("u{u}"),
            assignments: vec![Assignment {
                layer: "recall".into(),
                experiment: "gat-vs-dssm".into(),
                arm: arm.into(),
            }],
            items: vec![format!("shown{u}")],
            degraded: false,
        };
        lines.push_str(&serde_json::to_string(&record).expect("json"));
        lines.push('\n');
        // Treatment's lists get engaged with 1 in 2 times, control's 1 in 5.
        let engaged = if arm == "treatment" {
            (u / 2) % 2 == 0
        } else {
            (u / 2) % 5 == 0
        };
        if engaged {
            events.push(json!({"id": format!("x{u}"), "user_id": format!("u{u}"), "item_id": format!("shown{u}"), "action": "click", "ts": t + 1000}));
        }
    }
    std::fs::write(&log, lines).expect("write log");
    let ingest = events_router(store.clone(), kan_http::Admission::new(4, "events"));
    for chunk in events.chunks(100) {
        let (status, _, _) = send(&ingest, post(&json!({"events": chunk}))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut config = common::config(&[]);
    // A queue without an endpoint: the readout never calls it.
    config.queues = vec![kan_api::crd::QueueRoute::named("popular")];
    config.exposure_log = Some(log.display().to_string());
    let gateway = Gateway::new(config).expect("gateway");
    let router = readout_router(store, gateway.handle());
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let (status, _, body) = send(&router, get("/v1/experiments/readout?window_ms=600000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let arms = body["arms"].as_array().expect("arms");
    assert_eq!(arms.len(), 2);
    assert_eq!(
        (arms[0]["arm"].as_str(), arms[0]["exposures"].as_u64()),
        (Some("control"), Some(300))
    );
    assert_eq!(arms[0]["engaged"], 60);
    assert_eq!(arms[1]["engaged"], 150);
    let d = &body["differences"][0];
    assert_eq!(d["arm"], "treatment");
    assert!(d["low"].as_f64().expect("low") > 0.0, "{d}");
    let (status, _, body) = send(&router, get("/v1/experiments/readout?window_ms=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "window_ms");
}

/// A worker that answers from its bundle alone because its signal store is down, in the JSON
/// or the compact layout (the compact one says so in a header).
async fn degraded_worker(compact: bool) -> (String, tokio::task::JoinHandle<()>) {
    use axum::response::IntoResponse;
    let response = kan_api::wire::WorkerResponse {
        queue: "social".into(),
        version: "v1".into(),
        candidates: vec![kan_api::wire::Candidate {
            item_id: "from-bundle".into(),
            score: 1.0,
        }],
        took_ms: 0.1,
        unknown_history: 0,
        degraded: true,
    };
    let router = axum::Router::new().route(
        "/v1/recall",
        axum::routing::post(move || {
            let response = response.clone();
            async move {
                if compact {
                    let body = kan_api::wire::compact::encode(&response).expect("encode");
                    (
                        [
                            (header::CONTENT_TYPE, kan_api::wire::compact::MEDIA_TYPE),
                            (
                                header::HeaderName::from_static(
                                    kan_api::wire::compact::DEGRADED_HEADER,
                                ),
                                "true",
                            ),
                        ],
                        body,
                    )
                        .into_response()
                } else {
                    axum::Json(response).into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, task)
}

#[tokio::test]
async fn a_queue_answering_from_its_bundle_alone_makes_the_gateway_answer_degraded() {
    for compact in [false, true] {
        let (url, task) = degraded_worker(compact).await;
        let mut config = common::config(&[]);
        config.queues = vec![kan_api::crd::QueueRoute::named("social")];
        config.endpoints.insert("social".into(), url);
        let served = common::serve(config).await;
        let (status, body) = served.recall(json!({"user_id": "u1", "k": 5})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["candidates"][0]["item_id"], "from-bundle");
        assert_eq!(body["degraded"], true, "compact {compact}: {body}");
        assert_eq!(body["queues"][0]["status"], "ok");
        assert!(
            body["queues"][0]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("signal store")),
            "{body}"
        );
        task.abort();
    }
}
