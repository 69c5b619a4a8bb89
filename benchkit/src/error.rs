use std::path::{Path, PathBuf};

/// Why a benchmark could not run (the gateway, soak and platform benchmarks, which only drive
/// HTTP, fail with `std::io::Error`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The benchmark's settings or input files are unusable.
    #[error("{0}")]
    Config(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The worker under test failed to load or to answer.
    #[error(transparent)]
    Worker(#[from] kan_worker::Error),
    /// The ONNX encoder measured on its own failed.
    #[error("onnx: {0}")]
    Onnx(#[from] kan_onnx::Error),
    /// The synthetic bundle could not be written.
    #[error("writing the synthetic bundle: {0}")]
    Fixture(#[source] std::io::Error),
    /// The index under test failed.
    #[error("vector index: {0}")]
    Index(String),
    /// The gateway under test refused its config.
    #[error(transparent)]
    Gateway(#[from] kan_gateway::Error),
    /// The signal store under test could not be set up.
    #[error("{0}")]
    Signals(String),
    /// Something of this process's own (a loopback port, a temporary directory) could not be had.
    #[error("{what}: {source}")]
    Local {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A request to the platform under test failed or was refused.
    #[error("{0}")]
    Request(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
