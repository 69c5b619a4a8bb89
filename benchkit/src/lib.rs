//! The benchmark harnesses behind `kan bench`. Each drives a serving crate through its public
//! API, as a user would, on fixtures from `kan-testkit`:
//!
//! * [`worker`] — `kan bench worker`: one worker in-process on a synthetic bundle at scale
//!   ([`bundles`]), closed- and open-loop latency, HNSW against an exact scan.
//! * [`ann`] — `kan bench ann`: the embedded HNSW index against an exact scan, writing the files a
//!   peer benchmark reads ([`vector_files`]).
//! * [`gateway`] — `kan bench gateway`: a gateway in front of fake queues, driven over HTTP.
//! * [`soak`] — `kan bench soak`: the gateway under sustained overload, on [`gateway`]'s machinery.
//! * [`platform`] — `kan bench platform`: a running platform driven over HTTP.
//! * [`freshness`] — `kan bench freshness`: event → recall freshness under load, and ingestion
//!   throughput.
//! * [`percentile`] — the one nearest-rank percentile every report uses.

pub mod ann;
pub mod bundles;
pub mod error;
pub mod freshness;
pub mod gateway;
pub mod percentile;
pub mod platform;
pub mod soak;
pub mod vector_files;
pub mod worker;

pub use error::{Error, Result};
