//! `kan train`: trains one strategy into a bundle directory.

use std::path::PathBuf;

use kan_api::crd::StrategyType;
use kan_train::data::Format;
use kan_train::split::SplitSpec;
use kan_train::{TrainOptions, TrainRequest};

/// Train a recall strategy from interaction data and write its bundle.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// popular | itemcf | item2vec | social | exploratory | attribute | dssm | gat | spectral |
    /// sequence
    #[arg(long)]
    pub strategy: String,
    /// Dataset directory.
    #[arg(long)]
    pub data: PathBuf,
    /// ml100k (RecBole atomic files) | lightgcn | sociallgn (alias lastfm) | csv (interactions + side tables, each
    /// .csv or .parquet; alias parquet)
    #[arg(long)]
    pub format: String,
    /// Bundle directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// provided[:VALID_FRACTION] | temporal[:N] | random[:TRAIN:VALID] | cold[:ITEM_FRACTION] (items held out entirely, their interactions are test); default: the dataset's
    /// own split, else random 8:1:1.
    #[arg(long)]
    pub split: Option<String>,
    /// Passes over the data (strategy default when omitted).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Embedding dimension.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// User-encoder input length L (most recent history items).
    #[arg(long, default_value_t = 50)]
    pub history_length: usize,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Strategy hyper-parameter KEY=VALUE (repeatable): itemcf alpha, beta, top_n; popular
    /// half_life_days; dssm/gat learning_rate, temperature, weight_decay, patience; spectral rank, ideal_rank,
    /// alpha, power_iterations; sequence learning_rate, temperature, dropout, heads, blocks,
    /// batch, negatives, patience.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let strategy: StrategyType = args.strategy.parse().map_err(anyhow::Error::msg)?;
    // candle runs element-wise ops on a spinning barrier pool of CANDLE_NUM_THREADS threads; on
    // the sequence model's small tensors it tripled an epoch's CPU seconds on a shared 2-core
    // machine (BENCHMARKS.md, "Sequence recall"), so sequence training runs them inline unless
    // the variable says otherwise. Its matrix products keep --threads.
    if strategy == StrategyType::Sequence && std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: `kan train` is single-threaded until here: no pool or runtime exists yet, so
        // nothing reads the environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if let Some(t) = args.threads {
        kan_train::set_threads(t)?;
    }
    let req = TrainRequest {
        strategy,
        data: args.data,
        format: args.format.parse::<Format>()?,
        split: args.split.as_deref().map(SplitSpec::parse).transpose()?,
        out: args.out.clone(),
        opts: TrainOptions {
            epochs: args.epochs,
            dim: args.dim,
            seed: args.seed,
            history_length: args.history_length,
            progress: !args.quiet,
            params: kan_train::HyperParams::parse(&args.params)?,
        },
    };
    let outcome = kan_train::train(&req)?;
    let m = &outcome.manifest;
    println!(
        "{} bundle {} written to {} in {:.1}s ({} users, {} items, {} training interactions)",
        m.strategy,
        m.version,
        args.out.display(),
        outcome.train_seconds,
        m.dataset.users,
        m.dataset.items,
        m.dataset.interactions
    );
    for k in ["recall@20", "ndcg@20", "recall@50", "hit@20", "coverage@20"] {
        if let Some(v) = m.metrics.get(k) {
            println!("  validation {k} = {v:.4}");
        }
    }
    Ok(())
}
