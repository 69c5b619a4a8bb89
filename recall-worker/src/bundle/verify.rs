//! Reading and checking a bundle's manifest and files.

use std::io::Read;
use std::path::Path;

use kan_api::bundle::{BundleManifest, MANIFEST_FILE};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Reads `manifest.json` and checks it against the bundle rules.
pub fn read_manifest(dir: &Path) -> Result<BundleManifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    parse_manifest(&bytes, &path.display().to_string())
}

/// Parses manifest bytes read from `origin` (a path or URI, for messages) and checks the rules.
pub fn parse_manifest(bytes: &[u8], origin: &str) -> Result<BundleManifest> {
    let manifest: BundleManifest =
        serde_json::from_slice(bytes).map_err(|e| Error::Bundle(format!("{origin}: {e}")))?;
    kan_api::validate::bundle_manifest(&manifest)
        .map_err(|e| Error::Bundle(format!("{origin}: {e}")))?;
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
        Err(Error::Checksum {
            file: name.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
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
