//! The bundle codec, written once for `kan train` (writer), the worker and `kan eval` (readers),
//! the test fixtures and the benchmarks: safetensors tensors with dtype/rank/shape checks, CSR
//! structures, id-list files, the writer that records every file's sha256 in `manifest.json`,
//! and the reader of a local bundle directory that verifies them. Local files only: fetching a
//! bundle (HTTP, object storage) is the worker's job, and it hands the fetched directory here.

mod dir;
mod ids;
mod tensors;
mod writer;

use std::path::PathBuf;

pub use dir::{
    BundleDir, check_digest, listed_path, parse_manifest, read_manifest, sha256_file, verify_files,
};
pub use ids::{decode_ids, encode_lines, read_ids};
pub use tensors::{Csr, Tensor, TensorFile, encode_tensors, offsets, parallel, user_history};
pub use writer::{BundleWriter, ManifestInfo};

/// Why a bundle file cannot be written or read. Every variant names the file (and tensor) at
/// fault, so a broken bundle is fixed without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file as a whole breaks the bundle contract (not safetensors, an invalid manifest, an id
    /// listed twice, a file the manifest does not list).
    #[error("{file}: {problem}")]
    File { file: String, problem: String },
    /// One tensor of a safetensors file breaks the contract (missing, wrong dtype, rank or shape,
    /// CSR indices out of bounds).
    #[error("{file}: tensor '{tensor}': {problem}")]
    Tensor {
        file: String,
        tensor: String,
        problem: String,
    },
    /// A file's sha256 differs from the manifest's.
    #[error(
        "checksum mismatch for bundle file {file}: manifest says {expected}, file has {actual}; the bundle is corrupt or was modified after `kan train` wrote it"
    )]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
}

impl BundleError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn file(file: impl Into<String>, problem: impl Into<String>) -> Self {
        BundleError::File {
            file: file.into(),
            problem: problem.into(),
        }
    }

    pub fn tensor(
        file: impl Into<String>,
        tensor: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        BundleError::Tensor {
            file: file.into(),
            tensor: tensor.into(),
            problem: problem.into(),
        }
    }
}

pub type Result<T, E = BundleError> = std::result::Result<T, E>;
