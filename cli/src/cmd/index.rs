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
    /// Load BUNDLE's item vectors into `<collection>-<version>` and move alias COLLECTION to it
    /// atomically. The API key comes from $QDRANT_API_KEY.
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
    let report = qdrant::load_bundle(
        &client,
        &args.collection,
        bundle.version(),
        &bundle.items,
        dim,
        &vectors,
    )
    .await?;
    println!(
        "loaded {} points into {}; alias {} now points to it",
        report.points, report.collection, report.alias
    );
    Ok(())
}
