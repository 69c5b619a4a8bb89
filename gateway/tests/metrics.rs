//! `/metrics` with a Prometheus recorder installed (its own test binary: the recorder is global).

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{config, serve_with_metrics};
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

/// The process-wide recorder, installed once for every test of this binary.
fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("recorder")
        })
        .clone()
}

#[tokio::test]
async fn metrics_count_queue_calls_arms_merge_size_degraded_responses_and_circuit_states() {
    let handle = recorder();
    let a = FakeQueue::spawn("a", FakeQueue::items("a", 0, 3), Behaviour::instant())
        .await
        .expect("a");
    let broken = FakeQueue::spawn("broken", Vec::new(), Behaviour::fail(500))
        .await
        .expect("broken");
    let mut c = config(&[("a", &a), ("broken", &broken)]);
    c.circuit_breaker = Some(kan_api::crd::CircuitBreakerSpec {
        failure_threshold: 1,
        open_ms: 60_000,
    });
    c.experiments.push(kan_api::routing::ExperimentRoute {
        name: "e".into(),
        layer: "recall".into(),
        salt: "recall".into(),
        buckets: kan_api::crd::BucketRange {
            start: 0,
            end: 10000,
        },
        arms: vec![kan_api::crd::Arm {
            name: "treatment".into(),
            weight: 100,
            queues: None,
            merge: None,
            fallback: None,
        }],
        paused: false,
    });
    let gw = serve_with_metrics(c, Some(handle)).await;
    gw.recall(json!({"user_id": "u1"})).await;
    let (status, text) = gw.get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        r#"kan_gateway_queue_calls_total{queue="a",status="ok"} 1"#,
        r#"kan_gateway_queue_calls_total{queue="broken",status="error"} 1"#,
        "kan_gateway_degraded_total 1",
        r#"kan_gateway_requests_total{outcome="degraded"} 1"#,
        "kan_gateway_merge_size_count 1",
        "kan_gateway_queue_duration_seconds",
        // The one failure opened the broken queue's circuit: a gauge and a transition.
        r#"kan_gateway_circuit_state{queue="broken"} 2"#,
        r#"kan_gateway_circuit_transitions_total{queue="broken",to="open"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    let arm = text
        .lines()
        .find(|l| l.starts_with("kan_gateway_arm_requests_total{"))
        .expect("arm series");
    assert!(
        arm.contains(r#"arm="treatment""#) && arm.ends_with(" 1"),
        "{arm}"
    );
}

#[tokio::test]
async fn a_refused_routing_file_sets_the_config_rejected_gauge_until_a_good_one_loads() {
    let handle = recorder();
    let a = FakeQueue::spawn("a", FakeQueue::items("a", 0, 3), Behaviour::instant())
        .await
        .expect("a");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("routing.yaml");
    let good = format!(
        "gateway: gauge-gw\nendpoints:\n  a: {}\nqueues: [{{name: a}}]\n",
        a.url()
    );
    std::fs::write(&path, &good).expect("write");
    let gw = serve_with_metrics(
        kan_gateway::load_config(&path).expect("load"),
        Some(handle.clone()),
    )
    .await;
    let _watcher = kan_gateway::watch(gw.gateway.handle(), &path).expect("watch");
    let gauge = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("kan_gateway_config_rejected "))
            .map(str::to_string)
    };
    assert_eq!(
        gauge(&handle.render()).as_deref(),
        Some("kan_gateway_config_rejected 0")
    );

    // A queue timeout above the deadline: `kan gateway` refuses it, the old config serves.
    std::fs::write(
        &path,
        "gateway: gauge-gw\ndeadlineMs: 80\nqueues: [{name: a, timeoutMs: 100}]\n",
    )
    .expect("write");
    wait_for(|| gauge(&handle.render()).as_deref() == Some("kan_gateway_config_rejected 1")).await;
    let (status, _) = gw.get("/readyz").await;
    assert_eq!(status, 200, "the last good config keeps the gateway ready");

    std::fs::write(&path, &good).expect("write");
    wait_for(|| gauge(&handle.render()).as_deref() == Some("kan_gateway_config_rejected 0")).await;
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached within 5 s");
}
