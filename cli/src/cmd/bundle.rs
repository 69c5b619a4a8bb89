//! `kan bundle verify` and `kan bundle push`: thin wrappers over the worker's bundle library
//! (the same manifest rules, checksum code and downloads the worker uses).

use std::path::PathBuf;

use anyhow::Context;
use kan_worker::bundle::{self, BundleLocation, RemoteOptions};

/// Check and publish bundles.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Check a bundle's manifest and every file's sha256. A remote bundle (http(s)://, s3://,
    /// gs://, az://) is downloaded into a temporary directory exactly as a worker would.
    Verify(VerifyArgs),
    /// Upload the bundle in DIR to URI (s3://, gs:// or az://) after verifying it: every file
    /// first, the manifest last, so readers never see a manifest whose files are missing.
    Push(PushArgs),
}

/// Where remote bundles are, beyond the environment (AWS_*, GOOGLE_*, AZURE_* variables).
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// Endpoint of an S3-compatible server (MinIO), e.g. http://localhost:9000; overrides
    /// $AWS_ENDPOINT_URL.
    #[arg(long)]
    pub endpoint: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Bundle directory or URI.
    pub bundle: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Local bundle directory.
    pub dir: PathBuf,
    /// Destination: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX.
    pub uri: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl StoreArgs {
    fn options(&self) -> RemoteOptions {
        RemoteOptions {
            endpoint: self.endpoint.clone(),
            settings: Vec::new(),
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match args.command {
        Command::Verify(args) => runtime.block_on(verify(args)),
        Command::Push(args) => runtime.block_on(push(args)),
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let location = bundle::parse_uri(&args.bundle)?;
    let manifest = match location {
        BundleLocation::Local(dir) => {
            let manifest = bundle::read_manifest(&dir)?;
            bundle::verify_files(&dir, &manifest)?;
            manifest
        }
        remote => {
            let scratch = tempfile::tempdir().context("creating a download directory")?;
            let remote = bundle::Remote::open(&args.bundle, &remote, &args.store.options())?;
            // The download checks every sha256 while streaming and refuses a changing bundle.
            let dir = bundle::download(&remote, scratch.path()).await?;
            bundle::read_manifest(&dir)?
        }
    };
    println!(
        "{}: ok: {} bundle version {}, {} files verified",
        args.bundle,
        manifest.strategy,
        manifest.version,
        manifest.files.len()
    );
    Ok(())
}

async fn push(args: PushArgs) -> anyhow::Result<()> {
    let manifest = bundle::push(&args.dir, &args.uri, &args.store.options())
        .await
        .with_context(|| format!("pushing {} to {}", args.dir.display(), args.uri))?;
    println!(
        "{}: pushed {} bundle version {} ({} files and the manifest)",
        args.uri,
        manifest.strategy,
        manifest.version,
        manifest.files.len()
    );
    Ok(())
}
