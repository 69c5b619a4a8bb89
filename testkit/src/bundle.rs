//! The bundle writer of tests and benchmarks: kan-core's bundle codec with a fixed
//! synthetic dataset and creation time (so fixtures are reproducible), a chaining API, and
//! `std::io` errors that name the file (a fixture's callers unwrap them or pass them on).

use std::collections::BTreeMap;
use std::io::{Error, Result};
use std::path::{Path, PathBuf};

use kan_api::bundle::{BundleManifest, DatasetInfo};
use kan_api::crd::StrategyType;
use kan_core::bundle::{self as codec, BundleError, ManifestInfo};

/// A tensor to write: shape and data (the codec's tensor).
pub use kan_core::bundle::Tensor as TensorData;
/// CSR offsets for rows of the given lengths.
pub use kan_core::bundle::offsets;

/// The codec's error as an I/O error with the file in its message.
fn io(e: BundleError) -> Error {
    match e {
        BundleError::Io { path, source } => {
            Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        other => Error::other(other.to_string()),
    }
}

/// Writes the files of a bundle, then its manifest.
pub struct BundleWriter {
    dir: PathBuf,
    inner: Option<codec::BundleWriter>,
}

impl BundleWriter {
    pub fn new(dir: &Path) -> Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            inner: Some(codec::BundleWriter::create(dir).map_err(io)?),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn inner(&mut self) -> Result<&mut codec::BundleWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::other("the bundle's manifest is already written"))
    }

    /// Writes a file and records its checksum.
    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<&mut Self> {
        self.inner()?.bytes(name, bytes).map_err(io)?;
        Ok(self)
    }

    /// An id file, one id per line.
    pub fn ids(&mut self, name: &str, ids: &[String]) -> Result<&mut Self> {
        self.inner()?.lines(name, ids).map_err(io)?;
        Ok(self)
    }

    /// A safetensors file.
    pub fn tensors(&mut self, name: &str, tensors: Vec<(&str, TensorData)>) -> Result<&mut Self> {
        self.inner()?.tensors(name, &tensors).map_err(io)?;
        Ok(self)
    }

    /// Writes `manifest.json` and returns it; the writer takes no more files.
    pub fn finish(
        &mut self,
        strategy: StrategyType,
        dim: Option<u32>,
        params: serde_json::Value,
    ) -> Result<BundleManifest> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| Error::other("the bundle's manifest is already written"))?;
        inner
            .finish(ManifestInfo {
                strategy,
                dataset: DatasetInfo {
                    name: "synthetic".into(),
                    fingerprint: "0".repeat(64),
                    users: 0,
                    items: 0,
                    interactions: 0,
                },
                params,
                metrics: BTreeMap::new(),
                dim,
                created_at: "2026-01-01T00:00:00Z".into(),
            })
            .map_err(io)
    }
}
