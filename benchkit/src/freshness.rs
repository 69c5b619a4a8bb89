//! `kan bench freshness`: how long an engagement takes to reach recall, and how many events per
//! second ingestion takes, with the store on loopback.
//!
//! In one process: a social queue and a trending popular queue (synthetic bundles) reading the
//! store, a gateway in front of them serving `POST /v1/events`, and clients keeping recall load
//! on the gateway. For each of `events` rounds, a user's followee clicks a fresh item (in a
//! segment of its own, so it tops that segment's trending list at once), and the gateway is
//! polled until the item comes back from the social queue and from the trending queue; the
//! time from sending the event to each is recorded. Then `ingest` of batches of 100
//! events measure ingestion throughput.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kan_api::bundle::files;
use kan_api::crd::{QueueRoute, StrategyType};
use kan_api::routing::RoutingConfig;
use kan_api::worker_config::WorkerConfig;
use kan_gateway::Gateway;
use kan_signals::SignalStore;
use kan_testkit::bundle::{BundleWriter, TensorData, offsets};
use kan_testkit::redis::RedisServer;
use kan_worker::{Worker, WorkerOptions};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::percentile::nearest_rank;

/// What to run.
#[derive(Debug, Clone)]
pub struct FreshnessConfig {
    /// Engagements whose freshness is measured.
    pub events: usize,
    /// Redis to use (`redis://127.0.0.1:PORT`); none starts a `redis-server` on a free loopback
    /// port (appendonly, appendfsync always) and stops it at the end.
    pub redis: Option<String>,
    /// Use the in-process store instead of Redis.
    pub in_process: bool,
    /// Clients sending recall requests to the gateway meanwhile (one in flight each).
    pub load_concurrency: usize,
    /// Length of the ingestion throughput phase.
    pub ingest: Duration,
    /// Concurrent ingesting clients (batches of 100 events).
    pub ingest_concurrency: usize,
}

/// What came out (latencies in ms; NaN when no round saw its item).
#[derive(Debug, Clone, Serialize)]
pub struct FreshnessReport {
    pub build: &'static str,
    pub store: &'static str,
    pub events: usize,
    pub social_p50_ms: f64,
    pub social_p99_ms: f64,
    pub trending_p50_ms: f64,
    pub trending_p99_ms: f64,
    /// Rounds where the item did not show within 5 s (counted, not in the percentiles).
    pub not_seen: usize,
    /// Recall requests per second the load clients got answered during the rounds.
    pub load_recalls_per_s: f64,
    pub ingest_events_per_s: f64,
    pub cores: usize,
    pub ingest_events_per_s_per_core: f64,
}

const ITEMS: usize = 5000;
const SEEN_WITHIN: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A social bundle (no bundle friends: every tie comes from the store) and a popular one.
fn write_bundles(dir: &Path, users: usize) -> std::io::Result<()> {
    let items: Vec<String> = (0..ITEMS).map(|i| format!("i{i}")).collect();
    let user_ids: Vec<String> = (0..users).map(|u| format!("u{u}")).collect();
    let social = dir.join("social");
    let mut w = BundleWriter::new(&social)?;
    w.ids(files::ITEMS, &items)?.ids(files::USERS, &user_ids)?;
    w.tensors(
        files::USER_HISTORY,
        vec![
            (
                "offsets",
                TensorData::I64(vec![users + 1], vec![0; users + 1]),
            ),
            ("items", TensorData::I64(vec![0], Vec::new())),
            ("timestamps", TensorData::I64(vec![0], Vec::new())),
        ],
    )?;
    w.tensors(
        files::FRIENDS,
        vec![
            (
                "offsets",
                TensorData::I64(vec![users + 1], offsets(vec![0; users])),
            ),
            ("friends", TensorData::I64(vec![0], Vec::new())),
            ("strength", TensorData::F32(vec![0], Vec::new())),
        ],
    )?;
    w.finish(StrategyType::Social, None, json!({}))?;
    let popular = dir.join("popular");
    let mut w = BundleWriter::new(&popular)?;
    w.ids(files::ITEMS, &items)?.ids(files::USERS, &user_ids)?;
    w.tensors(
        files::POPULAR,
        vec![
            (
                "global/items",
                TensorData::I64(vec![100], (0..100).collect()),
            ),
            (
                "global/scores",
                TensorData::F32(vec![100], (0..100).map(|i| 100.0 - i as f32).collect()),
            ),
        ],
    )?;
    w.finish(StrategyType::Popular, None, json!({}))?;
    Ok(())
}

