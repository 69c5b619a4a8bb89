//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the offline pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A row of an input file is malformed.
    #[error("{}:{line}: {problem}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        problem: String,
    },
    /// The input as a whole cannot be used (missing file, empty data, bad option).
    #[error("{0}")]
    InvalidInput(String),
    /// A bundle on disk is incomplete or inconsistent.
    #[error("bundle {}: {problem}", dir.display())]
    Bundle { dir: PathBuf, problem: String },
    /// A bundle file breaks the codec's contract (its message names the file and tensor).
    #[error(transparent)]
    BundleFile(kan_core::bundle::BundleError),
    /// Tensor maths failed (candle).
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Building or serialising an ONNX graph failed.
    #[error("onnx export: {0}")]
    Onnx(String),
    /// ONNX Runtime could not load or run a model.
    #[error("onnx runtime: {0}")]
    Runtime(String),
    /// JSON (de)serialisation failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<kan_onnx::Error> for Error {
    fn from(e: kan_onnx::Error) -> Self {
        Error::Runtime(e.to_string())
    }
}

/// The codec's I/O failures are this crate's I/O errors; the rest are bundle errors.
impl From<kan_core::bundle::BundleError> for Error {
    fn from(e: kan_core::bundle::BundleError) -> Self {
        match e {
            kan_core::bundle::BundleError::Io { path, source } => Error::Io { path, source },
            other => Error::BundleFile(other),
        }
    }
}

impl Error {
    /// A stable, low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Parse { .. } => "parse",
            Error::InvalidInput(_) => "invalid_input",
            Error::Bundle { .. } | Error::BundleFile(_) => "bundle",
            Error::Tensor(_) => "tensor",
            Error::Onnx(_) => "onnx_export",
            Error::Runtime(_) => "onnx_runtime",
            Error::Json(_) => "json",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(file: impl Into<PathBuf>, line: usize, problem: impl Into<String>) -> Self {
        Error::Parse {
            file: file.into(),
            line,
            problem: problem.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_names_file_line_and_problem_and_has_a_stable_label() {
        let e = Error::parse("data/x.inter", 7, "timestamp `abc` is not a number");
        assert_eq!(
            e.to_string(),
            "data/x.inter:7: timestamp `abc` is not a number"
        );
        assert_eq!(e.metric_label(), "parse");
    }
}
