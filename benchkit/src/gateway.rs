//! Load generator for `kan bench gateway`: a gateway in front of in-process fake queues, driven
//! over HTTP by concurrent clients. Reports throughput, latency and the gateway's own overhead
//! (gateway latency seen by the client − the slowest queue's latency seen by the gateway).
//!
//! The gateway runs on its own runtime threads, whose CPU time is summed when they stop, so the
//! report also gives the gateway's CPU cost per request — a figure that, unlike latency, barely
//! moves when other work shares the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kan_api::crd::{MergePolicy, MergeSpec, QueueRoute};
use kan_api::routing::RoutingConfig;
use kan_api::wire::GatewayResponse;
use kan_gateway::Gateway;
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use serde::Serialize;

use crate::percentile::percentile;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub queues: usize,
    pub candidates: usize,
    /// Latency of every fake queue.
    pub queue_latency: Duration,
    /// Concurrent clients, each with one request in flight.
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub policy: MergePolicy,
    /// Candidates asked of the gateway.
    pub k: u32,
    /// Worker threads of the gateway's own runtime (clients and fake queues run elsewhere).
    pub gateway_threads: usize,
    /// Whether the fake queues answer in the compact layout the gateway asks for (false: JSON,
    /// like workers that predate it).
    pub compact_answers: bool,
}

/// What came out (latencies in ms).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub requests: usize,
    pub errors: usize,
    pub throughput_rps: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub slowest_queue_p50_ms: f64,
    pub overhead_p50_ms: f64,
    pub overhead_p99_ms: f64,
    /// The gateway's own view: its pipeline time − the slowest queue (no client-side HTTP).
    pub internal_overhead_p50_ms: f64,
    pub internal_overhead_p99_ms: f64,
    pub mean_returned: f64,
    /// CPU time of the gateway's threads per request served (warm-up included in both), and
    /// the requests per second one core could serve at that cost. None off Linux.
    pub gateway_cpu_ms_per_request: Option<f64>,
    pub gateway_requests_per_core_s: Option<f64>,
}

/// Runs the benchmark (inside a tokio runtime).
pub async fn run(config: &BenchConfig) -> std::io::Result<BenchReport> {
    let fakes = spawn_fakes(config).await?;
    let routing = routing(config, &fakes, 1000);
    let gateway_cpu_ns = Arc::new(AtomicU64::new(0));
    // Closed loop: the clients' concurrency bounds what is in flight, admission would never act.
    let (url, runtime) = serve_gateway(
        routing,
        config.gateway_threads,
        gateway_cpu_ns.clone(),
        None,
    )?;

    let ClosedLoop {
        samples,
        errors,
        sent,
    } = closed_loop(&url, config).await?;
    // Stopping the runtime joins its threads, which add their CPU time as they stop.
    tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
        .await
        .map_err(std::io::Error::other)?;
    drop(fakes);
    let cpu_ms_per_request = thread_cpu_ns()
        .filter(|_| sent > 0)
        .map(|_| gateway_cpu_ns.load(Ordering::Relaxed) as f64 / 1e6 / sent as f64);

    let mut latency: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut slowest: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let mut overhead: Vec<f64> = samples.iter().map(|s| (s.0 - s.1).max(0.0)).collect();
    let mut internal: Vec<f64> = samples.iter().map(|s| (s.3 - s.1).max(0.0)).collect();
    let returned: usize = samples.iter().map(|s| s.2).sum();
    Ok(BenchReport {
        requests: samples.len(),
        errors,
        throughput_rps: samples.len() as f64 / config.duration.as_secs_f64().max(f64::EPSILON),
        latency_p50_ms: percentile(&mut latency, 0.50),
        latency_p99_ms: percentile(&mut latency, 0.99),
        slowest_queue_p50_ms: percentile(&mut slowest, 0.50),
        overhead_p50_ms: percentile(&mut overhead, 0.50),
        overhead_p99_ms: percentile(&mut overhead, 0.99),
        internal_overhead_p50_ms: percentile(&mut internal, 0.50),
        internal_overhead_p99_ms: percentile(&mut internal, 0.99),
        mean_returned: if samples.is_empty() {
            0.0
        } else {
            returned as f64 / samples.len() as f64
        },
        gateway_cpu_ms_per_request: cpu_ms_per_request,
        gateway_requests_per_core_s: cpu_ms_per_request
            .filter(|&ms| ms > 0.0)
            .map(|ms| 1000.0 / ms),
    })
}

/// What the closed-loop clients saw after warm-up: per answer (latency, slowest queue's
/// latency, candidates returned, the gateway's own time), all in ms.
pub(crate) struct ClosedLoop {
    pub samples: Vec<(f64, f64, usize, f64)>,
    /// Failed or degraded answers after warm-up.
    pub errors: usize,
    /// Requests sent, warm-up included.
    pub sent: u64,
}

impl ClosedLoop {
    /// Answers per second of the measured (post-warm-up) phase.
    pub fn throughput_rps(&self, config: &BenchConfig) -> f64 {
        self.samples.len() as f64 / config.duration.as_secs_f64().max(f64::EPSILON)
    }
}

