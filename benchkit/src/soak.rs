//! `kan bench soak`: the gateway under sustained overload, on the `kan bench gateway` machinery
//! ([`crate::gateway`]). It measures the gateway's capacity (closed loop, which also warms it up),
//! then offers `overload` × capacity
//! open-loop for `duration` — one queue killed and one slowed past the deadline a third of the
//! way in — and reports what was admitted, shed and answered with candidates, the latency of
//! admitted requests, the process's RSS and open fds before and after, and how long the gateway
//! took to answer normally again once the load stopped.
//!
//! The gateway is either served in this process ([`GatewayUnderTest::InProcess`], for tests:
//! RSS and fds are then the whole process's, clients included) or started as a separate process
//! by a launcher ([`GatewayUnderTest::Process`], what `kan bench soak` does with `kan gateway`),
//! whose RSS and fds are then the gateway's own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kan_api::crd::CircuitBreakerSpec;
use kan_api::routing::RoutingConfig;
use serde::{Deserialize, Serialize};

use kan_testkit::fake_queue::{Behaviour, FakeQueue};

use crate::gateway::{BenchConfig, closed_loop, routing, serve_gateway, spawn_fakes};
use crate::percentile::percentile;

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
    /// Where and how the gateway runs.
    pub gateway: GatewayUnderTest,
    /// Light load (one request at a time, 50 a second) after the overload has drained, before
    /// RSS and fds are read again: a service returns to normal traffic, not to silence.
    pub settle: Duration,
}

/// Starts a gateway process serving a routing config.
pub type Launcher = Arc<dyn Fn(&RoutingConfig) -> std::io::Result<SpawnedGateway> + Send + Sync>;

/// The gateway under test.
#[derive(Clone)]
pub enum GatewayUnderTest {
    /// On its own runtime in this process, admission bounded by `max_in_flight` (`None`: no
    /// admission control, the "before" baseline).
    InProcess { max_in_flight: Option<usize> },
    /// A separate process started from the routing config by the launcher.
    Process(Launcher),
}

impl std::fmt::Debug for GatewayUnderTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess { max_in_flight } => f
                .debug_struct("InProcess")
                .field("max_in_flight", max_in_flight)
                .finish(),
            Self::Process(_) => f.write_str("Process"),
        }
    }
}

/// A gateway process a launcher started; killed when dropped.
pub struct SpawnedGateway {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    pub child: std::process::Child,
}

impl Drop for SpawnedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running gateway: its recall URL and what to measure and stop.
enum Served {
    InProcess(tokio::runtime::Runtime),
    Process(SpawnedGateway),
}

impl Served {
    /// The process whose RSS and fds are the gateway's (`None`: this one).
    fn pid(&self) -> Option<u32> {
        match self {
            Self::InProcess(_) => None,
            Self::Process(p) => Some(p.child.id()),
        }
    }

    async fn stop(self) -> std::io::Result<()> {
        match self {
            Self::InProcess(runtime) => tokio::task::spawn_blocking(move || {
                runtime.shutdown_timeout(Duration::from_secs(5))
            })
            .await
            .map_err(std::io::Error::other),
            Self::Process(process) => {
                drop(process);
                Ok(())
            }
        }
    }
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
    /// Any other status, or no answer (transport error, client timeout, not answered before the
    /// drain limit).
    pub errors: u64,
    /// `errors` by kind: `connect`, `timeout`, `transport`, `unfinished`, `status NNN`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Answers with a 5xx status other than 503 (shedding): the target is zero.
    pub server_errors_other_than_shedding: u64,
    /// Answered with candidates per second of the overload phase, and as a share of capacity.
    pub goodput_rps: f64,
    pub goodput_share_of_capacity: f64,
    pub admitted_p50_ms: f64,
    pub admitted_p99_ms: f64,
    /// Whose RSS and fds these are: `gateway process` or `whole process` (in-process gateway).
    pub measured: &'static str,
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
    outcome: Outcome,
    took_ms: f64,
    with_candidates: bool,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    /// The connection could not be made (refused, or closed at accept by the connection cap).
    Connect,
    /// No answer within the client's timeout.
    Timeout,
    /// Any other transport failure (reset, closed mid-answer).
    Transport,
}

impl Outcome {
    fn is(self, status: u16) -> bool {
        self == Self::Status(status)
    }

