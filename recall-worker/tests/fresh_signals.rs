//! Queues reading the online signal store (`spec.signals`): a friend's fresh engagement reaches
//! social recall, a burst enters trending, a stored history feeds history-based queues, and a
//! store that is down leaves the bundle's answer marked `degraded`. Each runs on the in-process
//! store and on a real `redis-server` (skipped loudly when it is not installed, unless
//! KAN_REQUIRE_REDIS is set).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use common::*;
use kan_api::crd::StrategyType;
use kan_api::events::{Action, Event};
use kan_signals::{MemoryStore, RedisOptions, RedisStore, SignalStore};
use kan_testkit::redis::RedisServer;
use kan_worker::{Worker, WorkerOptions};
use serde_json::{Value, json};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn click(id: &str, user: &str, item: &str) -> Event {
    Event {
        id: id.into(),
        user_id: user.into(),
        action: Action::Click,
        item_id: Some(item.into()),
        target: None,
        ts: now_ms(),
        weight: None,
        context: BTreeMap::new(),
    }
}

fn edge(id: &str, user: &str, action: Action, target: &str) -> Event {
    Event {
        id: id.into(),
        user_id: user.into(),
        action,
        item_id: None,
        target: Some(target.into()),
        ts: now_ms(),
        weight: None,
        context: BTreeMap::new(),
    }
}

async fn worker_on(
    store: Arc<dyn SignalStore>,
    strategy: StrategyType,
    dir: &std::path::Path,
    extra: Value,
) -> Worker {
    let options = WorkerOptions {
        signals: Some(store),
        ..options()
    };
    Worker::load(config(strategy, Some(dir), extra), options)
        .await
        .expect("worker loads")
}

