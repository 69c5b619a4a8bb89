//! Writing and reading bundle directories in the layout of `kan_api::bundle::files`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kan_api::bundle::{
    BUNDLE_FORMAT_VERSION, BundleManifest, DatasetInfo, MANIFEST_FILE, content_version, sha256_hex,
};
use kan_api::crd::StrategyType;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};

/// An owned tensor to be written into a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    I64 { shape: Vec<usize>, data: Vec<i64> },
    F32 { shape: Vec<usize>, data: Vec<f32> },
}

impl Tensor {
    pub fn i64(data: Vec<i64>) -> Self {
        Tensor::I64 {
            shape: vec![data.len()],
            data,
        }
    }

    pub fn f32(data: Vec<f32>) -> Self {
        Tensor::F32 {
            shape: vec![data.len()],
            data,
        }
    }

    pub fn matrix(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        Tensor::F32 {
            shape: vec![rows, cols],
            data,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::I64 { shape, .. } | Tensor::F32 { shape, .. } => shape,
        }
    }

    fn bytes(&self) -> (Dtype, Vec<u8>) {
        match self {
            Tensor::I64 { data, .. } => (
                Dtype::I64,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Tensor::F32 { data, .. } => (
                Dtype::F32,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            Tensor::I64 { data, .. } => Some(data),
            Tensor::F32 { .. } => None,
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Tensor::F32 { data, .. } => Some(data),
            Tensor::I64 { .. } => None,
        }
    }
}

/// Serialises named tensors as safetensors bytes.
pub fn safetensors_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let (d, b) = t.bytes();
            (n.clone(), d, t.shape().to_vec(), b)
        })
        .collect();
    let views = raw
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Parses safetensors bytes (i64 and f32 tensors only).
pub fn parse_safetensors(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>> {
    let st = safetensors::SafeTensors::deserialize(bytes)?;
    let mut out = HashMap::new();
    for name in st.names() {
        let v = st.tensor(name)?;
        let shape = v.shape().to_vec();
        let t = match v.dtype() {
            Dtype::I64 => Tensor::I64 {
                shape,
                data: v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            },
            Dtype::F32 => Tensor::F32 {
                shape,
                data: v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                    .collect(),
            },
            other => {
                return Err(Error::InvalidInput(format!(
                    "{}: tensor `{name}` has dtype {other:?}; bundles use I64 and F32",
                    path.display()
                )));
            }
        };
        out.insert(name.to_string(), t);
    }
    Ok(out)
}

/// Writes a bundle's files, remembering each sha256, then the manifest.
pub struct BundleWriter {
    dir: PathBuf,
    files: BTreeMap<String, String>,
}

impl BundleWriter {
    /// Creates (or reuses) `dir`; a stale manifest is removed first so a half-written bundle is
    /// never mistaken for a complete one.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let manifest = dir.join(MANIFEST_FILE);
        if manifest.exists() {
            std::fs::remove_file(&manifest).map_err(|e| Error::io(&manifest, e))?;
        }
        Ok(BundleWriter {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
        })
    }

    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        self.files.insert(name.to_string(), sha256_hex(bytes));
        Ok(())
    }

    pub fn tensors(&mut self, name: &str, tensors: &[(String, Tensor)]) -> Result<()> {
        let bytes = safetensors_bytes(tensors)?;
        self.bytes(name, &bytes)
    }

    pub fn lines<S: AsRef<str>>(&mut self, name: &str, lines: &[S]) -> Result<()> {
        let mut text = String::new();
        for l in lines {
            text.push_str(l.as_ref());
            text.push('\n');
        }
        self.bytes(name, text.as_bytes())
    }

    /// Writes `manifest.json` and returns it.
    pub fn finish(
        self,
        strategy: StrategyType,
        dataset: DatasetInfo,
        params: serde_json::Value,
        metrics: BTreeMap<String, f64>,
        dim: Option<u32>,
    ) -> Result<BundleManifest> {
        let created_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::InvalidInput(format!("cannot format the current time: {e}")))?;
        let manifest = BundleManifest {
            format_version: BUNDLE_FORMAT_VERSION,
            strategy,
            version: content_version(&self.files),
            dataset,
            params,
            metrics,
            dim,
            created_at,
            files: self.files,
        };
        let path = self.dir.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&manifest)?;
        std::fs::write(&path, json).map_err(|e| Error::io(&path, e))?;
        Ok(manifest)
    }
}

