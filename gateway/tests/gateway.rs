//! The gateway end to end over HTTP, against in-process fake queues.

mod common;

use std::time::Duration;

use common::{config, ids, serve, status_of};
use kan_api::crd::{Arm, BucketRange, CircuitBreakerSpec, MergePolicy, MergeSpec, QueueRoute};
use kan_api::routing::ExperimentRoute;
use kan_api::wire::Candidate;
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use serde_json::json;

fn cands(ids: &[&str]) -> Vec<Candidate> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Candidate {
            item_id: id.to_string(),
            score: 1.0 - i as f32 * 0.1,
        })
        .collect()
}

#[tokio::test]
async fn a_request_gets_merged_candidates_with_their_sources_and_every_queue_status() {
    let a = FakeQueue::spawn("a", cands(&["x", "y", "z"]), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands(&["z", "w"]), Behaviour::instant())
        .await
        .expect("b");
    let gw = serve(config(&[("a", &a), ("b", &b)])).await;

    let (status, body) = gw.recall(json!({"user_id": "u1", "k": 3})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["z", "x", "y"]);
    assert_eq!(body["candidates"][0]["sources"], json!(["b", "a"]));
    assert_eq!((status_of(&body, "a"), status_of(&body, "b")), ("ok", "ok"));
    assert_eq!(body["degraded"], false);
    assert_eq!(body["assignments"], json!([]));
    // Each queue was asked for k candidates and got the caller's fields.
    assert_eq!(a.last_request().expect("called").k, Some(3));
}

#[tokio::test]
async fn history_ids_a_queue_does_not_know_are_counted_in_its_report() {
    let a = FakeQueue::spawn("a", cands(&["x", "y", "z"]), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands(&["z", "w"]), Behaviour::instant())
        .await
        .expect("b");
    let gw = serve(config(&[("a", &a), ("b", &b)])).await;

    // Compact answers carry the count in a header, JSON answers in the body: both reach the
    // caller in `queues[].unknown_history`, absent when zero.
    for compact in [true, false] {
        a.set_speaks_compact(compact);
        b.set_speaks_compact(compact);
        let (status, body) = gw
            .recall(json!({"user_id": "u1", "k": 3, "history": ["x", "w", "nope"]}))
            .await;
        assert_eq!(status, 200, "{body}");
        let report = |q: &str| {
            body["queues"]
                .as_array()
                .expect("queues")
                .iter()
                .find(|r| r["name"] == q)
                .cloned()
                .expect("report")
        };
        assert_eq!(
            report("a")["unknown_history"],
            2,
            "compact={compact} {body}"
        );
        assert_eq!(
            report("b")["unknown_history"],
            2,
            "compact={compact} {body}"
        );
        let (_, known) = gw
            .recall(json!({"user_id": "u1", "k": 3, "history": ["z"]}))
            .await;
        assert!(
            known["queues"][0].get("unknown_history").is_none(),
            "compact={compact} {known}"
        );
    }
}

#[tokio::test]
async fn stats_show_each_routed_queue_with_its_bundle_version_and_latency_percentiles_and_no_removed_queue()
 {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands(&["y"]), Behaviour::instant())
        .await
        .expect("b");
    let gw = serve(config(&[("a", &a), ("b", &b)])).await;
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    // The answering bundle's version is in the response too.
    assert_eq!(body["queues"][0]["version"], "fake", "{body}");

    let stats = gw.gateway.stats();
    let q = &stats.queues["a"];
    assert_eq!(q.version.as_deref(), Some("fake"));
    assert!(
        q.p50_took_ms.is_some() && q.p99_took_ms >= q.p50_took_ms,
        "{q:?}"
    );

    gw.gateway
        .handle()
        .update(config(&[("a", &a)]))
        .expect("valid");
    let names: Vec<String> = gw.gateway.stats().queues.into_keys().collect();
    assert_eq!(names, ["a"]);
}