    /// The error kind this outcome counts as; `None` for 200 and 503.
    fn error_kind(self) -> Option<String> {
        match self {
            Self::Status(200 | 503) => None,
            Self::Status(s) => Some(format!("status {s}")),
            Self::Connect => Some("connect".into()),
            Self::Timeout => Some("timeout".into()),
            Self::Transport => Some("transport".into()),
        }
    }
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
/// Idle client connections are closed after this.
const CLIENT_IDLE: Duration = Duration::from_secs(1);
/// Pacing of the open-loop sender.
const TICK: Duration = Duration::from_millis(1);

/// Runs the soak (inside a tokio runtime).
pub async fn soak(config: &SoakConfig) -> std::io::Result<SoakReport> {
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
    let (url, served) = match &config.gateway {
        GatewayUnderTest::InProcess { max_in_flight } => {
            let (url, runtime) = serve_gateway(
                routing,
                bench.gateway_threads,
                Arc::new(AtomicU64::new(0)),
                *max_in_flight,
            )?;
            (url, Served::InProcess(runtime))
        }
        GatewayUnderTest::Process(launch) => {
            let process = launch(&routing)?;
            wait_ready(&process.base_url).await?;
            (
                format!("{}/v1/recall", process.base_url),
                Served::Process(process),
            )
        }
    };
    let pid = served.pid();
    let mut fakes: Vec<Option<FakeQueue>> = fakes.into_iter().map(Some).collect();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(CLIENT_TIMEOUT)
        .pool_idle_timeout(CLIENT_IDLE)
        .build()
        .map_err(std::io::Error::other)?;
    let body = format!(r#"{{"user_id":"soak","k":{}}}"#, bench.k);
    let deadline = Duration::from_millis(config.deadline_ms.max(1) as u64);

    // Capacity, closed loop on the gateway about to be soaked: it also warms it up, so the
    // "before" figures are those of a gateway that has served at full speed.
    let capacity = closed_loop(&url, &bench)
        .await?
        .throughput_rps(&bench)
        .max(1.0);
    let offered = capacity * config.overload.max(0.0);
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));

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
        if sample.outcome.is(200)
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
    // Back to light load for `settle` (one request at a time, 50 a second), as a service
    // returns to normal traffic rather than to silence: idle client connections close after
    // CLIENT_IDLE, and the gateway's periodic work (metrics upkeep, pool expiry) runs.
    let settle_until = Instant::now() + config.settle;
    while Instant::now() < settle_until {
        let _ = send(&client, &url, &body).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (rss_after, fds_after) = (rss_kib(pid), open_fds(pid));
    served.stop().await?;
    drop(fakes);

    let count = |f: &dyn Fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count() as u64;
    let admitted = count(&|s| s.outcome.is(200));
    let shed = count(&|s| s.outcome.is(503));
    let with_candidates = count(&|s| s.outcome.is(200) && s.with_candidates);
    let mut errors_by_kind = BTreeMap::new();
    for kind in samples.iter().filter_map(|s| s.outcome.error_kind()) {
        *errors_by_kind.entry(kind).or_insert(0u64) += 1;
    }
    let unfinished = sent - samples.len() as u64;
    if unfinished > 0 {
        errors_by_kind.insert("unfinished".into(), unfinished);
    }
    let server_errors_other_than_shedding =
        count(&|s| matches!(s.outcome, Outcome::Status(code) if code >= 500 && code != 503));
    let mut admitted_ms: Vec<f64> = samples
        .iter()
        .filter(|s| s.outcome.is(200))
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
        errors: errors_by_kind.values().sum(),
        errors_by_kind,
        server_errors_other_than_shedding,
        goodput_rps: goodput,
        goodput_share_of_capacity: goodput / capacity,
        admitted_p50_ms: percentile(&mut admitted_ms, 0.50),
        admitted_p99_ms: percentile(&mut admitted_ms, 0.99),
        measured: if pid.is_some() {
            "gateway process"
        } else {
            "whole process"
        },
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
    let (outcome, bytes) = match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(bytes) => (Outcome::Status(status), Some(bytes)),
                Err(e) => (transport_outcome(&e), None),
            }
        }
        Err(e) => (transport_outcome(&e), None),
    };
    let took_ms = start.elapsed().as_secs_f64() * 1000.0;
    let with_candidates = outcome.is(200)
        && bytes
            .and_then(|b| serde_json::from_slice::<Candidates>(&b).ok())
            .is_some_and(|c| !c.candidates.is_empty());
    Sample {
        outcome,
        took_ms,
        with_candidates,
    }
}

fn transport_outcome(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::Connect
    } else {
        Outcome::Transport
    }
}

/// Waits until a launched gateway answers `/readyz` 200.
async fn wait_ready(base_url: &str) -> std::io::Result<()> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("{base_url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(std::io::Error::other(format!(
                "the gateway at {base_url} was not ready within {SETTLE_LIMIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// /proc entry of `pid`, or of this process.
fn proc_path(pid: Option<u32>, entry: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{entry}"),
        None => format!("/proc/self/{entry}"),
    }
}

/// A process's resident set in KiB (Linux: `VmRSS` of /proc/PID/status).
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    std::fs::read_to_string(proc_path(pid, "status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A process's open file descriptors (Linux: entries of /proc/PID/fd).
fn open_fds(pid: Option<u32>) -> Option<usize> {
    std::fs::read_dir(proc_path(pid, "fd"))
        .ok()
        .map(Iterator::count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::crd::MergePolicy;

    #[test]
    fn only_answers_other_than_200_and_503_are_errors_each_named_by_kind() {
        assert_eq!(Outcome::Status(200).error_kind(), None);
        assert_eq!(Outcome::Status(503).error_kind(), None);
        assert_eq!(
            Outcome::Status(502).error_kind().as_deref(),
            Some("status 502")
        );
        assert_eq!(Outcome::Connect.error_kind().as_deref(), Some("connect"));
        assert_eq!(Outcome::Timeout.error_kind().as_deref(), Some("timeout"));
        assert_eq!(
            Outcome::Transport.error_kind().as_deref(),
            Some("transport")
        );
    }

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
            gateway: GatewayUnderTest::InProcess {
                max_in_flight: Some(kan_http::default_max_in_flight()),
            },
            settle: Duration::from_millis(100),
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
        assert_eq!(report.server_errors_other_than_shedding, 0, "{report:?}");
        assert_eq!(report.measured, "whole process");
        assert!(report.recovery_ms.is_some(), "{report:?}");
        if cfg!(target_os = "linux") {
            assert!(report.rss_before_kib.is_some() && report.fds_after.is_some());
        }
    }
}
