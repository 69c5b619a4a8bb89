//! `kan bundle pack`, `verify` and `push`: thin wrappers over the trainer's bundle writer and
//! the worker's bundle library (the same manifest rules, encoder contract check, checksum code
//! and downloads the worker uses).

use std::path::PathBuf;

use anyhow::Context;
use kan_api::crd::StrategyType;
use kan_train::pack::{self, PackRequest};
use kan_worker::bundle::{self, BundleLocation, RemoteOptions};

/// Check and publish bundles.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Build a dssm/gat bundle from a model trained elsewhere: an ONNX user encoder, item
    /// vectors (.npy, .safetensors or .parquet), the item id list and, optionally, interactions
    /// for stored histories. Every input and the encoder contract are checked before anything
    /// is written. Needs ONNX Runtime (ORT_DYLIB_PATH or --ort-dylib).
    Pack(PackArgs),
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
pub struct PackArgs {
    /// The ONNX user encoder (history_ids i64[B, L], history_mask f32[B, L] -> user_embedding
    /// f32[B, D]).
    #[arg(long)]
    pub model: PathBuf,
    /// Item vectors [items, D]: .npy (float32/float64), .safetensors or .parquet (a column of
    /// float lists).
    #[arg(long)]
    pub item_vectors: PathBuf,
    /// The safetensors tensor or Parquet column holding the vectors (default: `vectors`, or a
    /// safetensors file's only tensor).
    #[arg(long)]
    pub tensor: Option<String>,
    /// Item ids, one per line; line i is the item of vector row i (and index i in history_ids).
    #[arg(long)]
    pub items: PathBuf,
    /// Interactions (.csv or .parquet: user_id,item_id[,timestamp][,weight]) stored as the
    /// users' histories, used when a request carries none.
    #[arg(long)]
    pub interactions: Option<PathBuf>,
    /// dssm or gat.
    #[arg(long, default_value = "dssm")]
    pub strategy: StrategyType,
    /// The encoder's input length L when the model leaves it dynamic (default 50); a model
    /// with a fixed L uses its own.
    #[arg(long)]
    pub history_length: Option<usize>,
    /// L2-normalise the item vectors instead of refusing vectors that are not.
    #[arg(long)]
    pub normalise: bool,
    /// Dataset name recorded in the manifest (default: the output directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// ONNX Runtime library (default: $ORT_DYLIB_PATH).
    #[arg(long)]
    pub ort_dylib: Option<PathBuf>,
    /// The bundle directory to write (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
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
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")
    };
    match args.command {
        Command::Pack(args) => pack(args),
        Command::Verify(args) => runtime()?.block_on(verify(args)),
        Command::Push(args) => runtime()?.block_on(push(args)),
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

fn pack(args: PackArgs) -> anyhow::Result<()> {
    let req = PackRequest {
        strategy: args.strategy,
        model: args.model,
        vectors: args.item_vectors,
        tensor: args.tensor,
        items: args.items,
        interactions: args.interactions,
        normalise: args.normalise,
        name: args.name,
        out: args.out,
    };
    let inputs = pack::read_inputs(&req)?;
    let env = kan_onnx::environment(args.ort_dylib.as_deref())?;
    let model = kan_onnx::check_model(
        env,
        &req.model,
        inputs.dim,
        inputs.items.len(),
        args.history_length,
    )
    .with_context(|| format!("--model {}", req.model.display()))?;
    if (model.output_norm - 1.0).abs() > pack::NORM_TOLERANCE {
        eprintln!(
            "warning: {} returned a user vector of L2 norm {} on a trial history; the contract asks for 1 (the worker normalises it, so scores stay cosine)",
            req.model.display(),
            model.output_norm
        );
    }
    let manifest = pack::write(&req, &inputs, model.history_length)?;
    println!(
        "{}: packed {} bundle version {}: {} items of dimension {}, history length {}, {} users with stored histories",
        req.out.display(),
        manifest.strategy,
        manifest.version,
        inputs.items.len(),
        inputs.dim,
        model.history_length,
        manifest.dataset.users
    );
    Ok(())
}