#[tokio::test]
async fn the_console_gets_the_titles_it_asks_for_and_each_queue_problem_until_it_is_cleared() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let gw = serve(config(&[("a", &a)])).await;
    let handle = gw.gateway.handle();
    handle.set_titles(
        [("x", "Toy Story (1995)"), ("y", "GoldenEye (1995)")]
            .into_iter()
            .map(|(id, t)| (id.to_string(), t.to_string()))
            .collect(),
    );
    let (status, body) = gw.get("/ui/titles?ids=x,unknown").await;
    assert_eq!(status, 200, "{body}");
    let titles: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(titles, json!({"x": "Toy Story (1995)"}));
    let too_many = vec!["i"; 1001].join(",");
    let (status, body) = gw.get(&format!("/ui/titles?ids={too_many}")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"field\":\"ids\""), "{body}");

    handle.set_queue_problems(
        [(
            "a".to_string(),
            "loading queue a: no manifest.json".to_string(),
        )]
        .into(),
    );
    let (_, stats) = gw.get("/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(
        stats["queue_problems"]["a"],
        "loading queue a: no manifest.json"
    );
    handle.set_queue_problems(Default::default());
    assert!(gw.gateway.stats().queue_problems.is_empty());
}

#[tokio::test]
async fn a_failing_or_timed_out_queue_degrades_the_response_but_never_fails_it() {
    let good = FakeQueue::spawn("good", cands(&["g1", "g2"]), Behaviour::instant())
        .await
        .expect("good");
    let broken = FakeQueue::spawn("broken", cands(&["b1"]), Behaviour::fail(500))
        .await
        .expect("broken");
    let slow = FakeQueue::spawn("slow", cands(&["s1"]), Behaviour::Hang)
        .await
        .expect("slow");
    let mut c = config(&[("good", &good), ("broken", &broken), ("slow", &slow)]);
    c.queues[2].timeout_ms = Some(50);
    let gw = serve(c).await;

    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["g1", "g2"]);
    assert_eq!(body["degraded"], true);
    assert_eq!(status_of(&body, "broken"), "error");
    assert_eq!(status_of(&body, "slow"), "timeout");
    let detail = body["queues"][1]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("500") && detail.contains("failing on purpose"),
        "{detail}"
    );
    assert!(
        body["queues"][2]["detail"]
            .as_str()
            .expect("detail")
            .contains("50 ms")
    );
}

#[tokio::test]
async fn the_request_deadline_cuts_off_queues_without_their_own_timeout() {
    let slow = FakeQueue::spawn("slow", cands(&["s1"]), Behaviour::Hang)
        .await
        .expect("slow");
    let mut c = config(&[("slow", &slow)]);
    c.deadline_ms = 30;
    let gw = serve(c).await;
    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&body, "slow"), "timeout");
    assert_eq!(ids(&body), Vec::<String>::new());
}

#[tokio::test]
async fn a_queue_without_an_endpoint_is_skipped_and_never_called() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let mut c = config(&[("a", &a)]);
    c.queues.push(QueueRoute::named("not-ready"));
    let gw = serve(c).await;
    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&body, "not-ready"), "skipped");
    assert_eq!(body["degraded"], true);
    assert_eq!(ids(&body), ["x"]);
}

#[tokio::test]
async fn a_required_queue_failure_answers_503_naming_the_queue() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let must = FakeQueue::spawn("must", cands(&["m"]), Behaviour::fail(503))
        .await
        .expect("must");
    let mut c = config(&[("a", &a), ("must", &must)]);
    c.queues[1].required = true;
    let gw = serve(c).await;
    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("required queue 'must' failed (error)"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let gw = serve(config(&[("a", &a)])).await;
    for (body, field) in [
        (json!({"user_id": "u1", "k": 0}), "k"),
        (json!({"user_id": ""}), "user_id"),
        (json!({"user_id": "u1", "kk": 1}), "kk"),
        (json!({"user_id": "u1", "k": "ten"}), "k"),
        (json!({"k": 10}), "user_id"),
    ] {
        let (status, answer) = gw.recall(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], "invalid_argument");
        assert_eq!(answer["error"]["field"], field, "{body} -> {answer}");
    }
    assert_eq!(a.calls(), 0, "bad requests never reach a queue");
}