/// A bundle read back from disk with every file's sha256 verified.
#[derive(Debug)]
pub struct BundleDir {
    pub dir: PathBuf,
    pub manifest: BundleManifest,
}

impl BundleDir {
    pub fn open(dir: &Path) -> Result<Self> {
        let bad = |problem: String| Error::Bundle {
            dir: dir.to_path_buf(),
            problem,
        };
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: BundleManifest = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("manifest.json is invalid: {e}")))?;
        for (name, want) in &manifest.files {
            let p = dir.join(name);
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let got = sha256_hex(&bytes);
            if &got != want {
                return Err(bad(format!(
                    "{name} has sha256 {got}, manifest says {want}: the file changed after training"
                )));
            }
        }
        if content_version(&manifest.files) != manifest.version {
            return Err(bad(
                "version does not match the files' content hash".to_string()
            ));
        }
        Ok(BundleDir {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.manifest.files.contains_key(name)
    }

    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        if !self.has(name) {
            return Err(Error::Bundle {
                dir: self.dir.clone(),
                problem: format!("has no {name}"),
            });
        }
        let p = self.dir.join(name);
        std::fs::read(&p).map_err(|e| Error::io(&p, e))
    }

    pub fn lines(&self, name: &str) -> Result<Vec<String>> {
        let bytes = self.read(name)?;
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect())
    }

    pub fn tensors(&self, name: &str) -> Result<Tensors> {
        let bytes = self.read(name)?;
        Ok(Tensors {
            file: self.dir.join(name),
            map: parse_safetensors(&self.dir.join(name), &bytes)?,
        })
    }
}

/// The tensors of one safetensors file, with typed getters that name what is missing.
pub struct Tensors {
    file: PathBuf,
    pub map: HashMap<String, Tensor>,
}

impl Tensors {
    fn get(&self, name: &str) -> Result<&Tensor> {
        self.map.get(name).ok_or_else(|| {
            Error::InvalidInput(format!("{} has no tensor `{name}`", self.file.display()))
        })
    }

    pub fn i64(&self, name: &str) -> Result<&[i64]> {
        self.get(name)?.as_i64().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: tensor `{name}` should be I64",
                self.file.display()
            ))
        })
    }

    pub fn f32(&self, name: &str) -> Result<(&[usize], &[f32])> {
        let t = self.get(name)?;
        let data = t.as_f32().ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: tensor `{name}` should be F32",
                self.file.display()
            ))
        })?;
        Ok((t.shape(), data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::bundle::files;

    #[test]
    fn a_written_bundle_reads_back_verified_and_a_changed_file_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::create(dir.path()).unwrap();
        w.lines(files::ITEMS, &["a", "b"]).unwrap();
        let t = vec![
            ("offsets".to_string(), Tensor::i64(vec![0, 1, 2])),
            ("weights".to_string(), Tensor::matrix(1, 2, vec![0.5, -1.0])),
        ];
        w.tensors(files::NEIGHBOURS, &t).unwrap();
        let m = w
            .finish(
                StrategyType::Itemcf,
                DatasetInfo::default(),
                serde_json::json!({"k": 1}),
                BTreeMap::new(),
                None,
            )
            .unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.version, content_version(&m.files));

        let b = BundleDir::open(dir.path()).unwrap();
        assert_eq!(b.lines(files::ITEMS).unwrap(), ["a", "b"]);
        let ts = b.tensors(files::NEIGHBOURS).unwrap();
        assert_eq!(ts.i64("offsets").unwrap(), [0, 1, 2]);
        assert_eq!(
            ts.f32("weights").unwrap(),
            (&[1usize, 2][..], &[0.5f32, -1.0][..])
        );
        assert!(
            ts.i64("weights")
                .unwrap_err()
                .to_string()
                .contains("should be I64")
        );

        std::fs::write(dir.path().join(files::ITEMS), "a\nc\n").unwrap();
        let err = BundleDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("items.txt has sha256"), "{err}");
    }
}
