//! `kan bench platform`: `kan up DIR` (this executable, as its own process) under a load
//! generator in this process — capacity, CPU per request, open-loop latency at shares of
//! capacity (see [`kan_bench::platform`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use kan_bench::platform::{PlatformConfig, PlatformReport, process_cpu_ms};
use serde::Serialize;

use super::up::QueueCalls;

/// Benchmark the whole platform: `kan up DIR` in its own process, driven over HTTP.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of Kan YAML files `kan up` serves.
    #[arg(default_value = "examples/quickstart")]
    pub dir: PathBuf,
    /// Users asked for, in turn: `1` to this (ML-100K's users are `1`…`943`).
    #[arg(long, default_value_t = 943)]
    pub users: u32,
    /// Candidates asked of the gateway.
    #[arg(long, default_value_t = 300)]
    pub k: u32,
    /// Clients of the capacity measurement (one request in flight each).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds of closed-loop warm-up before anything is measured.
    #[arg(long, default_value_t = 5)]
    pub warmup_s: u64,
    /// Seconds of the capacity measurement.
    #[arg(long, default_value_t = 10)]
    pub capacity_s: u64,
    /// Shares of capacity offered open-loop, one step each.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.75")]
    pub shares: Vec<f64>,
    /// Seconds of each open-loop step.
    #[arg(long, default_value_t = 10)]
    pub step_s: u64,
    /// Open-loop requests in flight at most.
    #[arg(long, default_value_t = 2000)]
    pub max_client_in_flight: usize,
    /// Runtime worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// How `kan up` calls its queues (`in-process` or `http`), as its `--queue-calls`.
    #[arg(long, value_enum, default_value_t = QueueCalls::InProcess)]
    pub queue_calls: QueueCalls,
    /// Seconds to wait for every queue of DIR to be ready.
    #[arg(long, default_value_t = 180)]
    pub ready_timeout_s: u64,
}

#[derive(Serialize)]
struct Report {
    build: &'static str,
    queue_calls: &'static str,
    dir: String,
    cores: usize,
    #[serde(flatten)]
    platform: PlatformReport,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.canonicalize().with_context(|| {
        format!(
            "{} is not a directory of Kan YAML files",
            args.dir.display()
        )
    })?;
    let logs = tempfile::tempdir()?;
    let platform = Platform::start(&dir, logs.path(), args.queue_calls)?;
    let pid = platform.child.id();
    let config = PlatformConfig {
        users: (1..=args.users.max(1)).map(|u| u.to_string()).collect(),
        k: args.k,
        concurrency: args.concurrency.max(1),
        warmup: Duration::from_secs(args.warmup_s),
        capacity: Duration::from_secs(args.capacity_s.max(1)),
        shares: args.shares.clone(),
        step: Duration::from_secs(args.step_s.max(1)),
        max_client_in_flight: args.max_client_in_flight.max(1),
    };
    let queue_calls = args.queue_calls.as_str();
    let ready_timeout = Duration::from_secs(args.ready_timeout_s);
    let base_url = platform.base_url.clone();
    let log = logs.path().join("kan-up.log");
    super::bench_shared::run_and_print(args.threads, "platform benchmark", async move {
        wait_ready(&base_url, ready_timeout)
            .await
            .map_err(|e| std::io::Error::other(format!("{e}; its log: {}", log.display())))?;
        let platform = kan_bench::platform::run(
            &format!("{base_url}/v1/recall"),
            Arc::new(move || process_cpu_ms(Some(pid))),
            &config,
        )
        .await?;
        Ok::<_, std::io::Error>(Report {
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            queue_calls,
            dir: dir.display().to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            platform,
        })
    })
}

/// `kan up` running as a child process; killed when dropped.
struct Platform {
    base_url: String,
    child: Child,
}

impl Platform {
    /// Starts `kan up dir` on a free loopback port, its log in `logs/kan-up.log`.
    fn start(dir: &Path, logs: &Path, queue_calls: QueueCalls) -> anyhow::Result<Self> {
        // The port is free when asked; nothing else on loopback races for it here.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(logs.join("kan-up.log"))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("up")
            .arg(dir)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--queue-calls={}", queue_calls.as_str()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kan up")?;
        Ok(Self {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
        })
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the gateway's `/readyz` answers 200 with every queue ready.
async fn wait_ready(base_url: &str, limit: Duration) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Queue {
        ready: bool,
    }
    #[derive(serde::Deserialize)]
    struct Readiness {
        queues: Vec<Queue>,
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base_url}/readyz")).send().await
            && r.status().is_success()
            && let Ok(readiness) = r.json::<Readiness>().await
            && readiness.queues.iter().all(|q| q.ready)
        {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "kan up at {base_url} did not have every queue ready within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