#[tokio::test]
async fn exclude_blocklist_max_per_source_and_fallback_shape_the_list() {
    let a = FakeQueue::spawn("a", cands(&["a1", "a2", "a3", "a4"]), Behaviour::instant())
        .await
        .expect("a");
    let popular = FakeQueue::spawn(
        "popular",
        cands(&["a1", "p1", "p2", "p3"]),
        Behaviour::instant(),
    )
    .await
    .expect("p");
    let mut c = config(&[("a", &a), ("popular", &popular)]);
    c.queues.truncate(1);
    c.fallback = Some("popular".into());
    c.filters.blocklist = vec!["a2".into(), "p2".into()];
    c.filters.max_per_source = Some(1);
    let gw = serve(c).await;
    let (status, body) = gw
        .recall(json!({"user_id": "u1", "k": 3, "exclude": ["a1"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    // a1 excluded, a2 blocked, a3 kept, a4 over a's cap; the fallback (which, like every
    // queue, already left out the excluded a1) goes through the same filters: p1 fills, p2 is
    // blocked and p3 is over the fallback's own cap of one, so the list stays short.
    assert_eq!(ids(&body), ["a3", "p1"]);
    assert_eq!(body["candidates"][1]["sources"], json!(["popular"]));
    assert_eq!(status_of(&body, "popular"), "ok");
}

#[tokio::test]
async fn an_experiment_arm_replaces_the_queue_set_and_reports_the_assignment() {
    let a = FakeQueue::spawn("a", cands(&["a1"]), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands(&["b1"]), Behaviour::instant())
        .await
        .expect("b");
    let mut c = config(&[("a", &a), ("b", &b)]);
    c.queues.truncate(1);
    let treatment = Arm {
        name: "treatment".into(),
        weight: 100,
        queues: Some(vec![QueueRoute::named("b")]),
        merge: Some(MergeSpec {
            policy: MergePolicy::WeightedInterleave,
            ..MergeSpec::default()
        }),
        fallback: None,
    };
    c.experiments.push(ExperimentRoute {
        name: "b-vs-a".into(),
        layer: "recall".into(),
        salt: "recall".into(),
        buckets: BucketRange {
            start: 0,
            end: 10000,
        },
        arms: vec![treatment],
        paused: false,
    });
    let gw = serve(c.clone()).await;
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(ids(&body), ["b1"]);
    assert_eq!(
        body["assignments"],
        json!([{"layer": "recall", "experiment": "b-vs-a", "arm": "treatment"}])
    );
    assert_eq!(a.calls(), 0);
    assert_eq!(gw.gateway.stats().arms[0].requests, 1);

    c.experiments[0].paused = true;
    gw.gateway.handle().update(c).expect("valid");
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(
        ids(&body),
        ["a1"],
        "a paused experiment sends its users to the defaults"
    );
    assert_eq!(body["assignments"], json!([]));
}

#[tokio::test]
async fn a_slow_queue_gets_a_hedged_second_request() {
    let slow = FakeQueue::spawn(
        "slow",
        cands(&["s1"]),
        Behaviour::after(Duration::from_millis(150)),
    )
    .await
    .expect("slow");
    let mut c = config(&[("slow", &slow)]);
    c.queues[0].hedge_after_ms = Some(10);
    let gw = serve(c).await;
    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&body, "slow"), "ok");
    assert_eq!(slow.calls(), 2, "the first call and its hedge");
}

#[tokio::test]
async fn a_circuit_opens_after_repeated_failures_and_a_probe_closes_it() {
    let flaky = FakeQueue::spawn("flaky", cands(&["f1"]), Behaviour::fail(500))
        .await
        .expect("flaky");
    let mut c = config(&[("flaky", &flaky)]);
    c.circuit_breaker = Some(CircuitBreakerSpec {
        failure_threshold: 2,
        open_ms: 200,
    });
    let gw = serve(c).await;
    for _ in 0..2 {
        let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
        assert_eq!(status_of(&body, "flaky"), "error");
    }
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status_of(&body, "flaky"), "skipped");
    assert!(
        body["queues"][0]["detail"]
            .as_str()
            .expect("detail")
            .contains("circuit open")
    );
    assert_eq!(flaky.calls(), 2, "an open circuit sends nothing");
    assert_eq!(gw.gateway.stats().queues["flaky"].circuit, "open");

    flaky.set_behaviour(Behaviour::instant());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(
        status_of(&body, "flaky"),
        "ok",
        "the probe goes through and succeeds"
    );
    assert_eq!(gw.gateway.stats().queues["flaky"].circuit, "closed");
}

/// A request that sat in the gateway for its whole deadline before the fan-out (what a burst of
/// load or a huge body does), as `recall` sees it.
fn overdue(by: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now()
        .checked_sub(by)
        .expect("an instant in the past")
}

fn recall_request(body: serde_json::Value) -> kan_api::wire::RecallRequest {
    serde_json::from_value(body).expect("request")
}

#[tokio::test]
async fn requests_whose_deadline_the_gateway_spent_before_calling_never_open_a_circuit() {
    let main = FakeQueue::spawn("main", cands(&["m1", "m2"]), Behaviour::instant())
        .await
        .expect("main");
    let fallback = FakeQueue::spawn("fallback", cands(&["f1"]), Behaviour::instant())
        .await
        .expect("fallback");
    let mut c = config(&[("main", &main), ("fallback", &fallback)]);
    c.queues.truncate(1);
    c.fallback = Some("fallback".into());
    c.deadline_ms = 200;
    c.circuit_breaker = Some(CircuitBreakerSpec {
        failure_threshold: 5,
        open_ms: 60_000,
    });
    let gw = serve(c).await;

    // Five requests whose deadline was spent before the calls (the blackout recipe).
    let request = recall_request(json!({"user_id": "42", "k": 5}));
    for _ in 0..5 {
        let response = gw
            .gateway
            .recall(
                &request,
                overdue(Duration::from_millis(200)),
                &opentelemetry::Context::new(),
            )
            .await
            .expect("answered");
        for q in &response.queues {
            assert_eq!(q.status, kan_api::wire::QueueStatus::Skipped, "{q:?}");
            let detail = q.detail.as_deref().unwrap_or_default();
            assert!(
                detail.contains("the request's deadline had 0 ms left"),
                "{detail}"
            );
        }
    }
    assert_eq!(
        (main.calls(), fallback.calls()),
        (0, 0),
        "nothing is sent without a budget"
    );

    // A normal request still gets candidates from both: no circuit opened.
    let (status, body) = gw.recall(json!({"user_id": "42", "k": 20})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["m1", "m2", "f1"]);
    let stats = gw.gateway.stats();
    assert_eq!(stats.queues["main"].circuit, "closed");
    assert_eq!(stats.queues["fallback"].circuit, "closed");
}

#[tokio::test]
async fn a_timeout_counts_against_the_queue_only_when_the_call_had_a_real_budget() {
    let slow = FakeQueue::spawn("slow", cands(&["s1"]), Behaviour::Hang)
        .await
        .expect("slow");
    let mut c = config(&[("slow", &slow)]);
    c.deadline_ms = 200;
    c.circuit_breaker = Some(CircuitBreakerSpec {
        failure_threshold: 1,
        open_ms: 60_000,
    });
    let gw = serve(c).await;

    // Sent with 80 of its 200 ms (under half its timeout): the gateway, not the queue, spent
    // the rest. 80 ms, not less, so the call reaches the fake even on a loaded machine.
    let request = recall_request(json!({"user_id": "u1"}));
    let response = gw
        .gateway
        .recall(
            &request,
            overdue(Duration::from_millis(120)),
            &opentelemetry::Context::new(),
        )
        .await
        .expect("answered");
    assert_eq!(
        response.queues[0].status,
        kan_api::wire::QueueStatus::Timeout
    );
    assert_eq!(slow.calls(), 1);
    assert_eq!(gw.gateway.stats().queues["slow"].circuit, "closed");

    // Sent with its whole budget and still silent: the queue's fault, the circuit opens.
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status_of(&body, "slow"), "timeout");
    assert_eq!(gw.gateway.stats().queues["slow"].circuit, "open");
}

