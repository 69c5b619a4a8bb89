//! `kan bench platform`: the whole platform — a gateway and its workers, `kan up` on a
//! directory, run as a separate process — under a load generator in this process. It measures
//! the platform's capacity (closed loop), the CPU time the platform's process spends per request
//! (the figure that shows what a change to a kernel is worth, and that barely moves when other
//! work shares the machine), and open-loop latency at shares of that capacity, so each change is
//! a ratio against the last run on the same machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::percentile::percentile;

/// What to run.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Users the requests go to, in turn (an empty list asks for user `"1"`).
    pub users: Vec<String>,
    /// Candidates asked of the gateway.
    pub k: u32,
    /// Clients of the capacity measurement, one request in flight each.
    pub concurrency: usize,
    /// Closed-loop load before anything is measured (bundles paged in, pools warm).
    pub warmup: Duration,
    /// Length of the capacity measurement.
    pub capacity: Duration,
    /// Shares of the capacity offered open-loop, one step each.
    pub shares: Vec<f64>,
    /// Length of each open-loop step.
    pub step: Duration,
    /// Open-loop requests in flight at most; beyond it a request is counted as not sent.
    pub max_client_in_flight: usize,
}

/// What came out (latencies in ms).
#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    /// Answers per second of the closed loop (200 with candidates, not degraded).
    pub capacity_rps: f64,
    pub capacity_requests: u64,
    /// Answers of the closed loop that were not a full 200 (any other status, no answer,
    /// `degraded`, or no candidates).
    pub capacity_errors: u64,
    pub capacity_p50_ms: f64,
    pub capacity_p99_ms: f64,
    pub mean_candidates: f64,
    /// CPU time of the platform's process per request of the closed loop; `None` when it
    /// cannot be read (not Linux).
    pub cpu_ms_per_request: Option<f64>,
    /// The same for this process (the load generator), which shares the machine.
    pub load_generator_cpu_ms_per_request: Option<f64>,
    pub steps: Vec<StepReport>,
}

/// One open-loop step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub share_of_capacity: f64,
    pub offered_rps: f64,
    pub sent: u64,
    /// Requests not sent because the clients' in-flight cap was reached.
    pub not_sent: u64,
    /// Answered 200 with candidates and not degraded.
    pub answered: u64,
    /// Sent but not answered so (any other status, no answer, degraded, no candidates).
    pub errors: u64,
    /// Latency of the answered requests.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time of the platform's process per request sent in this step.
    pub cpu_ms_per_request: Option<f64>,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    took_ms: f64,
    /// 200, not degraded, with candidates.
    full: bool,
    candidates: usize,
}

/// Just enough of a gateway answer to judge it.
#[derive(Deserialize)]
struct Answer {
    candidates: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    degraded: bool,
}

/// How long a client waits for an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pacing of the open-loop sender.
const TICK: Duration = Duration::from_millis(1);

/// A process's CPU time so far (user + system, all threads) in ms; Linux only.
pub type CpuClock = Arc<dyn Fn() -> Option<f64> + Send + Sync>;

