//! The online A/B readout end to end on a real `redis-server`: an experiment whose treatment
//! arm routes to a queue users like more is served through the gateway (which logs the
//! exposures), the simulated users' engagements go in through `POST /v1/events`, and
//! `GET /v1/experiments/readout` shows the treatment ahead with an interval above zero.
//! Skipped loudly when `redis-server` is not installed, unless KAN_REQUIRE_REDIS is set.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kan_api::crd::{Arm, BucketRange, QueueRoute};
use kan_api::routing::ExperimentRoute;
use kan_gateway::events::{events_router, readout_router};
use kan_signals::{RedisOptions, RedisStore, SignalStore};
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use kan_testkit::redis::RedisServer;
use serde_json::{Value, json};
use tower::ServiceExt;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn arm(name: &str, queues: Option<&str>) -> Arm {
    Arm {
        name: name.into(),
        weight: 50,
        queues: queues.map(|q| vec![QueueRoute::named(q)]),
        merge: None,
        fallback: None,
    }
}

#[tokio::test]
async fn on_redis_the_arm_whose_queue_users_like_more_reads_out_ahead_with_an_interval_above_zero()
{
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store: Arc<dyn SignalStore> =
        Arc::new(RedisStore::new(RedisOptions::new(server.url())).expect("store"));
    // Users engage with `good` items 4 times as often as with `meh` ones.
    let weak = FakeQueue::spawn("weak", FakeQueue::items("meh", 0, 10), Behaviour::instant())
        .await
        .expect("weak queue");
    let strong = FakeQueue::spawn(
        "strong",
        FakeQueue::items("good", 0, 10),
        Behaviour::instant(),
    )
    .await
    .expect("strong queue");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = common::config(&[("weak", &weak), ("strong", &strong)]);
    config.queues.truncate(1);
    config.exposure_log = Some(dir.path().join("exposures.jsonl").display().to_string());
    config.experiments.push(ExperimentRoute {
        name: "strong-vs-weak".into(),
        layer: "recall".into(),
        salt: "recall".into(),
        buckets: BucketRange {
            start: 0,
            end: 10_000,
        },
        // Control keeps the gateway's queue (weak); treatment gets the strong one.
        arms: vec![arm("control", None), arm("treatment", Some("strong"))],
        paused: false,
    });
    let gateway = common::serve(config).await;
    let ingest = events_router(store.clone(), kan_http::Admission::new(4, "events"));
    let readout = readout_router(store, gateway.gateway.handle());

    const USERS: u64 = 600;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut events = Vec::new();
    for u in 0..USERS {
        let user = format!("u{u}");
        let (status, body) = gateway.recall(json!({"user_id": user, "k": 10})).await;
        assert_eq!(status, 200, "{body}");
        let top = body["candidates"][0]["item_id"]
            .as_str()
            .expect("a candidate")
            .to_string();
        let p = if top.starts_with("good") { 0.4 } else { 0.1 };
        // xorshift: a fixed draw per user, so the test is the same every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let draw = (state >> 11) as f64 / (1u64 << 53) as f64;
        if draw < p {
            events.push(
                json!({"id": format!("e{u}"), "user_id": user, "item_id": top,
                                "action": "click", "ts": now_ms()}),
            );
        }
    }
    assert!(!events.is_empty());
    for chunk in events.chunks(100) {
        let request = Request::post("/v1/events")
            .header("content-type", "application/json")
            .body(Body::from(json!({ "events": chunk }).to_string()))
            .expect("request");
        let (status, body) = call(&ingest, request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // The exposure log reaches its file within 200 ms; wait for every exposure.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let request = Request::get("/v1/experiments/readout")
            .body(Body::empty())
            .expect("request");
        let (status, body) = call(&readout, request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let exposures: u64 = body["arms"]
            .as_array()
            .map(|arms| arms.iter().filter_map(|a| a["exposures"].as_u64()).sum())
            .unwrap_or(0);
        if exposures == USERS || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let arms = body["arms"].as_array().expect("arms");
    let names: Vec<&str> = arms.iter().filter_map(|a| a["arm"].as_str()).collect();
    assert_eq!(names, ["control", "treatment"], "{body}");
    let total: u64 = arms.iter().filter_map(|a| a["exposures"].as_u64()).sum();
    assert_eq!(total, USERS, "{body}");
    let rate = |i: usize| arms[i]["rate"].as_f64().expect("rate");
    assert!(rate(1) > rate(0), "{body}");
    let engaged: u64 = arms.iter().filter_map(|a| a["engaged"].as_u64()).sum();
    assert_eq!(
        engaged,
        events.len() as u64,
        "every engagement joins its exposure"
    );
    let d = &body["differences"][0];
    assert_eq!(
        (d["arm"].as_str(), d["baseline"].as_str()),
        (Some("treatment"), Some("control"))
    );
    assert!(
        d["low"].as_f64().expect("low") > 0.0,
        "the interval excludes zero: {d}"
    );
}
