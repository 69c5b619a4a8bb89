//! A bundle writer for tests and benchmarks that follows [`kan_api::bundle::files`] exactly: ids,
//! safetensors, and a manifest with checksums and content version. It fails with I/O errors that
//! name the file (a fixture's callers unwrap them or pass them on).

use std::collections::BTreeMap;
use std::io::{Error, Result};
use std::path::{Path, PathBuf};

use kan_api::bundle::{
    BUNDLE_FORMAT_VERSION, BundleManifest, DatasetInfo, MANIFEST_FILE, content_version, sha256_hex,
};
use kan_api::crd::StrategyType;
use safetensors::tensor::TensorView;

/// `e` with the file it is about in its message.
fn at(path: &Path, e: Error) -> Error {
    Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A tensor to write: name, shape and data.
pub enum TensorData {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

impl TensorData {
    fn bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(_, d) => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(_, d) => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// Writes the files of a bundle, then its manifest.
pub struct BundleWriter {
    dir: PathBuf,
    files: BTreeMap<String, String>,
}

impl BundleWriter {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a file and records its checksum.
    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<&mut Self> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| at(&path, e))?;
        self.files.insert(name.to_string(), sha256_hex(bytes));
        Ok(self)
    }

    /// An id file, one id per line.
    pub fn ids(&mut self, name: &str, ids: &[String]) -> Result<&mut Self> {
        let mut text = ids.join("\n");
        text.push('\n');
        self.bytes(name, text.as_bytes())
    }

    /// A safetensors file.
    pub fn tensors(&mut self, name: &str, tensors: Vec<(&str, TensorData)>) -> Result<&mut Self> {
        let data: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = tensors
            .iter()
            .map(|(n, t)| match t {
                TensorData::F32(shape, _) => (
                    n.to_string(),
                    shape.clone(),
                    safetensors::Dtype::F32,
                    t.bytes(),
                ),
                TensorData::I64(shape, _) => (
                    n.to_string(),
                    shape.clone(),
                    safetensors::Dtype::I64,
                    t.bytes(),
                ),
            })
            .collect();
        let views = data
            .iter()
            .map(|(n, shape, dtype, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::other(format!("{name}: {n}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| Error::other(format!("{name}: {e}")))?;
        self.bytes(name, &bytes)
    }

    /// Writes `manifest.json` and returns it.
    pub fn finish(
        &mut self,
        strategy: StrategyType,
        dim: Option<u32>,
        params: serde_json::Value,
    ) -> Result<BundleManifest> {
        let manifest = BundleManifest {
            format_version: BUNDLE_FORMAT_VERSION,
            strategy,
            version: content_version(&self.files),
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
            files: self.files.clone(),
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(Error::other)?;
        let path = self.dir.join(MANIFEST_FILE);
        std::fs::write(&path, text).map_err(|e| at(&path, e))?;
        Ok(manifest)
    }
}

/// CSR offsets for rows of the given lengths.
pub fn offsets(lengths: impl IntoIterator<Item = usize>) -> Vec<i64> {
    let mut out = vec![0i64];
    for l in lengths {
        out.push(out.last().copied().unwrap_or(0) + l as i64);
    }
    out
}
