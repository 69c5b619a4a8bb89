//! Reading and checking a bundle's manifest and files.

use std::io::Read;
use std::path::Path;

use kan_api::bundle::{BundleManifest, MANIFEST_FILE};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Reads `manifest.json` and checks it against the bundle rules.
pub fn read_manifest(dir: &Path) -> Result<BundleManifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: BundleManifest = serde_json::from_str(&text)
        .map_err(|e| Error::Bundle(format!("{}: {e}", path.display())))?;
    kan_api::validate::bundle_manifest(&manifest)
        .map_err(|e| Error::Bundle(format!("{}: {e}", path.display())))?;
    Ok(manifest)
}

/// Checks every listed file's sha256 against the manifest.
pub fn verify_files(dir: &Path, manifest: &BundleManifest) -> Result<()> {
    for (name, expected) in &manifest.files {
        let actual = sha256_file(&dir.join(name))?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::Checksum {
                file: name.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// sha256 of a file, streamed so large embedding files are not read twice into memory.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