/// `config.concurrency` clients, each with one request in flight, against the gateway at
/// `url` for `config.warmup` + `config.duration`.
pub(crate) async fn closed_loop(url: &str, config: &BenchConfig) -> std::io::Result<ClosedLoop> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(std::io::Error::other)?;
    let warm_until = Instant::now() + config.warmup;
    let end = warm_until + config.duration;
    let mut clients = Vec::with_capacity(config.concurrency);
    for c in 0..config.concurrency {
        let (client, url, k) = (client.clone(), url.to_string(), config.k);
        clients.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0usize;
            let mut n = 0u64;
            // `n` counts warm-up requests too: the gateway's CPU time covers them.
            while Instant::now() < end {
                n += 1;
                let body = format!(r#"{{"user_id":"u{c}-{n}","k":{k}}}"#);
                let start = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let body = match answer {
                    Ok(r) if r.status().is_success() => r.bytes().await.ok(),
                    _ => None,
                };
                // Latency ends when the caller holds the whole answer; decoding it is the
                // caller's own work.
                let took = start.elapsed().as_secs_f64() * 1000.0;
                let parsed = body.and_then(|b| serde_json::from_slice::<GatewayResponse>(&b).ok());
                if start < warm_until {
                    continue;
                }
                match parsed {
                    Some(response) if !response.degraded => {
                        let slowest = response
                            .queues
                            .iter()
                            .map(|q| q.took_ms)
                            .fold(0.0, f64::max);
                        samples.push((took, slowest, response.candidates.len(), response.took_ms));
                    }
                    _ => errors += 1,
                }
            }
            (samples, errors, n)
        }));
    }
    let mut out = ClosedLoop {
        samples: Vec::new(),
        errors: 0,
        sent: 0,
    };
    for c in clients {
        let (s, e, n) = c.await.map_err(std::io::Error::other)?;
        out.samples.extend(s);
        out.errors += e;
        out.sent += n;
    }
    Ok(out)
}

/// The fake queues: `q0…`, each with `candidates` items overlapping the next queue's by half.
pub(crate) async fn spawn_fakes(config: &BenchConfig) -> std::io::Result<Vec<FakeQueue>> {
    let mut fakes = Vec::with_capacity(config.queues);
    for q in 0..config.queues {
        // Queues overlap by half, as recall queues do, so dedupe has work to do.
        let items = FakeQueue::items("i", q * config.candidates / 2, config.candidates);
        let fake = FakeQueue::spawn(
            &format!("q{q}"),
            items,
            Behaviour::after(config.queue_latency),
        )
        .await?;
        fake.set_speaks_compact(config.compact_answers);
        fakes.push(fake);
    }
    Ok(fakes)
}

/// A routing config over `fakes` with the benchmark's merge policy.
pub(crate) fn routing(
    config: &BenchConfig,
    fakes: &[FakeQueue],
    deadline_ms: i32,
) -> RoutingConfig {
    RoutingConfig {
        gateway: "bench".into(),
        endpoints: fakes
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("q{i}"), f.url().to_string()))
            .collect(),
        queues: (0..fakes.len())
            .map(|i| QueueRoute::named(format!("q{i}")))
            .collect(),
        merge: MergeSpec {
            policy: config.policy,
            ..MergeSpec::default()
        },
        filters: Default::default(),
        fallback: None,
        deadline_ms,
        circuit_breaker: None,
        exposure_log: None,
        experiments: Vec::new(),
    }
}

/// Serves a gateway over `routing` on its own runtime of `threads` threads (whose CPU time
/// adds up in `cpu_ns` as they stop); returns its `/v1/recall` URL and the runtime.
pub(crate) fn serve_gateway(
    routing: RoutingConfig,
    threads: usize,
    cpu_ns: Arc<AtomicU64>,
    max_in_flight: Option<usize>,
) -> std::io::Result<(String, tokio::runtime::Runtime)> {
    let gateway = Gateway::new(routing).map_err(std::io::Error::other)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}/v1/recall", listener.local_addr()?);
    // Served as `kan gateway` serves it: the same listener and, when bounded, admission control.
    // `None` lifts the bound (the "before" baseline); `router` would apply the default one.
    let bound = max_in_flight.unwrap_or(tokio::sync::Semaphore::MAX_PERMITS);
    let router = gateway.router_with_admission(None, kan_http::Admission::new(bound, "gateway"));
    let runtime = gateway_runtime(threads, cpu_ns)?;
    runtime.spawn(async move {
        if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
            let limits = kan_http::ListenerLimits::named("gateway");
            let _ = kan_http::serve(listener, router, limits, std::future::pending()).await;
        }
    });
    Ok((url, runtime))
}

/// A runtime for the gateway alone whose threads add their CPU time to `cpu_ns` as they stop.
fn gateway_runtime(
    threads: usize,
    cpu_ns: Arc<AtomicU64>,
) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("gateway-bench")
        .on_thread_stop(move || {
            if let Some(ns) = thread_cpu_ns() {
                cpu_ns.fetch_add(ns, Ordering::Relaxed);
            }
        })
        .enable_all()
        .build()
}

/// CPU time the calling thread has run, in ns (Linux: first field of /proc/thread-self/schedstat).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_run_serves_requests_without_errors_with_either_answer_format() {
        for compact_answers in [true, false] {
            let report = run(&BenchConfig {
                queues: 2,
                candidates: 20,
                queue_latency: Duration::ZERO,
                concurrency: 2,
                duration: Duration::from_millis(200),
                warmup: Duration::from_millis(50),
                policy: MergePolicy::Rrf,
                k: 10,
                gateway_threads: 1,
                compact_answers,
            })
            .await
            .expect("bench");
            assert!(report.requests > 0);
            assert_eq!(report.errors, 0, "compact answers: {compact_answers}");
            assert_eq!(report.mean_returned, 10.0);
            check_cpu(&report);
        }
    }

    fn check_cpu(report: &BenchReport) {
        if cfg!(target_os = "linux") {
            let cpu = report
                .gateway_cpu_ms_per_request
                .expect("thread CPU time on Linux");
            assert!(cpu > 0.0, "the gateway's threads did work: {cpu}");
        }
    }
}
