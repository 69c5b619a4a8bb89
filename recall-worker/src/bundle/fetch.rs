//! Resolving a bundle URI to a local directory: local paths and `file://` are used in place;
//! remote bundles (`http(s)://`, `s3://`, `gs://`, `az://`) are downloaded into the bundle cache.
//!
//! A download reads the manifest, streams every file it lists into `<version>.partial/` while
//! hashing it (a wrong sha256 stops the download at that file), reads the manifest again to be
//! sure the bundle did not change underneath, then renames the directory to `<version>/`: the
//! loader never sees a partial bundle, and a broken transfer leaves nothing that a retry trusts.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use kan_api::bundle::{BundleManifest, MANIFEST_FILE};
use kan_api::bundle_uri::BundleLocation;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::remote::{Remote, RemoteOptions};
use crate::error::{Error, Result};
use kan_core::bundle::{check_digest, parse_manifest};

/// Marker written last into a finished download.
const COMPLETE: &str = ".complete";

/// Parses `uri` into a location; unsupported schemes are an error that says what is supported.
pub fn parse_uri(uri: &str) -> Result<BundleLocation> {
    kan_api::bundle_uri::parse(uri).map_err(|message| Error::Fetch {
        uri: uri.to_string(),
        message,
    })
}

/// Makes the bundle available as a local directory and returns it. Remote bundles are stored
/// in `cache/<manifest version>/`; a complete earlier download of the same version is reused
/// (its checksums are verified by the loader either way).
pub async fn fetch(uri: &str, remote: &RemoteOptions, cache: Option<&Path>) -> Result<PathBuf> {
    let location = parse_uri(uri)?;
    if let BundleLocation::Local(path) = location {
        return Ok(path);
    }
    let cache = cache.ok_or_else(|| Error::Fetch {
        uri: uri.to_string(),
        message: "remote bundles need a download directory: pass --bundle-cache DIR".to_string(),
    })?;
    download(&Remote::open(uri, &location, remote)?, cache).await
}

/// Downloads the bundle at `remote` into `cache/<version>/` (see the module docs).
pub async fn download(remote: &Remote, cache: &Path) -> Result<PathBuf> {
    let manifest_bytes = remote.get_bytes(MANIFEST_FILE).await?;
    let manifest = parse_manifest(
        &manifest_bytes,
        &format!("{}/{MANIFEST_FILE}", remote.uri()),
    )?;
    let dir = cache.join(&manifest.version);
    if dir.join(COMPLETE).exists() {
        return Ok(dir);
    }
    let partial = cache.join(format!("{}.partial", manifest.version));
    remove_dir_if_present(&partial).await?;
    tokio::fs::create_dir_all(&partial)
        .await
        .map_err(|e| Error::io(&partial, e))?;
    match stage(remote, &manifest, &manifest_bytes, &partial).await {
        Ok(()) => {}
        Err(e) => {
            // Nothing half-written is kept: the next attempt starts from scratch.
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(e);
        }
    }
    remove_dir_if_present(&dir).await?;
    // A rename makes the download appear all at once: a crash leaves only a `.partial` dir.
    tokio::fs::rename(&partial, &dir)
        .await
        .map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Writes every file (verified), then the manifest and the completion marker, into `partial`.
async fn stage(
    remote: &Remote,
    manifest: &BundleManifest,
    manifest_bytes: &[u8],
    partial: &Path,
) -> Result<()> {
    for (name, expected) in &manifest.files {
        let path = partial.join(name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::io(parent, e))?;
        }
        let actual = stream_to_file(remote, name, &path).await?;
        check_digest(name, expected, actual)?;
    }
    // Uploads write the manifest last, so a manifest that changed while we read means files
    // of two versions may be mixed: refuse rather than serve them.
    let again = remote.get_bytes(MANIFEST_FILE).await?;
    if again != manifest_bytes {
        let now = parse_manifest(&again, remote.uri())
            .map(|m| m.version)
            .unwrap_or_else(|_| "an unreadable manifest".to_string());
        return Err(Error::Fetch {
            uri: remote.uri().to_string(),
            message: format!(
                "the bundle changed during the download (manifest version {} became {now}); refused, retry once the upload has finished",
                manifest.version
            ),
        });
    }
    let manifest_path = partial.join(MANIFEST_FILE);
    tokio::fs::write(&manifest_path, manifest_bytes)
        .await
        .map_err(|e| Error::io(&manifest_path, e))?;
    tokio::fs::write(partial.join(COMPLETE), b"")
        .await
        .map_err(|e| Error::io(partial, e))
}

/// Streams one remote file to `path`, returning its sha256 (hex).
async fn stream_to_file(remote: &Remote, name: &str, path: &Path) -> Result<String> {
    let mut chunks = remote.get(name).await?;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(path, e))?;
    }
    file.flush().await.map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}

async fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_schemes_are_clear_fetch_errors() {
        let e = parse_uri("ftp://host/b1").unwrap_err();
        assert_eq!(e.metric_label(), "fetch");
        assert!(e.to_string().contains("unsupported scheme 'ftp'"), "{e}");
    }

    #[tokio::test]
    async fn remote_bundles_without_a_cache_directory_are_refused() {
        for uri in ["http://127.0.0.1:9/b", "s3://bucket/b"] {
            let e = fetch(uri, &RemoteOptions::default(), None)
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("--bundle-cache"), "{e}");
        }
    }

    #[tokio::test]
    async fn local_bundles_are_used_in_place() {
        let dir = fetch("file:///data/b1", &RemoteOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(dir, PathBuf::from("/data/b1"));
    }
}
