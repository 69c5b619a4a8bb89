//! Reading and writing the files of a remote bundle: `http(s)://` through reqwest, `s3://`,
//! `gs://` and `az://` through `object_store`. Credentials come from the environment (which the
//! operator fills from `bundle.credentialsSecretRef`) or the pod's workload identity; `settings`
//! layered on top are for the CLI and tests.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use kan_api::bundle_uri::{BundleLocation, ObjectScheme};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, RetryConfig};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// How to reach remote bundles, beyond what the environment says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Endpoint of an S3-compatible server (`bundle.endpoint`); overrides `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// `object_store` configuration keys and values (e.g. `aws_access_key_id`), applied over the
    /// environment.
    pub settings: Vec<(String, String)>,
}

enum Source {
    Http {
        client: reqwest::Client,
        base: String,
    },
    Store {
        store: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// A remote bundle location, ready to read or write files by their bundle-relative names.
pub struct Remote {
    uri: String,
    source: Source,
}

/// A stream of a file's bytes.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

impl Remote {
    /// Opens `location` (parsed from `uri`). Local locations are not remote: an error.
    pub fn open(uri: &str, location: &BundleLocation, options: &RemoteOptions) -> Result<Self> {
        let fetch_err = |message: String| Error::Fetch {
            uri: uri.to_string(),
            message,
        };
        let source = match location {
            BundleLocation::Local(_) => {
                return Err(fetch_err("a local path is not a remote bundle".into()));
            }
            BundleLocation::Http(base) => Source::Http {
                client: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(600))
                    .build()
                    .map_err(|e| fetch_err(e.to_string()))?,
                base: base.clone(),
            },
            BundleLocation::Object {
                scheme,
                bucket,
                prefix,
            } => Source::Store {
                store: object_store(*scheme, bucket, options).map_err(fetch_err)?,
                prefix: prefix.clone(),
            },
        };
        Ok(Self {
            uri: uri.to_string(),
            source,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn error(&self, message: String) -> Error {
        Error::Fetch {
            uri: self.uri.clone(),
            message,
        }
    }

    fn object_path(prefix: &str, name: &str) -> ObjectPath {
        if prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{prefix}/{name}"))
        }
    }

    /// Streams the file `name` of the bundle.
    pub async fn get(&self, name: &str) -> Result<ByteStream> {
        match &self.source {
            Source::Http { client, base } => {
                let url = format!("{base}/{name}");
                let resp = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| self.error(format!("GET {url}: {e}")))?;
                if !resp.status().is_success() {
                    return Err(self.error(format!("GET {url}: HTTP {}", resp.status())));
                }
                let uri = self.uri.clone();
                Ok(stream::try_unfold(resp, move |mut resp| {
                    let uri = uri.clone();
                    let url = url.clone();
                    async move {
                        match resp.chunk().await {
                            Ok(Some(chunk)) => Ok(Some((chunk, resp))),
                            Ok(None) => Ok(None),
                            Err(e) => Err(Error::Fetch {
                                uri,
                                message: format!("GET {url}: {e}"),
                            }),
                        }
                    }
                })
                .boxed())
            }
            Source::Store { store, prefix } => {
                let path = Self::object_path(prefix, name);
                // The trait method (a boxed `Send` future), so the worker's reload task may hold it.
                let got = store
                    .get_opts(&path, GetOptions::default())
                    .await
                    .map_err(|e| self.error(describe(name, &e)))?;
                let uri = self.uri.clone();
                let name = name.to_string();
                Ok(got
                    .into_stream()
                    .map_err(move |e| Error::Fetch {
                        uri: uri.clone(),
                        message: describe(&name, &e),
                    })
                    .boxed())
            }
        }
    }

    /// Reads the whole file `name` (for the manifest).
    pub async fn get_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunks = self.get(name).await?;
        while let Some(chunk) = chunks.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Uploads the local file `path` as the bundle file `name` (object stores only), in parts so
    /// large embedding files are never held in memory whole.
    pub async fn put_file(&self, name: &str, path: &FsPath) -> Result<()> {
        let Source::Store { store, prefix } = &self.source else {
            return Err(self.error(
                "uploading needs an object store URI (s3://, gs:// or az://); copy files to an http server with its own tools".into(),
            ));
        };
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(path, e))?;
        let mut writer =
            object_store::buffered::BufWriter::new(store.clone(), Self::object_path(prefix, name));
        let copied = tokio::io::copy(&mut file, &mut writer).await;
        let closed = match copied {
            Ok(_) => writer.shutdown().await,
            Err(e) => {
                // Abandon the multipart upload rather than leave parts behind.
                let _ = writer.abort().await;
                Err(e)
            }
        };
        closed.map_err(|e| self.error(format!("uploading {name}: {e}")))
    }
}

/// One line for an object store error, naming the file and saying what to check.
fn describe(name: &str, e: &object_store::Error) -> String {
    match e {
        object_store::Error::NotFound { path, .. } => {
            format!("{name}: object {path} not found (is the URI the bundle's directory?)")
        }
        object_store::Error::PermissionDenied { source, .. }
        | object_store::Error::Unauthenticated { source, .. } => format!(
            "{name}: access denied: check the credentials (bundle.credentialsSecretRef or the pod's identity) and their permissions on the bucket: {source}"
        ),
        other => format!("{name}: {other}"),
    }
}

/// Bounded retries: a worker that cannot reach its bundle says so within a minute.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    }
}

fn object_store(
    scheme: ObjectScheme,
    bucket: &str,
    options: &RemoteOptions,
) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let setting_err = |key: &str, e: object_store::Error| format!("setting {key}: {e}");
    match scheme {
        ObjectScheme::S3 => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry());
            for (key, value) in &options.settings {
                let key_parsed: AmazonS3ConfigKey = key.parse().map_err(|e| setting_err(key, e))?;
                builder = builder.with_config(key_parsed, value);
            }
            if let Some(endpoint) = &options.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            // MinIO inside a cluster is often plain http; an endpoint the user chose may be.
            let plain_http = builder
                .get_config_value(&AmazonS3ConfigKey::Endpoint)
                .is_some_and(|e| e.starts_with("http://"));
            if plain_http {
                builder = builder.with_allow_http(true);
            }
            builder
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| e.to_string())
        }
        ObjectScheme::Gcs => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry());
            for (key, value) in &options.settings {
                let key_parsed: GoogleConfigKey = key.parse().map_err(|e| setting_err(key, e))?;
                builder = builder.with_config(key_parsed, value);
            }
            builder
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| e.to_string())
        }
        ObjectScheme::Azure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_retry(retry());
            for (key, value) in &options.settings {
                let key_parsed: AzureConfigKey = key.parse().map_err(|e| setting_err(key, e))?;
                builder = builder.with_config(key_parsed, value);
            }
            builder
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                .map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_object_store_setting_is_refused_by_name() {
        let location = kan_api::bundle_uri::parse("s3://b/x").unwrap();
        let options = RemoteOptions {
            endpoint: None,
            settings: vec![("aws_no_such_key".into(), "1".into())],
        };
        let e = Remote::open("s3://b/x", &location, &options)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("setting aws_no_such_key"), "{e}");
    }

    #[test]
    fn object_paths_join_the_prefix_and_the_file_name() {
        assert_eq!(
            Remote::object_path("a/b", "manifest.json").as_ref(),
            "a/b/manifest.json"
        );
        assert_eq!(Remote::object_path("", "items.txt").as_ref(), "items.txt");
    }
}
