//! Where a bundle lives, parsed from `spec.bundle.uri`. Pure, so `kan validate`, the operator and
//! the worker accept and refuse exactly the same URIs.

use std::fmt;
use std::path::PathBuf;

/// The object stores a bundle can be fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectScheme {
    /// Amazon S3 or an S3-compatible server (MinIO, Ceph, moto) through `bundle.endpoint`.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage (`az://container/path`, account from `AZURE_STORAGE_ACCOUNT_NAME`).
    Azure,
}

impl ObjectScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectScheme::S3 => "s3",
            ObjectScheme::Gcs => "gs",
            ObjectScheme::Azure => "az",
        }
    }
}

impl fmt::Display for ObjectScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed bundle URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleLocation {
    /// A local directory (a plain path or `file://`), used in place.
    Local(PathBuf),
    /// An `http(s)://` base URL without a trailing slash; files are `{base}/{name}`.
    Http(String),
    /// A prefix in a bucket (or container); files are `{prefix}/{name}`, `prefix` may be empty.
    Object {
        scheme: ObjectScheme,
        bucket: String,
        prefix: String,
    },
}

impl BundleLocation {
    /// True when the bundle must be downloaded (into the worker's bundle cache).
    pub fn is_remote(&self) -> bool {
        !matches!(self, BundleLocation::Local(_))
    }
}

/// The schemes a bundle URI may use, for error messages.
pub const SUPPORTED: &str =
    "a local path, file://, http://, https://, s3://, gs:// or az:// (az://container/path)";

/// Parses a bundle URI; the error says what is wrong and what is supported.
pub fn parse(uri: &str) -> Result<BundleLocation, String> {
    if uri.trim().is_empty() {
        return Err("empty bundle URI".to_string());
    }
    if let Some(path) = uri.strip_prefix("file://") {
        if path.is_empty() {
            return Err("file:// URI without a path".to_string());
        }
        return Ok(BundleLocation::Local(PathBuf::from(path)));
    }
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return Ok(BundleLocation::Http(uri.trim_end_matches('/').to_string()));
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(BundleLocation::Local(PathBuf::from(uri)));
    };
    let scheme = match scheme {
        "s3" | "s3a" => ObjectScheme::S3,
        "gs" | "gcs" => ObjectScheme::Gcs,
        "az" | "azure" | "abfs" => ObjectScheme::Azure,
        other => return Err(format!("unsupported scheme '{other}': use {SUPPORTED}")),
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "{scheme}:// URI without a bucket: write {scheme}://BUCKET/PATH/TO/BUNDLE"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|part| part == "." || part == "..") {
        return Err(format!(
            "{scheme}:// path must not contain '.' or '..' segments"
        ));
    }
    Ok(BundleLocation::Object {
        scheme,
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(scheme: ObjectScheme, bucket: &str, prefix: &str) -> BundleLocation {
        BundleLocation::Object {
            scheme,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn local_paths_and_file_uris_resolve_to_directories() {
        assert_eq!(
            parse("/data/b1"),
            Ok(BundleLocation::Local("/data/b1".into()))
        );
        assert_eq!(
            parse("file:///data/b1"),
            Ok(BundleLocation::Local("/data/b1".into()))
        );
        assert_eq!(parse("rel/b1"), Ok(BundleLocation::Local("rel/b1".into())));
    }

    #[test]
    fn http_uris_lose_their_trailing_slash() {
        assert_eq!(
            parse("https://x/b1/"),
            Ok(BundleLocation::Http("https://x/b1".into()))
        );
    }

    #[test]
    fn object_store_uris_split_into_bucket_and_prefix() {
        assert_eq!(
            parse("s3://kan-bundles/ml-100k/dssm/"),
            Ok(object(ObjectScheme::S3, "kan-bundles", "ml-100k/dssm"))
        );
        assert_eq!(parse("gs://b/x"), Ok(object(ObjectScheme::Gcs, "b", "x")));
        assert_eq!(
            parse("az://container/a/b"),
            Ok(object(ObjectScheme::Azure, "container", "a/b"))
        );
        assert_eq!(parse("s3://b"), Ok(object(ObjectScheme::S3, "b", "")));
        assert!(parse("s3://b/x").is_ok_and(|l| l.is_remote()));
        assert!(parse("/x").is_ok_and(|l| !l.is_remote()));
    }

    #[test]
    fn unknown_schemes_missing_buckets_and_dot_segments_are_clear_errors() {
        let e = parse("ftp://host/b1").unwrap_err();
        assert!(
            e.contains("unsupported scheme 'ftp'") && e.contains("s3://"),
            "{e}"
        );
        let e = parse("s3:///b1").unwrap_err();
        assert!(e.contains("without a bucket"), "{e}");
        let e = parse("gs://b/../x").unwrap_err();
        assert!(e.contains("'..'"), "{e}");
        assert_eq!(parse(" "), Err("empty bundle URI".to_string()));
        assert!(parse("file://").is_err());
    }
}