#[tokio::test]
async fn a_queue_refusing_the_request_with_a_4xx_does_not_open_its_circuit() {
    let picky = FakeQueue::spawn("picky", cands(&["p1"]), Behaviour::fail(400))
        .await
        .expect("picky");
    let mut c = config(&[("picky", &picky)]);
    c.circuit_breaker = Some(CircuitBreakerSpec {
        failure_threshold: 1,
        open_ms: 60_000,
    });
    let gw = serve(c).await;
    for _ in 0..3 {
        let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
        assert_eq!(status_of(&body, "picky"), "error");
    }
    assert_eq!(picky.calls(), 3, "never skipped");
    assert_eq!(gw.gateway.stats().queues["picky"].circuit, "closed");
}

#[tokio::test]
async fn hanging_queues_cannot_hold_a_request_much_past_its_deadline() {
    let hang = FakeQueue::spawn("hang", cands(&["h1"]), Behaviour::Hang)
        .await
        .expect("hang");
    let hedged = FakeQueue::spawn("hedged", cands(&["x1"]), Behaviour::Hang)
        .await
        .expect("hedged");
    let fallback = FakeQueue::spawn("fallback", cands(&["f1"]), Behaviour::Hang)
        .await
        .expect("fallback");
    let mut c = config(&[
        ("hang", &hang),
        ("hedged", &hedged),
        ("fallback", &fallback),
    ]);
    c.queues.truncate(2);
    c.queues[0].timeout_ms = Some(100);
    c.queues[1].hedge_after_ms = Some(20);
    c.fallback = Some("fallback".into());
    c.deadline_ms = 100;
    let gw = serve(c).await;

    let started = std::time::Instant::now();
    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    // A generous margin: this bounds a hang, it does not measure speed.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    for q in ["hang", "hedged", "fallback"] {
        assert_eq!(status_of(&body, q), "timeout", "{q}");
    }
    assert_eq!(ids(&body), Vec::<String>::new());
}

