//! The two stores behave alike (each behaviour runs on the in-process store and on a real
//! `redis-server`), and the Redis store keeps every acknowledged event across a crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kan_api::events::{Action, Event};
use kan_signals::{MemoryStore, RedisOptions, RedisStore, SignalStore, Window};
use kan_testkit::redis::RedisServer;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn engagement(id: &str, user: &str, item: &str, ts: i64) -> Event {
    Event {
        id: id.into(),
        user_id: user.into(),
        action: Action::Click,
        item_id: Some(item.into()),
        target: None,
        ts,
        weight: None,
        context: BTreeMap::new(),
    }
}

fn edge(id: &str, user: &str, action: Action, target: &str, ts: i64) -> Event {
    Event {
        id: id.into(),
        user_id: user.into(),
        action,
        item_id: None,
        target: Some(target.into()),
        ts,
        weight: None,
        context: BTreeMap::new(),
    }
}

const WINDOW: Window = Window {
    window_ms: 3_600_000,
    half_life_ms: 600_000,
};

async fn retries_apply_once_and_lists_read_newest_first(store: &dyn SignalStore) {
    let t = now_ms();
    let batch = [
        engagement("a1", "alice", "i2", t),
        engagement("a0", "alice", "i1", t - 1000),
        edge("a2", "alice", Action::Follow, "bob", t),
    ];
    let first = store.append(&batch).await.expect("append");
    assert_eq!((first.stored, first.duplicates), (3, 0));
    let retry = store.append(&batch).await.expect("retry");
    assert_eq!((retry.stored, retry.duplicates), (0, 3), "{}", store.name());
    assert_eq!(
        store.history("alice", 10).await.expect("history"),
        ["i2", "i1"]
    );
    assert_eq!(store.history("alice", 1).await.expect("history"), ["i2"]);
    assert_eq!(store.following("alice").await.expect("following"), ["bob"]);
    let engaged = store
        .engagements(&["alice".to_string(), "nobody".to_string()], 10)
        .await
        .expect("engagements");
    assert_eq!(engaged[0].len(), 2);
    assert_eq!(
        (engaged[0][0].item_id.as_str(), engaged[0][0].ts_ms),
        ("i2", t)
    );
    assert!(engaged[1].is_empty());
    store
        .append(&[edge("a3", "alice", Action::Unfollow, "bob", t + 1)])
        .await
        .expect("unfollow");
    assert!(
        store
            .following("alice")
            .await
            .expect("following")
            .is_empty()
    );
}

async fn a_burst_on_an_item_puts_it_first_in_trending_of_its_segments(store: &dyn SignalStore) {
    let t = now_ms();
    let mut batch: Vec<Event> = (0..3)
        .map(|n| {
            engagement(
                &format!("s{n}"),
                &format!("u{n}"),
                "steady",
                t - 30 * 60_000,
            )
        })
        .collect();
    for n in 0..5 {
        let mut e = engagement(&format!("b{n}"), &format!("v{n}"), "burst", t);
        e.context.insert("region".into(), "SH".into());
        batch.push(e);
    }
    store.append(&batch).await.expect("append");
    let global = store
        .trending("global", t, WINDOW, 10)
        .await
        .expect("trending");
    assert_eq!(global[0].0, "burst", "{global:?}");
    assert_eq!(global[1].0, "steady");
    // 3 clicks half an hour ago = 3 · 0.5^(30/10) ≈ 0.375 (give or take the minute's middle).
    assert!(global[1].1 > 0.3 && global[1].1 < 0.45, "{global:?}");
    let sh = store
        .trending("region=SH", t, WINDOW, 10)
        .await
        .expect("segment");
    assert_eq!(sh, [("burst".to_string(), 5.0)]);
    let later = store
        .trending("global", t + 2 * 3_600_000, WINDOW, 10)
        .await
        .expect("later");
    assert!(later.is_empty(), "outside the window: {later:?}");
}

#[tokio::test]
async fn the_in_process_store_applies_retries_once_and_ranks_bursts_first() {
    retries_apply_once_and_lists_read_newest_first(&MemoryStore::new()).await;
    a_burst_on_an_item_puts_it_first_in_trending_of_its_segments(&MemoryStore::new()).await;
}

#[tokio::test]
async fn the_redis_store_applies_retries_once_and_ranks_bursts_first() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = |prefix: &str| {
        let mut options = RedisOptions::new(server.url());
        options.prefix = prefix.to_string();
        RedisStore::new(options).expect("store")
    };
    retries_apply_once_and_lists_read_newest_first(&store("a:")).await;
    a_burst_on_an_item_puts_it_first_in_trending_of_its_segments(&store("b:")).await;
}

#[tokio::test]
async fn a_redis_that_is_down_fails_calls_within_the_connect_timeout() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::new(RedisOptions::new(server.url())).expect("store");
    server.kill();
    let started = std::time::Instant::now();
    let err = store.history("u", 10).await.expect_err("down");
    assert!(
        matches!(err.metric_label(), "unavailable" | "timeout"),
        "{err}"
    );
    // Bounded by connect + response timeout (0.75 s), with a wide margin for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// kill -9 in the middle of ingestion, restart, and every acknowledged event is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_a_kill_of_redis_mid_ingestion() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = Arc::new(RedisStore::new(RedisOptions::new(server.url())).expect("store"));
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = 0;
            for batch in 0..100_000u32 {
                let t = now_ms();
                let events: Vec<Event> = (0..10)
                    .map(|i| {
                        let n = batch * 10 + i;
                        engagement(&format!("e{n}"), &format!("u{n}"), &format!("i{n}"), t)
                    })
                    .collect();
                match store.append(&events).await {
                    Ok(appended) => {
                        assert_eq!(appended.stored, 10);
                        acknowledged.extend(events.into_iter().map(|e| e.user_id));
                    }
                    Err(_) => {
                        failures += 1;
                        if failures > 3 {
                            break;
                        }
                    }
                }
            }
            acknowledged
        })
    };
    // Let some batches through, then kill the server while the writer is still sending.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();
    let acknowledged = writer.await.expect("writer");
    assert!(
        acknowledged.len() >= 10,
        "ingestion was running when the server was killed"
    );
    server.restart();
    let store = RedisStore::new(RedisOptions::new(server.url())).expect("store");
    let mut lost = 0;
    for users in acknowledged.chunks(500) {
        let engaged = store.engagements(users, 1).await.expect("read back");
        lost += engaged.iter().filter(|e| e.is_empty()).count();
    }
    assert_eq!(lost, 0, "of {} acknowledged events", acknowledged.len());
    eprintln!(
        "{} acknowledged events before the kill, all found after the restart",
        acknowledged.len()
    );
}
