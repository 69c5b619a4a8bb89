//! The crate's one error type. Messages are complete sentences; callers wrap them in their own
//! error types (the worker keeps model and inference failures apart for its metrics).

/// What can go wrong with ONNX Runtime or an encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ONNX Runtime library is not configured, missing, or cannot be loaded.
    #[error("{0}")]
    Runtime(String),
    /// A model cannot be loaded or does not meet the encoder contract.
    #[error("{0}")]
    Model(String),
    /// Running the encoder on a history failed.
    #[error("{0}")]
    Inference(String),
}

pub type Result<T> = std::result::Result<T, Error>;