/// The full worker answer: (candidate ids, degraded).
async fn answer(worker: &Worker, body: Value) -> (Vec<String>, bool) {
    let (status, json) = call(worker, "POST", "/v1/recall", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let ids = json["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["item_id"].as_str().expect("id").to_string())
        .collect();
    (ids, json["degraded"] == json!(true))
}

async fn a_follow_edge_and_a_friends_engagement_reach_social_recall(store: Arc<dyn SignalStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_bundle(dir.path(), StrategyType::Social);
    let social = json!({"strategy": {"social": {"halfLifeHours": 1.0}}});
    let worker = worker_on(store.clone(), StrategyType::Social, dir.path(), social).await;
    assert_eq!(
        answer(&worker, json!({"user_id": "u5"})).await,
        (vec![], false)
    );

    store
        .append(&[
            edge("f1", "u5", Action::Follow, "u7"),
            edge("f2", "newcomer", Action::Follow, "u7"),
            click("c1", "u7", "i30"),
        ])
        .await
        .expect("acknowledged");
    let acknowledged = Instant::now();
    let mut seen = false;
    while acknowledged.elapsed() < Duration::from_secs(1) {
        if answer(&worker, json!({"user_id": "u5"})).await.0 == ["i30"] {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "u5 follows u7, who just clicked i30");
    assert_eq!(
        answer(&worker, json!({"user_id": "newcomer"})).await,
        (vec!["i30".to_string()], false),
        "a user the bundle does not know gets their followees' items"
    );
    // The bundle's friends keep their weight; a fresh engagement of u1 joins the sums.
    store
        .append(&[click("c2", "u1", "i31")])
        .await
        .expect("acknowledged");
    let (u0, _) = answer(&worker, json!({"user_id": "u0", "k": 7})).await;
    assert!(
        u0.contains(&"i31".to_string()) && u0.contains(&"i4".to_string()),
        "{u0:?}"
    );

    store
        .append(&[edge("f3", "u5", Action::Unfollow, "u7")])
        .await
        .expect("acknowledged");
    assert!(answer(&worker, json!({"user_id": "u5"})).await.0.is_empty());
}

async fn a_burst_on_an_item_enters_trending(store: Arc<dyn SignalStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_bundle(dir.path(), StrategyType::Popular);
    let popular = json!({"strategy": {"popular": {"segmentBy": ["region"], "trending": {"windowMinutes": 60, "halfLifeMinutes": 15}}}});
    let worker = worker_on(store.clone(), StrategyType::Popular, dir.path(), popular).await;
    // A user with no history: popular never recalls what a user already engaged with.
    let before = answer(&worker, json!({"user_id": "newcomer", "k": 3})).await;
    assert_eq!(before, (vec!["i0".into(), "i1".into(), "i2".into()], false));

    let burst: Vec<Event> = (0..20)
        .map(|n| click(&format!("b{n}"), &format!("fan{n}"), "i25"))
        .collect();
    store.append(&burst).await.expect("acknowledged");
    let mut one = click("t1", "fan0", "i26");
    one.context.insert("region".into(), "SH".into());
    store.append(&[one]).await.expect("acknowledged");

    let (after, degraded) = answer(&worker, json!({"user_id": "newcomer", "k": 3})).await;
    assert!(!degraded);
    assert_eq!(
        after,
        ["i25", "i26", "i0"],
        "the burst first, the bundle fills the rest"
    );
    let (sh, _) = answer(
        &worker,
        json!({"user_id": "newcomer", "k": 3, "context": {"region": "SH"}}),
    )
    .await;
    assert_eq!(
        sh[0], "i26",
        "the segment's trending item leads in its segment: {sh:?}"
    );
}

async fn a_stored_history_feeds_history_based_queues(store: Arc<dyn SignalStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_bundle(dir.path(), StrategyType::Itemcf);
    let worker = worker_on(store.clone(), StrategyType::Itemcf, dir.path(), json!({})).await;
    assert!(
        answer(&worker, json!({"user_id": "stranger"}))
            .await
            .0
            .is_empty()
    );
    store
        .append(&[click("h1", "stranger", "i10")])
        .await
        .expect("acknowledged");
    let (got, _) = answer(&worker, json!({"user_id": "stranger", "k": 2})).await;
    assert_eq!(got, ["i11", "i12"], "neighbours of the stored click");
    let (given, _) = answer(
        &worker,
        json!({"user_id": "stranger", "k": 2, "history": ["i20"]}),
    )
    .await;
    assert_eq!(given, ["i21", "i22"], "a request's own history wins");
}

#[tokio::test]
async fn with_the_in_process_store_fresh_signals_reach_social_trending_and_history_recall() {
    let store: Arc<dyn SignalStore> = Arc::new(MemoryStore::new());
    a_follow_edge_and_a_friends_engagement_reach_social_recall(store.clone()).await;
    a_burst_on_an_item_enters_trending(Arc::new(MemoryStore::new())).await;
    a_stored_history_feeds_history_based_queues(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn with_redis_a_follow_and_a_friends_engagement_reach_social_recall_within_a_second() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = Arc::new(RedisStore::new(RedisOptions::new(server.url())).expect("store"));
    a_follow_edge_and_a_friends_engagement_reach_social_recall(store).await;
}

#[tokio::test]
async fn with_redis_a_burst_of_engagements_on_an_item_enters_trending() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = Arc::new(RedisStore::new(RedisOptions::new(server.url())).expect("store"));
    a_burst_on_an_item_enters_trending(store).await;
}

#[tokio::test]
async fn with_redis_a_stored_history_feeds_history_based_queues() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = Arc::new(RedisStore::new(RedisOptions::new(server.url())).expect("store"));
    a_stored_history_feeds_history_based_queues(store).await;
}

#[tokio::test]
async fn with_redis_down_queues_answer_from_the_bundle_marked_degraded() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store: Arc<dyn SignalStore> =
        Arc::new(RedisStore::new(RedisOptions::new(server.url())).expect("store"));
    let dir = tempfile::tempdir().expect("tempdir");
    write_bundle(dir.path(), StrategyType::Social);
    let social = json!({"strategy": {"social": {"halfLifeHours": 1.0}}});
    let worker = worker_on(store.clone(), StrategyType::Social, dir.path(), social).await;
    let popular_dir = tempfile::tempdir().expect("tempdir");
    write_bundle(popular_dir.path(), StrategyType::Popular);
    let trending = json!({"strategy": {"popular": {"trending": {}}}});
    let popular = worker_on(store, StrategyType::Popular, popular_dir.path(), trending).await;
    let up = answer(&worker, json!({"user_id": "u0", "k": 6})).await;
    assert_eq!(up.0, ["i4", "i5", "i6", "i8", "i9", "i10"]);
    assert!(!up.1);

    server.kill();
    let down = answer(&worker, json!({"user_id": "u0", "k": 6})).await;
    assert_eq!(
        down,
        (up.0.clone(), true),
        "the bundle's answer, degraded, not failed"
    );
    let (list, degraded) = answer(&popular, json!({"user_id": "newcomer", "k": 3})).await;
    assert_eq!(
        (list, degraded),
        (vec!["i0".into(), "i1".into(), "i2".into()], true)
    );

    server.restart();
    // Back after the back-off (1 s) and the reconnect.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = answer(&worker, json!({"user_id": "u0", "k": 6})).await;
        if !again.1 {
            assert_eq!(again.0, up.0);
            break;
        }
        assert!(Instant::now() < deadline, "the store never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
