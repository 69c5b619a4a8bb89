//! Resolving a bundle URI to a local directory: local paths and `file://` are used in place,
//! `http(s)://` bundles are downloaded (manifest first, then every file it lists) into the
//! bundle cache. `s3://` is not supported yet.

use std::path::{Path, PathBuf};

use kan_api::bundle::{BundleManifest, MANIFEST_FILE};

use crate::error::{Error, Result};

/// Where a bundle lives, parsed from its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleLocation {
    Local(PathBuf),
    Http(String),
}

/// Parses `uri` into a location; unsupported schemes are an error that says what is supported.
pub fn parse_uri(uri: &str) -> Result<BundleLocation> {
    let fetch_err = |message: &str| Error::Fetch {
        uri: uri.to_string(),
        message: message.to_string(),
    };
    if let Some(path) = uri.strip_prefix("file://") {
        if path.is_empty() {
            return Err(fetch_err("file:// URI without a path"));
        }
        return Ok(BundleLocation::Local(PathBuf::from(path)));
    }
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Ok(BundleLocation::Http(uri.trim_end_matches('/').to_string()));
    }
    if uri.starts_with("s3://") {
        return Err(fetch_err(
            "s3:// bundles are not supported yet: sync the bundle to a volume (e.g. with an init container) and use a local path, or serve it over https://",
        ));
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        return Err(fetch_err(&format!(
            "unsupported scheme '{scheme}': use a local path, file://, http:// or https://"
        )));
    }
    if uri.is_empty() {
        return Err(fetch_err("empty bundle URI"));
    }
    Ok(BundleLocation::Local(PathBuf::from(uri)))
}

/// Makes the bundle available as a local directory and returns it. HTTP bundles are stored in
/// `cache/<manifest version>/`; a complete earlier download of the same version is reused (its
/// checksums are verified by the loader either way).
pub async fn fetch(uri: &str, cache: Option<&Path>) -> Result<PathBuf> {
    match parse_uri(uri)? {
        BundleLocation::Local(path) => Ok(path),
        BundleLocation::Http(base) => {
            let cache = cache.ok_or_else(|| Error::Fetch {
                uri: uri.to_string(),
                message: "http(s) bundles need a download directory: pass --bundle-cache DIR"
                    .to_string(),
            })?;
            download(&base, cache).await
        }
    }
}

async fn download(base: &str, cache: &Path) -> Result<PathBuf> {
    let fetch_err = |message: String| Error::Fetch {
        uri: base.to_string(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| fetch_err(e.to_string()))?;
    let get = |name: String| {
        let client = client.clone();
        async move {
            let url = format!("{base}/{name}");
            let resp = client
                .get(&url)
                .send()
                .await
                .map_err(|e| fetch_err(format!("GET {url}: {e}")))?;
            if !resp.status().is_success() {
                return Err(fetch_err(format!("GET {url}: HTTP {}", resp.status())));
            }
            resp.bytes()
                .await
                .map_err(|e| fetch_err(format!("GET {url}: {e}")))
        }
    };
    let manifest_bytes = get(MANIFEST_FILE.to_string()).await?;
    let manifest: BundleManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Error::Bundle(format!("{MANIFEST_FILE}: {e}")))?;
    kan_api::validate::bundle_manifest(&manifest)
        .map_err(|e| Error::Bundle(format!("{MANIFEST_FILE}: {e}")))?;
    let dir = cache.join(&manifest.version);
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(dir);
    }
    let partial = cache.join(format!("{}.partial", manifest.version));
    let io = |p: &Path, e| Error::io(p, e);
    if partial.exists() {
        tokio::fs::remove_dir_all(&partial)
            .await
            .map_err(|e| io(&partial, e))?;
    }
    tokio::fs::create_dir_all(&partial)
        .await
        .map_err(|e| io(&partial, e))?;
    for name in manifest.files.keys() {
        let bytes = get(name.clone()).await?;
        let path = partial.join(name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io(parent, e))?;
        }
        tokio::fs::write(&path, &bytes)
            .await
            .map_err(|e| io(&path, e))?;
    }
    let manifest_path = partial.join(MANIFEST_FILE);
    tokio::fs::write(&manifest_path, &manifest_bytes)
        .await
        .map_err(|e| io(&manifest_path, e))?;
    tokio::fs::write(partial.join(".complete"), b"")
        .await
        .map_err(|e| io(&partial, e))?;
    if dir.exists() {
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| io(&dir, e))?;
    }
    // A rename makes the download appear all at once: a crash leaves only a `.partial` dir.
    tokio::fs::rename(&partial, &dir)
        .await
        .map_err(|e| io(&dir, e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_file_uris_resolve_to_directories() {
        assert_eq!(
            parse_uri("/data/b1").unwrap(),
            BundleLocation::Local("/data/b1".into())
        );
        assert_eq!(
            parse_uri("file:///data/b1").unwrap(),
            BundleLocation::Local("/data/b1".into())
        );
        assert_eq!(
            parse_uri("rel/b1").unwrap(),
            BundleLocation::Local("rel/b1".into())
        );
    }

    #[test]
    fn http_uris_lose_their_trailing_slash() {
        assert_eq!(
            parse_uri("https://x/b1/").unwrap(),
            BundleLocation::Http("https://x/b1".into())
        );
    }

    #[test]
    fn s3_and_unknown_schemes_are_clear_errors() {
        let e = parse_uri("s3://bucket/b1").unwrap_err().to_string();
        assert!(e.contains("not supported yet"), "{e}");
        let e = parse_uri("gs://bucket/b1").unwrap_err().to_string();
        assert!(e.contains("unsupported scheme 'gs'"), "{e}");
    }

    #[tokio::test]
    async fn http_bundles_without_a_cache_directory_are_refused() {
        let e = fetch("http://127.0.0.1:9/b", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("--bundle-cache"), "{e}");
    }
}
