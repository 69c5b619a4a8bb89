//! Hot reload: configs swap atomically under load, bad ones are rejected and reported.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{config, ids, serve};
use kan_api::wire::Candidate;
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use serde_json::json;

fn cands(prefix: &str) -> Vec<Candidate> {
    FakeQueue::items(prefix, 0, 5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_under_concurrent_load_fails_no_request() {
    let a = FakeQueue::spawn("a", cands("a"), Behaviour::after(Duration::from_millis(2)))
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands("b"), Behaviour::after(Duration::from_millis(2)))
        .await
        .expect("b");
    let only_a = {
        let mut c = config(&[("a", &a), ("b", &b)]);
        c.queues.truncate(1);
        c
    };
    let only_b = {
        let mut c = config(&[("a", &a), ("b", &b)]);
        c.queues.remove(0);
        c
    };
    let gw = Arc::new(serve(only_a.clone()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for i in 0..8 {
        let (gw, stop, ok, failed) = (gw.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = gw.recall(json!({"user_id": format!("u{i}"), "k": 5})).await;
                // Every answer comes whole from one config or the other, never a mix.
                let items = ids(&body);
                let whole = items.iter().all(|id| id.starts_with('a'))
                    || items.iter().all(|id| id.starts_with('b'));
                if status == 200 && items.len() == 5 && whole && body["degraded"] == false {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let handle = gw.gateway.handle();
    for i in 0..40 {
        let next = if i % 2 == 0 {
            only_b.clone()
        } else {
            only_a.clone()
        };
        handle.update(next).expect("valid config");
        if i % 10 == 0 {
            let mut invalid = only_a.clone();
            invalid.deadline_ms = 0;
            assert!(handle.update(invalid).is_err());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    assert!(
        ok.load(Ordering::Relaxed) > 40,
        "load ran: {} requests",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_watched_file_reloads_and_a_broken_version_keeps_the_old_config_and_shows_in_readyz() {
    let a = FakeQueue::spawn("a", cands("a"), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands("b"), Behaviour::instant())
        .await
        .expect("b");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("routing.yaml");
    let yaml = |queue: &str| {
        format!(
            "gateway: test-gw\nendpoints:\n  a: {}\n  b: {}\nqueues:\n  - name: {queue}\n",
            a.url(),
            b.url()
        )
    };
    std::fs::write(&path, yaml("a")).expect("write");
    let gw = serve(kan_gateway::load_config(&path).expect("load")).await;
    let handle = gw.gateway.handle();
    let _watcher = kan_gateway::watch(handle.clone(), &path).expect("watch");
    let first_hash = handle.config_hash();

    // Replace the file the way editors and ConfigMap updates do: write aside, rename over.
    let aside = dir.path().join("routing.yaml.tmp");
    std::fs::write(&aside, yaml("b")).expect("write");
    std::fs::rename(&aside, &path).expect("rename");
    wait_until(|| handle.config_hash() != first_hash).await;
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(ids(&body)[0], "b0");

    let good_hash = handle.config_hash();
    // An in-place write can be seen half-done (an empty file) first; wait for the full one.
    std::fs::write(&path, "gateway: test-gw\nqueues: []\n").expect("write");
    wait_until(|| handle.last_error().is_some_and(|e| e.contains("queues"))).await;
    assert_eq!(
        handle.config_hash(),
        good_hash,
        "the old config keeps serving"
    );
    let (status, ready) = gw.get("/readyz").await;
    assert_eq!(status, 200);
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    let error = ready["config_error"].as_str().expect("config_error");
    assert!(error.contains("queues"), "{error}");
    assert_eq!(ready["config_rejected"], true);
    assert_eq!(ready["config_hash"], good_hash.as_str());

    std::fs::write(&path, "gateway: test-gw\nqueues: [{name: a}]\nbogus: 1\n").expect("write");
    wait_until(|| handle.last_error().is_some_and(|e| e.contains("bogus"))).await;

    std::fs::write(&path, yaml("a")).expect("write");
    wait_until(|| handle.last_error().is_none()).await;
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(ids(&body)[0], "a0");
    let (status, ready) = gw.get("/readyz").await;
    assert_eq!(status, 200);
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("json");
    assert_eq!(ready["config_rejected"], false);
    assert!(ready.get("config_error").is_none(), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_in_two_steps_reloads_without_ever_reporting_a_config_error() {
    let a = FakeQueue::spawn("a", cands("a"), Behaviour::instant())
        .await
        .expect("a");
    let b = FakeQueue::spawn("b", cands("b"), Behaviour::instant())
        .await
        .expect("b");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("routing.yaml");
    let yaml = |queue: &str| {
        format!(
            "gateway: test-gw\nendpoints:\n  a: {}\n  b: {}\nqueues:\n  - name: {queue}\n",
            a.url(),
            b.url()
        )
    };
    std::fs::write(&path, yaml("a")).expect("write");
    let gw = serve(kan_gateway::load_config(&path).expect("load")).await;
    let handle = gw.gateway.handle();
    let _watcher = kan_gateway::watch(handle.clone(), &path).expect("watch");
    let first_hash = handle.config_hash();

    // A non-atomic write, like `cp` or `echo >`: truncate, half the text, a pause, the rest.
    let full = yaml("b");
    let (head, tail) = full.split_at(full.len() / 2);
    let writer = {
        let path = path.clone();
        let (head, tail) = (head.to_string(), tail.to_string());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(&path).expect("truncate");
            std::thread::sleep(Duration::from_millis(60));
            f.write_all(head.as_bytes()).expect("head");
            f.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(100));
            f.write_all(tail.as_bytes()).expect("tail");
        })
    };
    let mut seen_error = None;
    for _ in 0..200 {
        seen_error = seen_error.or(handle.last_error());
        if handle.config_hash() != first_hash {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    writer.join().expect("writer");
    assert_ne!(handle.config_hash(), first_hash, "the new version loaded");
    assert_eq!(seen_error, None, "a half-written file is not an error");
    let (_, body) = gw.recall(json!({"user_id": "u1"})).await;
    assert_eq!(ids(&body)[0], "b0");
}

async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached within 5 s");
}