#[tokio::test]
async fn the_callers_trace_context_reaches_every_queue() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands(&["y"]), Behaviour::instant())
        .await
        .expect("b");
    let gw = serve(config(&[("a", &a), ("b", &b)])).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = gw
        .client
        .post(format!("{}/v1/recall", gw.url))
        .header("traceparent", traceparent)
        .json(&json!({"user_id": "u1"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    for queue in [&a, &b] {
        let headers = queue.last_headers().expect("called");
        let seen = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .expect("traceparent");
        assert!(
            seen.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
            "same trace id: {seen}"
        );
    }
}

#[tokio::test]
async fn queues_answering_compact_and_queues_answering_only_json_merge_alike() {
    let compact = FakeQueue::spawn("compact", cands(&["x", "é✓", "z"]), Behaviour::instant())
        .await
        .expect("compact");
    let json_only = FakeQueue::spawn("json", cands(&["z", "w\"q"]), Behaviour::instant())
        .await
        .expect("json");
    json_only.set_speaks_compact(false);
    let gw = serve(config(&[("compact", &compact), ("json", &json_only)])).await;

    let (status, body) = gw.recall(json!({"user_id": "u1", "debug": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["z", "x", "é✓", "w\"q"]);
    assert_eq!(body["candidates"][0]["sources"], json!(["json", "compact"]));
    assert_eq!(body["queues"][0]["candidates"][1]["item_id"], "é✓");
    assert_eq!(body["degraded"], false);
    // The gateway asks every queue for the compact layout and accepts JSON too.
    for queue in [&compact, &json_only] {
        let headers = queue.last_headers().expect("called");
        let accept = headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .expect("accept");
        assert!(
            kan_api::wire::compact::accepts(accept) && accept.contains("application/json"),
            "{accept}"
        );
    }
}

#[tokio::test]
async fn a_queue_whose_answer_cannot_be_read_is_an_error_that_says_why() {
    let good = FakeQueue::spawn("good", cands(&["g1"]), Behaviour::instant())
        .await
        .expect("good");
    let broken_compact = FakeQueue::spawn(
        "compact",
        cands(&["x"]),
        Behaviour::Raw {
            content_type: kan_api::wire::compact::MEDIA_TYPE,
            body: b"KANC\x01\x05\x00",
        },
    )
    .await
    .expect("compact");
    let not_json = FakeQueue::spawn(
        "json",
        cands(&["y"]),
        Behaviour::Raw {
            content_type: "application/json",
            body: b"<html>proxy error</html>",
        },
    )
    .await
    .expect("json");
    let gw = serve(config(&[
        ("good", &good),
        ("compact", &broken_compact),
        ("json", &not_json),
    ]))
    .await;
    let (status, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["g1"]);
    assert_eq!(body["degraded"], true);
    assert_eq!(status_of(&body, "compact"), "error");
    assert_eq!(status_of(&body, "json"), "error");
    let detail = |i: usize| {
        body["queues"][i]["detail"]
            .as_str()
            .expect("detail")
            .to_string()
    };
    assert!(
        detail(1).contains("compact answer is truncated"),
        "{}",
        detail(1)
    );
    assert!(detail(2).contains("not a worker response"), "{}", detail(2));
}

#[tokio::test]
async fn debug_requests_show_each_queues_own_list() {
    let a = FakeQueue::spawn("a", cands(&["x", "y"]), Behaviour::instant())
        .await
        .expect("a");
    let gw = serve(config(&[("a", &a)])).await;
    let (_, body) = gw.recall(json!({"user_id": "u1", "debug": true})).await;
    assert_eq!(body["queues"][0]["candidates"][1]["item_id"], "y");
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert!(body["queues"][0].get("candidates").is_none());
}

#[tokio::test]
async fn health_readiness_and_stats_endpoints_answer() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let mut c = config(&[("a", &a)]);
    c.queues.push(QueueRoute::named("missing"));
    let gw = serve(c).await;
    assert_eq!(gw.get("/healthz").await, (200, "ok".to_string()));
    let (status, ready) = gw.get("/readyz").await;
    assert_eq!(status, 200);
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    assert_eq!(ready["ready"], true);
    assert_eq!(
        ready["queues"],
        json!([{"name": "a", "ready": true}, {"name": "missing", "ready": false}])
    );
    let (status, _) = gw.get("/metrics").await;
    assert_eq!(status, 404, "no recorder installed in this test binary");
    gw.recall(json!({"user_id": "u1"})).await;
    let (_, stats) = gw.get("/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["queues"]["a"]["ok"], 1);
    assert_eq!(stats["queues"]["missing"]["skipped"], 1);
}

#[tokio::test]
async fn the_exposure_log_gets_one_line_per_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exposures.jsonl");
    let a = FakeQueue::spawn("a", cands(&["x", "y"]), Behaviour::instant())
        .await
        .expect("a");
    let mut c = config(&[("a", &a)]);
    c.exposure_log = Some(path.display().to_string());
    let gw = serve(c).await;
    for user in ["u1", "u2", "u3"] {
        gw.recall(json!({"user_id": user})).await;
    }
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        if lines.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 3);
    let first: kan_api::wire::ExposureRecord = serde_json::from_str(&lines[0]).expect("record");
    assert_eq!(first.user_id, "u1");
    assert_eq!(first.items, ["x", "y"]);
}
