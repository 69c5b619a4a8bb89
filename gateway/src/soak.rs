//! `kan bench soak`: the gateway under sustained overload, on the `kan bench gateway` machinery
//! ([`crate::bench`]). It measures capacity (closed loop), then offers `overload` × capacity
//! open-loop for `duration` — one queue killed and one slowed past the deadline a third of the
//! way in — and reports what was admitted, shed and answered with candidates, the latency of
//! admitted requests, the process's RSS and open fds before and after, and how long the gateway
//! took to answer normally again once the load stopped.
//!
//! Clients, fake queues and the gateway share one process: RSS and fds are the whole process's
//! (the clients' sockets included), which is why the clients' in-flight requests are capped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kan_api::crd::CircuitBreakerSpec;
use serde::{Deserialize, Serialize};

use crate::bench::{BenchConfig, percentile, routing, run, serve_gateway, spawn_fakes};
use crate::testing::Behaviour;

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Queues, candidates, k, threads; `bench.duration` is the capacity measurement's length.
    /// At least three queues are used (one is killed, one slowed).
    pub bench: BenchConfig,
    /// Offered load as a multiple of the measured capacity.
    pub overload: f64,
    /// Length of the overload phase.
    pub duration: Duration,
    /// The gateway's request deadline.
    pub deadline_ms: i32,
    /// Client requests in flight at most (beyond it a request is counted as not sent), so the
    /// clients' own sockets stay within the process's fd limit.
    pub max_client_in_flight: usize,
    /// The gateway's admission bound (requests in flight); `None` serves without admission
    /// control, the "before" baseline.
    pub max_in_flight: Option<usize>,
}

/// What came out (latencies in ms, RSS in KiB).
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub capacity_rps: f64,
    pub offered_rps: f64,
    pub duration_s: f64,
    pub deadline_ms: i32,
    /// Requests sent during the overload phase.
    pub sent: u64,
    /// Requests not sent because the clients' in-flight cap was reached.
    pub not_sent: u64,
    /// Answered 200.
    pub admitted: u64,
    /// Answered 503 (shed by admission control).
    pub shed: u64,
    /// Answered 200 with at least one candidate.
    pub answered_with_candidates: u64,
    /// Any other status, or no answer (transport error, client timeout).
    pub errors: u64,
    /// Answered with candidates per second of the overload phase, and as a share of capacity.
    pub goodput_rps: f64,
    pub goodput_share_of_capacity: f64,
    pub admitted_p50_ms: f64,
    pub admitted_p99_ms: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub fds_before: Option<usize>,
    pub fds_after: Option<usize>,
    /// From the end of the overload to the first answer with candidates within the deadline
    /// (+20%); `None` if none came within 30 s.
    pub recovery_ms: Option<f64>,
}

/// One answer seen by a client.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// 0: no answer.
    status: u16,
    took_ms: f64,
    with_candidates: bool,
}

/// Just enough of a gateway answer to count its candidates.
#[derive(Deserialize)]
struct Candidates {
    candidates: Vec<serde::de::IgnoredAny>,
}

/// How long a client waits for an answer before counting it as an error.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long recovery and draining are waited for.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// Pacing of the open-loop sender.
const TICK: Duration = Duration::from_millis(1);