async fn serve(router: axum::Router, name: &str) -> Result<String> {
    let local = |source| Error::Local {
        what: "binding a loopback port",
        source,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(local)?;
    let url = format!("http://{}", listener.local_addr().map_err(local)?);
    let limits = kan_http::ListenerLimits::named(name);
    tokio::spawn(kan_http::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    Ok(url)
}

async fn start_queue(name: &str, spec: Value, store: Arc<dyn SignalStore>) -> Result<String> {
    let config: WorkerConfig = serde_json::from_value(json!({"name": name, "spec": spec}))
        .map_err(|e| Error::Config(format!("queue {name}: {e}")))?;
    let options = WorkerOptions {
        signals: Some(store),
        ..WorkerOptions::default()
    };
    let worker = Worker::load(config, options).await?;
    serve(worker.router(None), name).await
}

/// The nearest-rank `p` percentile of `sorted`, NaN for no samples (a report must not show 0 ms
/// for rounds that never saw their item).
fn percentile_or_nan(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        f64::NAN
    } else {
        nearest_rank(sorted, p)
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value> {
    let failed = |e: reqwest::Error| Error::Request(format!("{url}: {e}"));
    let response = client.post(url).json(body).send().await.map_err(failed)?;
    let status = response.status();
    let body: Value = response.json().await.map_err(failed)?;
    if !status.is_success() {
        return Err(Error::Request(format!("{url}: {status} {body}")));
    }
    Ok(body)
}

/// Runs the benchmark (inside a tokio runtime).
pub async fn run(config: &FreshnessConfig) -> Result<FreshnessReport> {
    let mut _server = None;
    let (store, store_name): (Arc<dyn SignalStore>, &'static str) = if config.in_process {
        (Arc::new(kan_signals::MemoryStore::new()), "in-process")
    } else {
        let url = match &config.redis {
            Some(url) => url.clone(),
            None => {
                let server = RedisServer::start().ok_or_else(|| {
                    Error::Config(
                        "redis-server is not installed: run scripts/install-redis.sh, or pass \
                         --redis or --in-process"
                            .into(),
                    )
                })?;
                let url = server.url();
                _server = Some(server);
                url
            }
        };
        let store = kan_signals::RedisStore::new(kan_signals::RedisOptions::new(url))
            .map_err(|e| Error::Signals(e.to_string()))?;
        (Arc::new(store), "redis (loopback, appendfsync always)")
    };

    let n = config.events.max(1);
    let dir = tempfile::tempdir().map_err(|source| Error::Local {
        what: "creating a temporary directory",
        source,
    })?;
    write_bundles(dir.path(), 2 * n + 16).map_err(Error::Fixture)?;
    let bundle = |name: &str| format!("file://{}", dir.path().join(name).display());
    let social = start_queue(
        "social",
        json!({"strategy": {"type": "social", "social": {"halfLifeHours": 1.0}}, "bundle": {"uri": bundle("social")}, "timeoutMs": 200}),
        store.clone(),
    )
    .await?;
    let trending = start_queue(
        "trending",
        json!({"strategy": {"type": "popular", "popular": {"segmentBy": ["bench"], "trending": {}}}, "bundle": {"uri": bundle("popular")}, "timeoutMs": 200}),
        store.clone(),
    )
    .await?;
    let routing = RoutingConfig {
        gateway: "bench".into(),
        endpoints: [
            ("social".to_string(), social),
            ("trending".to_string(), trending),
        ]
        .into_iter()
        .collect(),
        queues: vec![QueueRoute::named("social"), QueueRoute::named("trending")],
        merge: Default::default(),
        filters: Default::default(),
        fallback: None,
        deadline_ms: 500,
        circuit_breaker: None,
        exposure_log: None,
        experiments: Vec::new(),
    };
    let gateway = Gateway::new(routing)?;
    let router = gateway
        .router(None)
        .merge(kan_gateway::events::events_router(
            store.clone(),
            kan_http::Admission::new(kan_gateway::events::DEFAULT_MAX_BATCHES_IN_FLIGHT, "events"),
        ));
    let url = serve(router, "gateway").await?;
    let recall_url = format!("{url}/v1/recall");
    let events_url = format!("{url}/v1/events");
    let client = reqwest::Client::new();

    // Follow edges: u{2k} follows u{2k+1}.
    let edges: Vec<Value> = (0..n)
        .map(|k| json!({"id": format!("follow-{k}"), "user_id": format!("u{}", 2 * k), "target": format!("u{}", 2 * k + 1), "action": "follow", "ts": now_ms()}))
        .collect();
    for chunk in edges.chunks(kan_api::events::MAX_BATCH) {
        post(&client, &events_url, &json!({"events": chunk})).await?;
    }

    // Recall load on the gateway while the rounds run.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..config.load_concurrency)
        .map(|c| {
            let (client, url, stop, answered) = (
                client.clone(),
                recall_url.clone(),
                stop.clone(),
                answered.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let body =
                        json!({"user_id": format!("u{}", (c * 7919 + i) % (2 * n)), "k": 50});
                    if post(&client, &url, &body).await.is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();

    let rounds_started = Instant::now();
    let mut social_ms = Vec::with_capacity(n);
    let mut trending_ms = Vec::with_capacity(n);
    let mut not_seen = 0;
    for k in 0..n {
        let item = format!("i{}", 100 + k % (ITEMS - 100));
        let segment = format!("s{k}");
        let event = json!({"events": [{"id": format!("click-{k}"), "user_id": format!("u{}", 2 * k + 1), "item_id": item, "action": "click", "ts": now_ms(), "context": {"bench": segment}}]});
        let sent = Instant::now();
        post(&client, &events_url, &event).await?;
        let probe =
            json!({"user_id": format!("u{}", 2 * k), "k": 50, "context": {"bench": segment}});
        let (mut social_at, mut trending_at) = (None, None);
        while (social_at.is_none() || trending_at.is_none()) && sent.elapsed() < SEEN_WITHIN {
            let answer = post(&client, &recall_url, &probe).await?;
            let sources = answer["candidates"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["item_id"] == item.as_str()))
                .and_then(|c| c["sources"].as_array().cloned())
                .unwrap_or_default();
            let elapsed = sent.elapsed().as_secs_f64() * 1000.0;
            if social_at.is_none() && sources.iter().any(|s| s == "social") {
                social_at = Some(elapsed);
            }
            if trending_at.is_none() && sources.iter().any(|s| s == "trending") {
                trending_at = Some(elapsed);
            }
        }
        match (social_at, trending_at) {
            (Some(s), Some(t)) => {
                social_ms.push(s);
                trending_ms.push(t);
            }
            _ => not_seen += 1,
        }
    }
    let rounds = rounds_started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    let load_recalls_per_s = answered.load(Ordering::Relaxed) as f64 / rounds.max(1e-9);

    // Ingestion throughput: batches of 100 engagements from concurrent clients.
    let ingested = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + config.ingest.max(Duration::from_secs(1));
    let started = Instant::now();
    let clients: Vec<_> = (0..config.ingest_concurrency.max(1))
        .map(|c| {
            let (client, url, ingested) = (client.clone(), events_url.clone(), ingested.clone());
            tokio::spawn(async move {
                let mut b = 0usize;
                while Instant::now() < deadline {
                    let ts = now_ms();
                    let events: Vec<Value> = (0..100)
                        .map(|i| json!({"id": format!("load-{c}-{b}-{i}"), "user_id": format!("u{}", (b * 100 + i) % 1000), "item_id": format!("i{}", (b * 31 + i) % ITEMS), "action": "click", "ts": ts}))
                        .collect();
                    if post(&client, &url, &json!({"events": events})).await.is_ok() {
                        ingested.fetch_add(100, Ordering::Relaxed);
                    }
                    b += 1;
                }
            })
        })
        .collect();
    for task in clients {
        let _ = task.await;
    }
    let ingest_events_per_s =
        ingested.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());

    social_ms.sort_by(f64::total_cmp);
    trending_ms.sort_by(f64::total_cmp);
    Ok(FreshnessReport {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        store: store_name,
        events: n,
        social_p50_ms: percentile_or_nan(&social_ms, 0.50),
        social_p99_ms: percentile_or_nan(&social_ms, 0.99),
        trending_p50_ms: percentile_or_nan(&trending_ms, 0.50),
        trending_p99_ms: percentile_or_nan(&trending_ms, 0.99),
        not_seen,
        load_recalls_per_s,
        ingest_events_per_s,
        cores,
        ingest_events_per_s_per_core: ingest_events_per_s / cores as f64,
    })
}
