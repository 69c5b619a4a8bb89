//! `kan up DIR`: the whole platform in one process. Reads the same RecallQueue, RecallGateway
//! and RecallExperiment YAML a cluster takes, validates it with the CRDs' rules, runs one worker
//! per queue on a loopback port and the gateway in front, and applies edits to `DIR` live
//! through the same paths a cluster uses (worker reload, gateway routing update). The gateway
//! hands its queue calls to the workers' routers in-process unless `--queue-calls http`.

mod dir;
pub(crate) mod plan;
mod runtime;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::listen::{AdmissionArgs, ListenerArgs};
use crate::cmd::signals::SignalsArgs;
use crate::telemetry::{self, LogFormat};

/// Run the gateway and one worker per queue from a directory of Kan YAML files.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of RecallQueue / RecallGateway / RecallExperiment YAML files.
    pub dir: PathBuf,
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// ONNX Runtime shared library (needed by dssm and gat queues).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// Where bundles fetched from http(s) URIs are cached.
    #[arg(long)]
    pub bundle_cache: Option<PathBuf>,
    /// How often DIR and queue readiness are checked, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How the gateway calls the queues: `in-process` hands each call to the worker's router
    /// (same request and answer bytes, no socket); `http` goes over loopback as a cluster does.
    /// Each queue listens on its port either way.
    #[arg(long, value_enum, default_value_t = QueueCalls::InProcess)]
    pub queue_calls: QueueCalls,
    /// Limits of the gateway's and every queue's listener.
    #[command(flatten)]
    pub listener: ListenerArgs,
    /// Admission control of the gateway and of each queue, each bounded on its own.
    #[command(flatten)]
    pub admission: AdmissionArgs,
    /// The signal store: in-process unless `--signals-redis` names a Redis; the gateway takes
    /// `POST /v1/events` into it and every queue reads it.
    #[command(flatten)]
    pub signals: SignalsArgs,
}

/// The gateway's transport to the queues of `kan up`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueCalls {
    InProcess,
    Http,
}

impl QueueCalls {
    /// The flag's value, as `--queue-calls` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueCalls::InProcess => "in-process",
            QueueCalls::Http => "http",
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let telemetry = telemetry::init("kan-up", args.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(runtime::run(args, telemetry.metrics.clone()));
    drop(telemetry);
    result
}
