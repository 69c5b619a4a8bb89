//! `kan eval`: full-ranking evaluation of bundles (per queue and merged), or per-arm recall
//! of the gateway's exposure log.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use kan_train::EvalRequest;
use kan_train::data::Format;
use kan_train::split::SplitSpec;

/// Evaluate bundles with Recall/NDCG/HitRate@{10,20,50,100,300} and coverage, or exposures per arm.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dataset directory (the one the bundles were trained on).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// ml100k | lightgcn | sociallgn (alias lastfm) | csv
    #[arg(long)]
    pub format: Option<String>,
    /// A queue to evaluate, NAME=BUNDLE_DIR (repeatable).
    #[arg(long = "bundle")]
    pub bundles: Vec<String>,
    /// RecallQueue / RecallGateway YAML files, or a `kan up` directory of them (repeatable):
    /// each RecallQueue is evaluated with its strategy settings and its local bundle (or the
    /// --bundle of the same name); a RecallGateway gives the merge weights, quotas and rrfK.
    #[arg(long = "queues", value_delimiter = ',')]
    pub queues: Vec<PathBuf>,
    /// Lists made by another recommender, NAME=FILE (repeatable): JSON lines
    /// {"user": ID, "items": [ID, ...]}, best first, dataset ids. Scored like the queues (known
    /// items dropped, cut at 300); without --bundle give --split and --seed.
    #[arg(long = "predictions")]
    pub predictions: Vec<String>,
    /// Write the split (train/valid/test.tsv of `user<TAB>item`, split.json) to DIR for a peer
    /// to train on, instead of evaluating.
    #[arg(long)]
    pub dump_split: Option<PathBuf>,
    /// Merge weight of a queue or predictions, NAME=WEIGHT (default 1).
    #[arg(long = "weight")]
    pub weights: Vec<String>,
    /// Merge policies to score over all queues: rrf, weighted-interleave, quota, score
    /// (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "rrf,weighted-interleave,quota"
    )]
    pub merge: Vec<String>,
    /// Split to evaluate on (default: the one recorded in the first bundle).
    #[arg(long)]
    pub split: Option<String>,
    /// Seed of the split (default: the one recorded in the first bundle).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Choose each merge's queue weights for R@20 on the validation part (coordinate ascent,
    /// widened past an edge winner) and score the merge with them; prints the `--weight` flags
    /// to score test with. Needs --validation.
    #[arg(long)]
    pub tune_weights: bool,
    /// Score the validation part instead of test (for choosing hyper-parameters).
    #[arg(long)]
    pub validation: bool,
    /// Evaluate a seeded sample of at most this many users.
    #[arg(long)]
    pub max_users: Option<usize>,
    /// Directory for report.json, report.md and recall.svg.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Exposure log (JSON lines of ExposureRecord) to score per experiment arm.
    #[arg(long, requires = "truth")]
    pub exposures: Option<PathBuf>,
    /// What users engaged with: JSON lines {"user_id": ..., "items": [...]}.
    #[arg(long, requires = "exposures")]
    pub truth: Option<PathBuf>,
    /// Cut-off for exposure recall.
    #[arg(long, default_value_t = 300)]
    pub k: usize,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Score every queue and merge also through a propensity stage whose lift table is this
    /// bundle directory (instead of, or overriding, the RecallGateway's `filters.propensity`).
    #[arg(long)]
    pub propensity_table: Option<PathBuf>,
    /// Context keys of the propensity stage (default: the gateway's, else age_band,region).
    #[arg(long, value_delimiter = ',')]
    pub propensity_keys: Vec<String>,
    /// Boost exponent of the propensity stage (default: the gateway's, else 1).
    #[arg(long)]
    pub propensity_boost: Option<f64>,
    /// minLift of the propensity stage (default: the gateway's, else none).
    #[arg(long)]
    pub propensity_min_lift: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(t) = args.threads {
        kan_train::set_threads(t)?;
    }
    if let (Some(exposures), Some(truth)) = (&args.exposures, &args.truth) {
        let report = kan_train::eval::exposures::evaluate(
            exposures,
            truth,
            args.k,
            args.seed.unwrap_or(42),
        )?;
        print!("{}", report.to_markdown());
        if let Some(out) = &args.out {
            println!("wrote {}", report.write(out)?.display());
        }
        return Ok(());
    }
    let (Some(data), Some(format)) = (args.data.clone(), args.format.clone()) else {
        bail!(
            "give --data DIR --format FORMAT and --bundle NAME=DIR / --predictions NAME=FILE ... (or --exposures FILE --truth FILE)"
        );
    };
    let weights: HashMap<String, f64> = args
        .weights
        .iter()
        .map(|w| {
            let (name, v) = w
                .split_once('=')
                .with_context(|| format!("--weight `{w}`: expected NAME=WEIGHT"))?;
            let v: f64 = v
                .parse()
                .with_context(|| format!("--weight `{w}`: `{v}` is not a number"))?;
            Ok((name.to_string(), v))
        })
        .collect::<anyhow::Result<_>>()?;
    let bundles = args
        .bundles
        .iter()
        .map(|b| {
            let (name, dir) = b
                .split_once('=')
                .with_context(|| format!("--bundle `{b}`: expected NAME=DIR"))?;
            Ok((name.to_string(), PathBuf::from(dir)))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let specs = super::eval_queues::read(&args.queues)?;
    let mut queues = super::eval_queues::queues(&specs, &bundles)?;
    for q in &mut queues {
        if let Some(&w) = weights.get(&q.name) {
            q.weight = w;
        }
    }
    let predictions = args
        .predictions
        .iter()
        .map(|p| {
            let (name, file) = p
                .split_once('=')
                .with_context(|| format!("--predictions `{p}`: expected NAME=FILE"))?;
            Ok(kan_train::eval::PredictionInput {
                name: name.to_string(),
                file: PathBuf::from(file),
                weight: weights.get(name).copied().unwrap_or(1.0),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merges = if queues.len() + predictions.len() < 2 {
        Vec::new()
    } else {
        args.merge
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| kan_train::eval::parse_merge(m))
            .collect::<Result<Vec<_>, _>>()?
    };
    let req = EvalRequest {
        data,
        format: format.parse::<Format>()?,
        split: args.split.as_deref().map(SplitSpec::parse).transpose()?,
        seed: args.seed,
        queues,
        merges,
        rrf_k: specs
            .gateway
            .as_ref()
            .map_or(kan_train::eval::RRF_K, |g| g.merge.rrf_k),
        on_validation: args.validation,
        max_users: args.max_users,
        progress: !args.quiet,
        propensity: propensity_stage(&args, specs.gateway.as_ref())?,
        now: None,
        tune_weights: args.tune_weights,
    };
    if let Some(dir) = &args.dump_split {
        for p in kan_train::eval::dump_split(&req, dir)? {
            println!("wrote {}", p.display());
        }
        return Ok(());
    }
    let report = kan_train::eval::eval_with(&req, &predictions)?;
    print!("{}", report.to_markdown());
    if let Some(out) = &args.out {
        for p in report.write(out)? {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}

/// The propensity stage to score with: the gateway's `filters.propensity`, each `--propensity-*`
/// flag overriding its field; `None` when neither declares a table.
fn propensity_stage(
    args: &Args,
    gateway: Option<&kan_api::crd::RecallGatewaySpec>,
) -> anyhow::Result<Option<kan_api::crd::PropensitySpec>> {
    let declared = gateway.and_then(|g| g.filters.propensity.clone());
    let table = match (&args.propensity_table, &declared) {
        (Some(dir), _) => dir.display().to_string(),
        (None, Some(p)) => p.table.clone(),
        (None, None) => {
            if !args.propensity_keys.is_empty()
                || args.propensity_boost.is_some()
                || args.propensity_min_lift.is_some()
            {
                bail!(
                    "--propensity-keys/-boost/-min-lift need a lift table: --propensity-table DIR or a RecallGateway with filters.propensity"
                );
            }
            return Ok(None);
        }
    };
    let keys = if !args.propensity_keys.is_empty() {
        args.propensity_keys.clone()
    } else if let Some(p) = &declared {
        p.keys.clone()
    } else {
        vec!["age_band".into(), "region".into()]
    };
    let spec = kan_api::crd::PropensitySpec {
        table,
        keys,
        boost: args
            .propensity_boost
            .or(declared.as_ref().map(|p| p.boost))
            .unwrap_or(1.0),
        min_lift: args
            .propensity_min_lift
            .or(declared.as_ref().and_then(|p| p.min_lift)),
    };
    kan_api::validate::propensity(&spec).context("the propensity stage")?;
    Ok(Some(spec))
}