/// Runs the soak (inside a tokio runtime).
pub async fn soak(config: &SoakConfig) -> std::io::Result<SoakReport> {
    let capacity = run(&config.bench).await?.throughput_rps.max(1.0);
    let offered = capacity * config.overload.max(0.0);

    let bench = BenchConfig {
        queues: config.bench.queues.max(3),
        ..config.bench.clone()
    };
    let fakes = spawn_fakes(&bench).await?;
    let mut routing = routing(&bench, &fakes, config.deadline_ms.max(1));
    routing.circuit_breaker = Some(CircuitBreakerSpec {
        failure_threshold: 5,
        open_ms: 1000,
    });
    let (url, runtime) = serve_gateway(
        routing,
        bench.gateway_threads,
        Arc::new(AtomicU64::new(0)),
        config.max_in_flight,
    )?;
    let mut fakes: Vec<Option<crate::testing::FakeQueue>> = fakes.into_iter().map(Some).collect();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(CLIENT_TIMEOUT)
        .build()
        .map_err(std::io::Error::other)?;
    let body = format!(r#"{{"user_id":"soak","k":{}}}"#, bench.k);
    let deadline = Duration::from_millis(config.deadline_ms.max(1) as u64);

    // One normal request first, so connections and lazies exist before the "before" figures.
    let _ = send(&client, &url, &body).await;
    let (rss_before, fds_before) = (rss_kib(), open_fds());

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (mut sent, mut not_sent) = (0u64, 0u64);
    let mut trouble_started = false;
    let start = Instant::now();
    let end = start + config.duration;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while Instant::now() < end {
        tick.tick().await;
        let elapsed = start.elapsed();
        if !trouble_started && elapsed >= config.duration / 3 {
            trouble_started = true;
            // Kill one queue (its port refuses connections) and slow another past the deadline.
            fakes[0] = None;
            if let Some(slow) = &fakes[1] {
                slow.set_behaviour(Behaviour::after(deadline * 2));
            }
        }
        let due = (elapsed.as_secs_f64() * offered) as u64;
        while sent + not_sent < due {
            if in_flight.load(Ordering::Relaxed) >= config.max_client_in_flight {
                not_sent += 1;
                continue;
            }
            sent += 1;
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, url, body, tx, in_flight) = (
                client.clone(),
                url.clone(),
                body.clone(),
                tx.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                let sample = send(&client, &url, &body).await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(sample);
            });
        }
    }
    let load_ended = Instant::now();

    // Recovery: one request at a time until one is answered normally.
    let mut recovery_ms = None;
    while load_ended.elapsed() < SETTLE_LIMIT {
        let sample = send(&client, &url, &body).await;
        if sample.status == 200
            && sample.with_candidates
            && sample.took_ms <= deadline.as_secs_f64() * 1000.0 * 1.2
        {
            recovery_ms = Some(load_ended.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while in_flight.load(Ordering::Relaxed) > 0 && load_ended.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(tx);
    let mut samples = Vec::new();
    while let Ok(sample) = rx.try_recv() {
        samples.push(sample);
    }
    let (rss_after, fds_after) = (rss_kib(), open_fds());
    tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
        .await
        .map_err(std::io::Error::other)?;
    drop(fakes);

    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as u64;
    let admitted = count(&|s| s.status == 200);
    let shed = count(&|s| s.status == 503);
    let with_candidates = count(&|s| s.status == 200 && s.with_candidates);
    let mut admitted_ms: Vec<f64> = samples
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.took_ms)
        .collect();
    let seconds = config.duration.as_secs_f64().max(f64::EPSILON);
    let goodput = with_candidates as f64 / seconds;
    Ok(SoakReport {
        capacity_rps: capacity,
        offered_rps: offered,
        duration_s: config.duration.as_secs_f64(),
        deadline_ms: config.deadline_ms,
        sent,
        not_sent,
        admitted,
        shed,
        answered_with_candidates: with_candidates,
        errors: samples.len() as u64 - admitted - shed + (sent - samples.len() as u64),
        goodput_rps: goodput,
        goodput_share_of_capacity: goodput / capacity,
        admitted_p50_ms: percentile(&mut admitted_ms, 0.50),
        admitted_p99_ms: percentile(&mut admitted_ms, 0.99),
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        fds_before,
        fds_after,
        recovery_ms,
    })
}

async fn send(client: &reqwest::Client, url: &str, body: &str) -> Sample {
    let start = Instant::now();
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    let (status, bytes) = match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.bytes().await.ok())
        }
        Err(_) => (0, None),
    };
    let took_ms = start.elapsed().as_secs_f64() * 1000.0;
    let with_candidates = status == 200
        && bytes
            .and_then(|b| serde_json::from_slice::<Candidates>(&b).ok())
            .is_some_and(|c| !c.candidates.is_empty());
    Sample {
        status,
        took_ms,
        with_candidates,
    }
}

/// The process's resident set in KiB (Linux: `VmRSS` of /proc/self/status).
fn rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Open file descriptors of the process (Linux: entries of /proc/self/fd).
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::crd::MergePolicy;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_soak_reports_every_request_and_recovers() {
        let report = soak(&SoakConfig {
            bench: BenchConfig {
                queues: 3,
                candidates: 20,
                queue_latency: Duration::ZERO,
                concurrency: 2,
                duration: Duration::from_millis(300),
                warmup: Duration::from_millis(50),
                policy: MergePolicy::Rrf,
                k: 10,
                gateway_threads: 1,
                compact_answers: true,
            },
            overload: 2.0,
            duration: Duration::from_secs(2),
            deadline_ms: 200,
            max_client_in_flight: 256,
            max_in_flight: Some(kan_http::default_max_in_flight()),
        })
        .await
        .expect("soak");
        assert!(report.capacity_rps > 0.0);
        assert!(report.sent > 0, "{report:?}");
        assert_eq!(
            report.admitted + report.shed + report.errors,
            report.sent,
            "every request sent is counted once: {report:?}"
        );
        assert!(report.answered_with_candidates > 0, "{report:?}");
        assert!(report.recovery_ms.is_some(), "{report:?}");
        if cfg!(target_os = "linux") {
            assert!(report.rss_before_kib.is_some() && report.fds_after.is_some());
        }
    }
}
