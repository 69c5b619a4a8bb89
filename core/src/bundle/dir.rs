//! Reading a local bundle directory: the manifest checked against the bundle rules, every
//! file's sha256 verified against it, then its files by name.

use std::io::Read;
use std::path::{Path, PathBuf};

use kan_api::bundle::{BundleManifest, MANIFEST_FILE};
use sha2::{Digest, Sha256};

use super::tensors::TensorFile;
use super::{BundleError, Result};

/// Reads `manifest.json` and checks it against the bundle rules.
pub fn read_manifest(dir: &Path) -> Result<BundleManifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| BundleError::io(&path, e))?;
    parse_manifest(&bytes, &path.display().to_string())
}

/// Parses manifest bytes read from `origin` (a path or URI, for messages) and checks the rules,
/// the content version among them.
pub fn parse_manifest(bytes: &[u8], origin: &str) -> Result<BundleManifest> {
    let manifest: BundleManifest =
        serde_json::from_slice(bytes).map_err(|e| BundleError::file(origin, e.to_string()))?;
    kan_api::validate::bundle_manifest(&manifest)
        .map_err(|e| BundleError::file(origin, e.to_string()))?;
    Ok(manifest)
}

/// Checks every listed file's sha256 against the manifest.
pub fn verify_files(dir: &Path, manifest: &BundleManifest) -> Result<()> {
    for (name, expected) in &manifest.files {
        check_digest(name, expected, sha256_file(&dir.join(name))?)?;
    }
    Ok(())
}

/// The one comparison of a file's sha256 with the manifest's (hex, any case).
pub fn check_digest(name: &str, expected: &str, actual: String) -> Result<()> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(BundleError::Checksum {
            file: name.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// sha256 of a file, streamed so large embedding files are not read twice into memory.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| BundleError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| BundleError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The path of a file `manifest` lists in `dir`; an error naming the strategy's needs otherwise.
pub fn listed_path(dir: &Path, manifest: &BundleManifest, name: &str) -> Result<PathBuf> {
    if manifest.files.contains_key(name) {
        Ok(dir.join(name))
    } else {
        Err(BundleError::file(
            name,
            format!(
                "a {} bundle needs this file, which the manifest does not list",
                manifest.strategy
            ),
        ))
    }
}

/// A local bundle with its manifest checked and every file's sha256 verified.
#[derive(Debug)]
pub struct BundleDir {
    pub dir: PathBuf,
    pub manifest: BundleManifest,
}

impl BundleDir {
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        verify_files(dir, &manifest)?;
        Ok(BundleDir {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// True when the manifest lists `name`.
    pub fn has(&self, name: &str) -> bool {
        self.manifest.files.contains_key(name)
    }

    /// The path of a listed file; an error naming the strategy's needs otherwise.
    pub fn require(&self, name: &str) -> Result<PathBuf> {
        listed_path(&self.dir, &self.manifest, name)
    }

    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.require(name)?;
        std::fs::read(&path).map_err(|e| BundleError::io(&path, e))
    }

    /// The lines of a listed text file.
    pub fn lines(&self, name: &str) -> Result<Vec<String>> {
        let bytes = self.read(name)?;
        Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// A listed safetensors file.
    pub fn tensors(&self, name: &str) -> Result<TensorFile> {
        TensorFile::read(&self.require(name)?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kan_api::bundle::{DatasetInfo, content_version, files};
    use kan_api::crd::StrategyType;

    use super::super::{BundleWriter, ManifestInfo, Tensor};
    use super::*;

    fn info() -> ManifestInfo {
        ManifestInfo {
            strategy: StrategyType::Itemcf,
            dataset: DatasetInfo::default(),
            params: serde_json::json!({"k": 1}),
            metrics: BTreeMap::new(),
            dim: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn write(dir: &Path) -> BundleManifest {
        let mut w = BundleWriter::create(dir).unwrap();
        w.lines(files::ITEMS, &["a", "b"]).unwrap();
        w.tensors(
            files::NEIGHBOURS,
            &[
                ("offsets", Tensor::i64(vec![0, 1, 2])),
                ("neighbours", Tensor::i64(vec![1, 0])),
                ("weights", Tensor::f32(vec![0.5, -1.0])),
            ],
        )
        .unwrap();
        w.finish(info()).unwrap()
    }

    #[test]
    fn a_written_bundle_reads_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let m = write(dir.path());
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.version, content_version(&m.files));

        let b = BundleDir::open(dir.path()).unwrap();
        assert_eq!(b.manifest, m);
        assert_eq!(b.lines(files::ITEMS).unwrap(), ["a", "b"]);
        let t = b.tensors(files::NEIGHBOURS).unwrap();
        assert_eq!(t.csr(2, "neighbours", 2).unwrap().row(0), &[1]);
        assert_eq!(t.f32_1d("weights").unwrap(), [0.5, -1.0]);
        let err = b.tensors(files::FRIENDS).unwrap_err().to_string();
        assert!(
            err.starts_with("friends.safetensors: a itemcf bundle needs"),
            "{err}"
        );
    }

    #[test]
    fn a_tampered_file_is_a_checksum_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        std::fs::write(dir.path().join(files::ITEMS), "a\nc\n").unwrap();
        let err = BundleDir::open(dir.path()).unwrap_err();
        assert!(
            matches!(&err, BundleError::Checksum { file, .. } if file == files::ITEMS),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("checksum mismatch for bundle file items.txt: manifest says"),
            "{err}"
        );
    }

    #[test]
    fn a_hand_edited_manifest_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = write(dir.path());
        m.version = "0".repeat(16);
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        let err = BundleDir::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json: ") && err.contains("version"),
            "{err}"
        );
    }

    #[test]
    fn writing_again_removes_the_stale_manifest_first() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path());
        let _w = BundleWriter::create(dir.path()).unwrap();
        assert!(!dir.path().join(MANIFEST_FILE).exists());
    }
}
