//! Uploading a local bundle to object storage (`kan bundle push`): the bundle is verified first,
//! then every file is uploaded and the manifest last, so a reader that finds the new manifest
//! finds every file it lists (and a reader that started earlier notices the manifest change).

use std::path::Path;

use kan_api::bundle::{BundleManifest, MANIFEST_FILE};

use super::fetch::parse_uri;
use super::remote::{Remote, RemoteOptions};
use crate::error::{Error, Result};
use kan_core::bundle::{read_manifest, verify_files};

/// Uploads the bundle in `dir` to `uri` and returns its manifest.
pub async fn push(dir: &Path, uri: &str, options: &RemoteOptions) -> Result<BundleManifest> {
    let location = parse_uri(uri)?;
    let remote = Remote::open(uri, &location, options)?;
    let local = dir.to_path_buf();
    let manifest = tokio::task::spawn_blocking(move || {
        let manifest = read_manifest(&local)?;
        verify_files(&local, &manifest)?;
        Ok::<_, Error>(manifest)
    })
    .await
    .map_err(|e| Error::Bundle(format!("verifying task failed: {e}")))??;
    for name in manifest.files.keys() {
        remote.put_file(name, &dir.join(name)).await?;
    }
    remote
        .put_file(MANIFEST_FILE, &dir.join(MANIFEST_FILE))
        .await?;
    Ok(manifest)
}
