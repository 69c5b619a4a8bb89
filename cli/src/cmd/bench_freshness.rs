//! `kan bench freshness`: how long an engagement takes to reach recall, and how many events per
//! second ingestion takes, with the store on loopback.
//!
//! In one process: a social queue and a trending popular queue (synthetic bundles) reading the
//! store, a gateway in front of them serving `POST /v1/events`, and clients keeping recall load
//! on the gateway. For each of `--events` rounds, a user's followee clicks a fresh item (in a
//! segment of its own, so it tops that segment's trending list at once), and the gateway is
//! polled until the item comes back from the social queue and from the trending queue; the
//! time from sending the event to each is recorded. Then `--ingest-seconds` of batches of 100
//! events measure ingestion throughput.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use kan_api::bundle::files;
use kan_api::crd::{QueueRoute, StrategyType};
use kan_api::routing::RoutingConfig;
use kan_api::worker_config::WorkerConfig;
use kan_gateway::Gateway;
use kan_signals::SignalStore;
use kan_worker::synthetic::{BundleWriter, TensorData, offsets};
use kan_worker::{Worker, WorkerOptions};
use serde::Serialize;
use serde_json::{Value, json};

/// Measure event-to-recall freshness and ingestion throughput (store on loopback).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Engagements whose freshness is measured.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// Redis to use (`redis://127.0.0.1:PORT`); without it a `redis-server` is started on a
    /// free loopback port (appendonly, appendfsync always) and stopped at the end.
    #[arg(long)]
    pub redis: Option<String>,
    /// Use the in-process store instead of Redis.
    #[arg(long)]
    pub in_process: bool,
    /// Clients sending recall requests to the gateway meanwhile (one in flight each).
    #[arg(long, default_value_t = 4)]
    pub load_concurrency: usize,
    /// Seconds of the ingestion throughput phase.
    #[arg(long, default_value_t = 5)]
    pub ingest_seconds: u64,
    /// Concurrent ingesting clients (batches of 100 events).
    #[arg(long, default_value_t = 8)]
    pub ingest_concurrency: usize,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

#[derive(Serialize)]
struct Report {
    build: &'static str,
    store: &'static str,
    events: usize,
    social_p50_ms: f64,
    social_p99_ms: f64,
    trending_p50_ms: f64,
    trending_p99_ms: f64,
    /// Rounds where the item did not show within 5 s (counted, not in the percentiles).
    not_seen: usize,
    /// Recall requests per second the load clients got answered during the rounds.
    load_recalls_per_s: f64,
    ingest_events_per_s: f64,
    cores: usize,
    ingest_events_per_s_per_core: f64,
}

const ITEMS: usize = 5000;
const SEEN_WITHIN: Duration = Duration::from_secs(5);

pub fn run(args: Args) -> anyhow::Result<()> {
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(bench(args))
        .context("running the freshness benchmark")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A social bundle (no bundle friends: every tie comes from the store) and a popular one.
fn write_bundles(dir: &Path, users: usize) -> anyhow::Result<()> {
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

async fn serve(router: axum::Router, name: &str) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let url = format!("http://{}", listener.local_addr()?);
    let limits = kan_http::ListenerLimits::named(name);
    tokio::spawn(kan_http::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    Ok(url)
}

async fn start_queue(
    name: &str,
    spec: Value,
    store: Arc<dyn SignalStore>,
) -> anyhow::Result<String> {
    let config: WorkerConfig = serde_json::from_value(json!({"name": name, "spec": spec}))?;
    let options = WorkerOptions {
        signals: Some(store),
        ..WorkerOptions::default()
    };
    let worker = Worker::load(config, options).await?;
    serve(worker.router(None), name).await
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Value> {
    let response = client.post(url).json(body).send().await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{url}: {status} {body}");
    Ok(body)
}

async fn bench(args: Args) -> anyhow::Result<Report> {
    let mut _server = None;
    let (store, store_name): (Arc<dyn SignalStore>, &'static str) = if args.in_process {
        (Arc::new(kan_signals::MemoryStore::new()), "in-process")
    } else {
        let url = match &args.redis {
            Some(url) => url.clone(),
            None => {
                let server = kan_signals::testing::RedisServer::start()
                    .context("redis-server is not installed: run scripts/install-redis.sh, or pass --redis or --in-process")?;
                let url = server.url();
                _server = Some(server);
                url
            }
        };
        let store = kan_signals::RedisStore::new(kan_signals::RedisOptions::new(url))?;
        (Arc::new(store), "redis (loopback, appendfsync always)")
    };

    let n = args.events.max(1);
    let dir = tempfile::tempdir()?;
    write_bundles(dir.path(), 2 * n + 16)?;
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
    let config = RoutingConfig {
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
    let gateway = Gateway::new(config)?;
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
    let load: Vec<_> = (0..args.load_concurrency)
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
    let deadline = Instant::now() + Duration::from_secs(args.ingest_seconds.max(1));
    let started = Instant::now();
    let clients: Vec<_> = (0..args.ingest_concurrency.max(1))
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
    Ok(Report {
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        store: store_name,
        events: n,
        social_p50_ms: percentile(&social_ms, 50.0),
        social_p99_ms: percentile(&social_ms, 99.0),
        trending_p50_ms: percentile(&trending_ms, 50.0),
        trending_p99_ms: percentile(&trending_ms, 99.0),
        not_seen,
        load_recalls_per_s,
        ingest_events_per_s,
        cores,
        ingest_events_per_s_per_core: ingest_events_per_s / cores as f64,
    })
}
