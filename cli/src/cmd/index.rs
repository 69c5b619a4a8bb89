//! `kan index load`: load a bundle's item vectors into Qdrant and point the alias at them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kan_worker::bundle::{Bundle, RemoteOptions, fetch};
use kan_worker::index::qdrant;

/// Manage vector indexes.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Load BUNDLE's item vectors into `<collection>-<version>` (unless already complete, or
    /// another loader holds the lock: then wait), move alias COLLECTION to it atomically and
    /// delete old versions beyond --keep-versions. The API key comes from $QDRANT_API_KEY.
    Load(LoadArgs),
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Bundle directory or URI (path, file://, http(s)://, s3://, gs://, az://).
    pub bundle: String,
    /// Qdrant gRPC URL, e.g. http://localhost:6334.
    #[arg(long)]
    pub qdrant: String,
    /// Alias the workers search (index.qdrant.collection).
    #[arg(long)]
    pub collection: String,
    /// Download directory for remote bundles.
    #[arg(long)]
    pub bundle_cache: Option<PathBuf>,
    /// Timeout of each Qdrant call, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
    /// Complete versions kept afterwards, newest first (index.qdrant.collections.keepVersions);
    /// the alias target and this version are never deleted.
    #[arg(long, default_value_t = 3)]
    pub keep_versions: usize,
    /// Seconds another loader's unchanged heartbeat is trusted before this load takes over
    /// (index.qdrant.collections.leaseSeconds).
    #[arg(long, default_value_t = 60)]
    pub lease_s: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Command::Load(args) = args.command;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(load(args))
}

async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let dir = fetch(
        &args.bundle,
        &RemoteOptions::default(),
        args.bundle_cache.as_deref(),
    )
    .await?;
    let bundle =
        Bundle::load(&dir, None).with_context(|| format!("loading bundle {}", args.bundle))?;
    if !bundle.manifest.strategy.uses_vector_index() {
        anyhow::bail!(
            "bundle strategy {} has no item vectors to index",
            bundle.manifest.strategy
        );
    }
    let (dim, vectors) = bundle.item_vectors()?;
    let client = qdrant::connect(&args.qdrant, Duration::from_secs(args.timeout_s.max(1)))?;
    let lifecycle = qdrant::collections::Lifecycle {
        loader: qdrant::collections::loader_id(),
        lease: Duration::from_secs(args.lease_s.max(1)),
        keep_versions: args.keep_versions.max(1),
        batch: qdrant::UPSERT_BATCH,
        served_grace: qdrant::collections::SERVED_GRACE,
    };
    let report = qdrant::load_bundle(
        &client,
        &args.collection,
        bundle.version(),
        &bundle.items,
        dim,
        &vectors,
        &lifecycle,
    )
    .await?;
    let how = if report.loaded {
        "loaded"
    } else {
        "already complete:"
    };
    println!(
        "{how} {} points in {}; alias {} now points to it",
        report.points, report.collection, report.alias
    );
    for collection in &report.collected {
        println!("deleted old version {collection}");
    }
    Ok(())
}