/// Runs the benchmark against the gateway's `/v1/recall` at `url`; `platform_cpu` reads the
/// platform process's CPU time (see [`process_cpu_ms`]).
pub async fn run(
    url: &str,
    platform_cpu: CpuClock,
    config: &PlatformConfig,
) -> std::io::Result<PlatformReport> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(CLIENT_TIMEOUT)
        .build()
        .map_err(std::io::Error::other)?;
    let bodies = Arc::new(bodies(&config.users, config.k));
    let own_cpu = || process_cpu_ms(None);

    closed_loop(&client, url, &bodies, config.concurrency, config.warmup).await;
    let (platform_start, own_start) = (platform_cpu(), own_cpu());
    let capacity = closed_loop(&client, url, &bodies, config.concurrency, config.capacity).await;
    let (platform_end, own_end) = (platform_cpu(), own_cpu());
    let requests = capacity.len() as u64;
    let per_request = |start: Option<f64>, end: Option<f64>, n: u64| {
        Some((end? - start?) / n as f64).filter(|_| n > 0)
    };
    let full: Vec<&Sample> = capacity.iter().filter(|s| s.full).collect();
    let capacity_rps = full.len() as f64 / config.capacity.as_secs_f64().max(f64::EPSILON);
    let mut latencies: Vec<f64> = capacity.iter().map(|s| s.took_ms).collect();
    let candidates: usize = full.iter().map(|s| s.candidates).sum();

    let mut steps = Vec::with_capacity(config.shares.len());
    for &share in &config.shares {
        let offered = capacity_rps * share.max(0.0);
        let cpu_start = platform_cpu();
        let step = open_loop(
            &client,
            url,
            &bodies,
            offered,
            config.step,
            config.max_client_in_flight,
        )
        .await;
        let cpu_end = platform_cpu();
        let mut answered: Vec<f64> = step
            .samples
            .iter()
            .filter(|s| s.full)
            .map(|s| s.took_ms)
            .collect();
        steps.push(StepReport {
            share_of_capacity: share,
            offered_rps: offered,
            sent: step.sent,
            not_sent: step.not_sent,
            answered: answered.len() as u64,
            errors: step.sent - answered.len() as u64,
            p50_ms: percentile(&mut answered, 0.50),
            p99_ms: percentile(&mut answered, 0.99),
            cpu_ms_per_request: per_request(cpu_start, cpu_end, step.sent),
        });
    }
    Ok(PlatformReport {
        capacity_rps,
        capacity_requests: requests,
        capacity_errors: requests - full.len() as u64,
        capacity_p50_ms: percentile(&mut latencies, 0.50),
        capacity_p99_ms: percentile(&mut latencies, 0.99),
        mean_candidates: if full.is_empty() {
            0.0
        } else {
            candidates as f64 / full.len() as f64
        },
        cpu_ms_per_request: per_request(platform_start, platform_end, requests),
        load_generator_cpu_ms_per_request: per_request(own_start, own_end, requests),
        steps,
    })
}

/// One request body per user, encoded once.
fn bodies(users: &[String], k: u32) -> Vec<String> {
    let users = if users.is_empty() {
        &["1".to_string()][..]
    } else {
        users
    };
    users
        .iter()
        .map(|user| serde_json::json!({"user_id": user, "k": k}).to_string())
        .collect()
}

