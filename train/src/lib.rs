//! Kan's offline pipeline: dataset readers, splits, trainers for every strategy, ONNX export,
//! bundles, and full-ranking evaluation.
//!
//! * [`data`] reads RecBole atomic files, the LightGCN split, LastFM + SocialLGN, and CSV.
//! * [`split`] makes train/validation/test parts; [`history`] turns parts into CSR histories.
//! * [`strategies`] trains popular, itemcf, item2vec, social, exploratory, dssm and gat.
//! * [`bundle`] writes/reads bundle directories (`kan_api::bundle::files`).
//! * [`metrics`] and [`eval`] score queues and merged lists; [`eval::exposures`] scores the
//!   gateway's exposure log per experiment arm.

pub mod bundle;
pub mod data;
pub mod eigen;
pub mod error;
pub mod eval;
pub mod history;
pub mod linalg;
pub mod metrics;
pub mod onnx;
pub mod pack;
pub mod pipeline;
pub mod progress;
pub mod propensity;
pub mod split;
pub mod strategies;
pub mod vector;

pub use error::{Error, Result};
pub use eval::{EvalReport, EvalRequest, MergePolicy, QueueInput, eval};
pub use pipeline::{TrainOutcome, TrainRequest, train};
pub use strategies::{HyperParams, TrainOptions};

/// Caps the worker threads of training and evaluation (rayon, which candle's CPU kernels use
/// too). Call once, before any work; a second call reports that the pool already exists.
pub fn set_threads(n: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::InvalidInput(format!("cannot set --threads {n}: {e}")))
}
