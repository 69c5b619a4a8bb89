//! In-process queue calls (`kan up`): a queue whose endpoint authority is registered is called
//! through its router without a socket, with the same answers, errors and timeouts as over HTTP.

mod common;

use std::time::Duration;

use common::{config, ids, serve, status_of};
use kan_api::crd::QueueRoute;
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use serde_json::json;

/// Nothing listens here (the discard port): a call that reaches the network fails to connect.
const NOWHERE: &str = "127.0.0.1:9";

async fn fake(behaviour: Behaviour) -> FakeQueue {
    FakeQueue::spawn("a", FakeQueue::items("i", 0, 3), behaviour)
        .await
        .expect("fake queue")
}

fn routed_nowhere(queue: &FakeQueue) -> kan_api::routing::RoutingConfig {
    let mut cfg = config(&[("a", queue)]);
    cfg.endpoints
        .insert("a".into(), format!("http://{NOWHERE}"));
    cfg
}

#[tokio::test]
async fn a_registered_queue_answers_in_process_and_an_unregistered_one_goes_over_the_network() {
    let queue = fake(Behaviour::instant()).await;
    let served = serve(routed_nowhere(&queue)).await;
    let local = served.gateway.local_queues();
    local.register(NOWHERE, queue.router());

    let (status, body) = served.recall(json!({"user_id": "u1", "k": 3})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["i0", "i1", "i2"]);
    assert_eq!(status_of(&body, "a"), "ok");
    assert_eq!(queue.calls(), 1);
    // The queue saw the request a socket would have carried, compact answers asked for.
    let accept = queue.last_headers().expect("headers")["accept"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        accept.contains("application/vnd.kan.candidates"),
        "{accept}"
    );
    assert_eq!(queue.last_request().expect("request").user_id, "u1");

    local.unregister(NOWHERE);
    let (_, body) = served.recall(json!({"user_id": "u1", "k": 3})).await;
    assert_eq!(status_of(&body, "a"), "error", "{body}");
    assert_eq!(
        queue.calls(),
        1,
        "the unregistered queue is not called in-process"
    );
}

#[tokio::test]
async fn an_in_process_queues_error_status_and_body_are_reported_as_over_http() {
    let queue = fake(Behaviour::fail(503)).await;
    let served = serve(routed_nowhere(&queue)).await;
    served
        .gateway
        .local_queues()
        .register(NOWHERE, queue.router());

    let (_, body) = served.recall(json!({"user_id": "u1", "k": 3})).await;
    assert_eq!(status_of(&body, "a"), "error", "{body}");
    let detail = body["queues"][0]["detail"].as_str().expect("detail");
    assert!(detail.contains("503"), "{detail}");
}

#[tokio::test]
async fn a_slow_in_process_queue_times_out_like_a_remote_one() {
    let queue = fake(Behaviour::after(Duration::from_secs(5))).await;
    let mut cfg = routed_nowhere(&queue);
    cfg.queues = vec![QueueRoute {
        timeout_ms: Some(50),
        ..QueueRoute::named("a")
    }];
    let served = serve(cfg).await;
    served
        .gateway
        .local_queues()
        .register(NOWHERE, queue.router());

    let started = std::time::Instant::now();
    let (_, body) = served.recall(json!({"user_id": "u1", "k": 3})).await;
    assert_eq!(status_of(&body, "a"), "timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
