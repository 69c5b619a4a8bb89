//! Writing a bundle directory: files first (each sha256 recorded), `manifest.json` last, so a
//! directory with a manifest is a complete bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kan_api::bundle::{
    BUNDLE_FORMAT_VERSION, BundleManifest, DatasetInfo, MANIFEST_FILE, content_version, sha256_hex,
};
use kan_api::crd::StrategyType;

use super::ids::encode_lines;
use super::tensors::{Tensor, encode_tensors};
use super::{BundleError, Result};

/// What the manifest says about a bundle besides its files.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    pub strategy: StrategyType,
    pub dataset: DatasetInfo,
    pub params: serde_json::Value,
    pub metrics: BTreeMap<String, f64>,
    pub dim: Option<u32>,
    /// RFC 3339; the caller's clock (the codec reads none).
    pub created_at: String,
}

/// Writes a bundle's files, remembering each sha256, then the manifest.
#[derive(Debug)]
pub struct BundleWriter {
    dir: PathBuf,
    files: BTreeMap<String, String>,
}

impl BundleWriter {
    /// Creates (or reuses) `dir`; a stale manifest is removed first so a half-written bundle is
    /// never mistaken for a complete one.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| BundleError::io(dir, e))?;
        let manifest = dir.join(MANIFEST_FILE);
        if manifest.exists() {
            std::fs::remove_file(&manifest).map_err(|e| BundleError::io(&manifest, e))?;
        }
        Ok(BundleWriter {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a file and records its sha256.
    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| BundleError::io(&path, e))?;
        self.files.insert(name.to_string(), sha256_hex(bytes));
        Ok(())
    }

    /// A safetensors file of named tensors.
    pub fn tensors<N: AsRef<str>>(&mut self, name: &str, tensors: &[(N, Tensor)]) -> Result<()> {
        let bytes = encode_tensors(name, tensors)?;
        self.bytes(name, &bytes)
    }

    /// A line file (an id list, names), one entry per line.
    pub fn lines<S: AsRef<str>>(&mut self, name: &str, lines: &[S]) -> Result<()> {
        self.bytes(name, encode_lines(lines).as_bytes())
    }

    /// Writes `manifest.json` (with the content version of the files written) and returns it.
    pub fn finish(self, info: ManifestInfo) -> Result<BundleManifest> {
        let manifest = BundleManifest {
            format_version: BUNDLE_FORMAT_VERSION,
            strategy: info.strategy,
            version: content_version(&self.files),
            dataset: info.dataset,
            params: info.params,
            metrics: info.metrics,
            dim: info.dim,
            created_at: info.created_at,
            files: self.files,
        };
        let path = self.dir.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BundleError::file(MANIFEST_FILE, e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| BundleError::io(&path, e))?;
        Ok(manifest)
    }
}
