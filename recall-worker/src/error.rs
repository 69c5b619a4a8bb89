//! The crate's one error type. Every variant maps to a stable metric label.

use std::path::PathBuf;

/// Everything that can go wrong while loading or serving a queue.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The worker config (RecallQueue spec) breaks a rule.
    #[error("invalid worker config: {0}")]
    Config(String),
    /// The bundle URI cannot be fetched.
    #[error("fetching bundle {uri}: {message}")]
    Fetch { uri: String, message: String },
    /// A bundle file cannot be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bundle's manifest or files do not meet the bundle contract.
    #[error("invalid bundle: {0}")]
    Bundle(String),
    /// A file's sha256 differs from the manifest (the codec's
    /// [`kan_core::bundle::BundleError::Checksum`]).
    #[error(transparent)]
    Checksum(kan_core::bundle::BundleError),
    /// ONNX Runtime could not be loaded or the model does not meet the encoder contract.
    #[error("onnx: {0}")]
    Model(String),
    /// Model inference failed on a request.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The vector index failed or is unreachable.
    #[error("vector index: {0}")]
    Index(String),
    /// The vector index refuses the worker's credentials or configuration (not transient).
    #[error("vector index refuses the worker's configuration: {0}")]
    IndexConfig(String),
    /// The request is malformed; `field` names the offending field.
    #[error("{field}: {message}")]
    InvalidRequest { field: String, message: String },
    /// The request ran past the queue's `timeoutMs`.
    #[error("recall took longer than the queue's timeoutMs ({0} ms)")]
    Timeout(u64),
    /// No bundle is loaded yet.
    #[error("worker not ready: {0}")]
    NotReady(String),
}

/// ONNX Runtime and model failures are model errors (`/readyz`, the `model` metric label);
/// failures on a request's history are inference errors.
impl From<kan_onnx::Error> for Error {
    fn from(e: kan_onnx::Error) -> Self {
        match e {
            kan_onnx::Error::Runtime(m) | kan_onnx::Error::Model(m) => Error::Model(m),
            kan_onnx::Error::Inference(m) => Error::Inference(m),
        }
    }
}

/// The codec's I/O and checksum failures keep their own variants (and metric labels); every
/// other codec error is a bundle that breaks the contract.
impl From<kan_core::bundle::BundleError> for Error {
    fn from(e: kan_core::bundle::BundleError) -> Self {
        use kan_core::bundle::BundleError;
        match e {
            BundleError::Io { path, source } => Error::Io { path, source },
            e @ BundleError::Checksum { .. } => Error::Checksum(e),
            other => Error::Bundle(other.to_string()),
        }
    }
}

impl Error {
    /// A stable label for the `kind` label of error metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Fetch { .. } => "fetch",
            Error::Io { .. } => "io",
            Error::Bundle(_) => "bundle",
            Error::Checksum(_) => "checksum",
            Error::Model(_) => "model",
            Error::Inference(_) => "inference",
            Error::Index(_) => "index",
            Error::IndexConfig(_) => "index_config",
            Error::InvalidRequest { .. } => "invalid_request",
            Error::Timeout(_) => "timeout",
            Error::NotReady(_) => "not_ready",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_errors_have_a_stable_metric_label() {
        let e = Error::from(kan_core::bundle::BundleError::Checksum {
            file: "a".into(),
            expected: "x".into(),
            actual: "y".into(),
        });
        assert_eq!(e.metric_label(), "checksum");
        assert!(e.to_string().contains("bundle file a"));
    }
}
