//! The Kan recall worker: serves one recall queue (one strategy over one bundle) over HTTP.
//!
//! # In-process API
//!
//! ```no_run
//! # async fn run(config: kan_api::worker_config::WorkerConfig, handle: metrics_exporter_prometheus::PrometheusHandle) -> Result<(), Box<dyn std::error::Error>> {
//! use kan_worker::{Worker, WorkerOptions};
//! // Loads and verifies the bundle, builds the index and the strategy; fails on any error.
//! // (`Worker::start` instead keeps running not-ready when the bundle is bad.)
//! let worker = Worker::load(config, WorkerOptions::default()).await?;
//! let app = worker.router(Some(handle)); // POST /v1/recall, /healthz, /readyz, /metrics
//! worker.spawn_watchers(std::time::Duration::from_secs(10)); // bundle change / SIGHUP → reload
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let limits = kan_http::ListenerLimits::named("worker");
//! kan_http::serve(listener, app, limits, std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! `worker.reload(new_config)` swaps in a new config (and bundle) atomically; a failure keeps the
//! old queue serving and shows in `/readyz`. `worker.recall(&request)` answers without HTTP.
//!
//! # Layout
//!
//! * [`bundle`] — fetching, verifying and reading bundles ([`kan_api::bundle::files`] layout).
//! * ONNX user encoders come from [`kan_onnx`] (shared with `kan eval`).
//! * [`index`] — the [`index::VectorIndex`] trait: exact scan, embedded HNSW, Qdrant.
//! * [`strategy`] — the [`strategy::Strategy`] trait and one module per strategy.
//! * [`worker`] / [`server`] — hot-swappable state and the HTTP API.
//! * [`added`] — the persisted catalogue of items added after training (`POST /v1/items`).
//!
//! Synthetic bundles and encoders for tests live in `kan-testkit`; the load generators behind
//! `kan bench worker` / `kan bench ann` in `kan-bench`, which use this crate's public API.

pub mod added;
pub mod bundle;
pub mod error;
pub mod index;
pub mod metrics;
pub mod request;
pub mod server;
pub mod signals;
pub mod strategy;
pub mod worker;

pub use error::{Error, Result};
pub use worker::{Loaded, Readiness, Worker, WorkerOptions};

impl Worker {
    /// The HTTP API of this worker (see [`server::router`]), admitting the default number of
    /// recall requests at once ([`kan_http::default_max_in_flight`]).
    pub fn router(
        &self,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> axum::Router {
        let admission = kan_http::Admission::new(kan_http::default_max_in_flight(), "worker");
        server::router(self.clone(), metrics, admission)
    }

    /// The HTTP API with `admission` bounding `POST /v1/recall`.
    pub fn router_with_admission(
        &self,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
        admission: kan_http::Admission,
    ) -> axum::Router {
        server::router(self.clone(), metrics, admission)
    }
}
