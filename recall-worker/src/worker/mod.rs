//! The worker: one loaded queue (config, bundle, index, strategy) behind an `ArcSwap`, so a new
//! bundle or config replaces the old one atomically while in-flight requests finish on the old
//! one. A failed reload keeps the old one serving and is reported by `/readyz`.
//!
//! One job per module:
//! * `state` — the [`Worker`]: the swappable queue, (re)loading, readiness, added items and the
//!   watchers that trigger a reload;
//! * `options` — the process-level [`WorkerOptions`];
//! * `load` — a [`Loaded`] queue from a config: the bundle, its strategy, encoder and signal
//!   store;
//! * `index_build` — the vector index a bundle is searched with (Qdrant, exact, HNSW and its
//!   saved graph);
//! * `serve` — one request resolved against the loaded queue and run under its budget.

mod index_build;
mod load;
mod options;
mod serve;
mod state;

pub use load::Loaded;
pub use options::WorkerOptions;
pub use state::{Readiness, Worker};