/// `concurrency` clients, one request in flight each, for `length`; every answer's sample.
async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<String>>,
    concurrency: usize,
    length: Duration,
) -> Vec<Sample> {
    let until = Instant::now() + length;
    let clients: Vec<_> = (0..concurrency.max(1))
        .map(|c| {
            let (client, url, bodies) = (client.clone(), url.to_string(), bodies.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                // Clients start at different users so they do not ask for the same one at once.
                let mut next = c * bodies.len() / concurrency.max(1);
                while Instant::now() < until {
                    samples.push(send(&client, &url, &bodies[next % bodies.len()]).await);
                    next += 1;
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for c in clients {
        if let Ok(s) = c.await {
            samples.extend(s);
        }
    }
    samples
}

/// What an open-loop step saw.
struct OpenLoop {
    samples: Vec<Sample>,
    sent: u64,
    not_sent: u64,
}

/// `rate` requests a second for `length`, each sent on time whatever the answers do, then
/// waits for the answers still out.
async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<String>>,
    rate: f64,
    length: Duration,
    max_in_flight: usize,
) -> OpenLoop {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (mut sent, mut not_sent) = (0u64, 0u64);
    let start = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while start.elapsed() < length {
        tick.tick().await;
        let due = due(start.elapsed(), rate);
        while sent + not_sent < due {
            if in_flight.load(Ordering::Relaxed) >= max_in_flight {
                not_sent += 1;
                continue;
            }
            let body = bodies[(sent as usize) % bodies.len()].clone();
            sent += 1;
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, url, tx, in_flight) = (
                client.clone(),
                url.to_string(),
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
    drop(tx);
    let mut samples = Vec::with_capacity(sent as usize);
    // Every request ends within the client timeout, so this ends too.
    while let Some(sample) = rx.recv().await {
        samples.push(sample);
    }
    OpenLoop {
        samples,
        sent,
        not_sent,
    }
}

/// Requests due after `elapsed` at `rate` a second.
fn due(elapsed: Duration, rate: f64) -> u64 {
    (elapsed.as_secs_f64() * rate.max(0.0)) as u64
}

async fn send(client: &reqwest::Client, url: &str, body: &str) -> Sample {
    let start = Instant::now();
    let answer = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    let bytes = match answer {
        Ok(r) if r.status().is_success() => r.bytes().await.ok(),
        _ => None,
    };
    let took_ms = start.elapsed().as_secs_f64() * 1000.0;
    let answer = bytes.and_then(|b| serde_json::from_slice::<Answer>(&b).ok());
    let candidates = answer.as_ref().map_or(0, |a| a.candidates.len());
    Sample {
        took_ms,
        full: answer.is_some_and(|a| !a.degraded && !a.candidates.is_empty()),
        candidates,
    }
}

/// CPU time (user + system, every thread, live or ended) of process `pid`, or of this one, in
/// ms (Linux: fields 14 and 15 of /proc/PID/stat, in clock ticks of 10 ms — `USER_HZ` is 100
/// on every Linux architecture Kan builds for).
pub fn process_cpu_ms(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    cpu_ms_of_stat(&std::fs::read_to_string(path).ok()?)
}

/// The CPU time in a /proc/PID/stat line, in ms. The command name (field 2) is in parentheses
/// and may hold spaces, so fields are counted after its closing parenthesis.
fn cpu_ms_of_stat(stat: &str) -> Option<f64> {
    const TICK_MS: f64 = 10.0;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 * TICK_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_testkit::fake_queue::{Behaviour, FakeQueue};

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (kan (up) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_ms_of_stat(stat), Some(3000.0));
        assert_eq!(cpu_ms_of_stat("garbage"), None);
        if cfg!(target_os = "linux") {
            assert!(process_cpu_ms(None).is_some());
        }
    }

    #[test]
    fn an_open_loop_step_sends_at_the_rate_it_is_given_whatever_the_answers() {
        assert_eq!(due(Duration::from_millis(500), 100.0), 50);
        assert_eq!(due(Duration::from_secs(2), 0.0), 0);
        assert_eq!(due(Duration::from_secs(2), -5.0), 0);
    }

    #[test]
    fn each_user_gets_its_own_body_and_no_users_means_user_one() {
        let parsed = |users: &[String], k| -> Vec<serde_json::Value> {
            bodies(users, k)
                .iter()
                .map(|b| serde_json::from_str(b).expect("JSON body"))
                .collect()
        };
        assert_eq!(
            parsed(&["7".into(), "8\"".into()], 5),
            [
                serde_json::json!({"user_id": "7", "k": 5}),
                serde_json::json!({"user_id": "8\"", "k": 5})
            ]
        );
        assert_eq!(
            parsed(&[], 3),
            [serde_json::json!({"user_id": "1", "k": 3})]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_run_measures_capacity_and_every_step_against_a_gateway() {
        let items = FakeQueue::items("i", 0, 20);
        let queue = FakeQueue::spawn("q0", items, Behaviour::after(Duration::ZERO))
            .await
            .expect("fake queue");
        let routing = kan_api::routing::RoutingConfig {
            gateway: "bench".into(),
            endpoints: [("q0".to_string(), queue.url().to_string())].into(),
            queues: vec![kan_api::crd::QueueRoute::named("q0")],
            merge: Default::default(),
            filters: Default::default(),
            fallback: None,
            deadline_ms: 1000,
            circuit_breaker: None,
            exposure_log: None,
            experiments: Vec::new(),
        };
        let (url, runtime) = crate::gateway::serve_gateway(
            routing,
            1,
            Arc::new(std::sync::atomic::AtomicU64::new(0)),
            None,
        )
        .expect("gateway");
        let report = run(
            &url,
            Arc::new(|| process_cpu_ms(None)),
            &PlatformConfig {
                users: vec!["1".into(), "2".into()],
                k: 10,
                concurrency: 2,
                warmup: Duration::from_millis(50),
                capacity: Duration::from_millis(300),
                shares: vec![0.25, 0.5],
                step: Duration::from_millis(300),
                max_client_in_flight: 64,
            },
        )
        .await
        .expect("bench");
        tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
            .await
            .expect("stop");
        assert!(report.capacity_rps > 0.0, "{report:?}");
        assert_eq!(report.capacity_errors, 0, "{report:?}");
        assert_eq!(report.mean_candidates, 10.0, "{report:?}");
        assert_eq!(report.steps.len(), 2);
        for step in &report.steps {
            assert_eq!(step.answered + step.errors, step.sent, "{step:?}");
            assert!(step.sent > 0, "{step:?}");
        }
        if cfg!(target_os = "linux") {
            assert!(report.cpu_ms_per_request.is_some(), "{report:?}");
        }
    }
}
