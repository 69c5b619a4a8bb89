//! Fixtures shared by the tests of several crates and by the benchmarks (`kan-bench`): nothing
//! here serves traffic, and no serving crate depends on it except for its tests.
//!
//! * [`vectors`] — clustered unit vectors, the catalogue of synthetic bundles.
//! * [`bundle`] — a bundle writer that follows [`kan_api::bundle::files`] exactly.
//! * [`onnx`] — tiny ONNX user encoders that meet the encoder contract.
//! * [`fake_queue`] — a fake recall queue over HTTP, with behaviours a test can change.
//! * [`redis`] — a real `redis-server` on a free loopback port.

pub mod bundle;
pub mod fake_queue;
pub mod onnx;
pub mod redis;
pub mod vectors;
