//! `kan train`: data → split → trainer → validation metrics → bundle.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use kan_api::bundle::{BundleManifest, DatasetInfo, files};
use kan_api::crd::StrategyType;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::bundle::{BundleWriter, ManifestInfo, created_now};
use crate::data::{self, Dataset, Format};
use crate::error::{Error, Result};
use crate::history::History;
use crate::metrics::{Accumulator, KS};
use crate::progress::Progress;
use crate::split::{self, Split, SplitSpec};
use crate::strategies::{self, Context, Model, Query, TrainOptions, twotower};

/// Users scored for the manifest's validation metrics (a seeded sample on big data).
pub const VALID_USERS: usize = 3000;

/// Everything `kan train` needs.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub strategy: StrategyType,
    pub data: PathBuf,
    pub format: Format,
    /// None: the dataset's default (its own split, else random 8:1:1).
    pub split: Option<SplitSpec>,
    pub out: PathBuf,
    pub opts: TrainOptions,
}

/// What training produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub manifest: BundleManifest,
    pub train_seconds: f64,
}

/// A dataset with its split and training histories, shared by training and evaluation.
pub struct Prepared {
    pub ds: Dataset,
    pub spec: SplitSpec,
    pub split: Split,
    /// Histories of the training part.
    pub history: History,
}

pub fn prepare(
    data_dir: &std::path::Path,
    format: Format,
    spec: Option<SplitSpec>,
    seed: u64,
) -> Result<Prepared> {
    let ds = data::load(data_dir, format)?;
    let spec = spec.unwrap_or_else(|| SplitSpec::default_for(&ds));
    let split = split::split(&ds, spec, seed)?;
    if split.train.is_empty() {
        return Err(Error::InvalidInput(format!(
            "split {} left no training interactions",
            spec.describe()
        )));
    }
    let history = History::build(&split.train, ds.n_users());
    Ok(Prepared {
        ds,
        spec,
        split,
        history,
    })
}

/// The canonical text of a split spec, as stored in bundle params and parsed back by eval.
pub fn spec_string(spec: SplitSpec) -> String {
    match spec {
        SplitSpec::Provided { valid_fraction } => format!("provided:{valid_fraction}"),
        SplitSpec::Temporal { n } => format!("temporal:{n}"),
        SplitSpec::Random { train, valid } => format!("random:{train}:{valid}"),
        SplitSpec::ColdItems { fraction } => format!("cold:{fraction}"),
    }
}

/// Trains one strategy on prepared data.
pub fn fit(
    p: &Prepared,
    strategy: StrategyType,
    opts: &TrainOptions,
    progress: &Progress,
) -> Result<Box<dyn Model>> {
    let ctx = Context {
        ds: &p.ds,
        split: &p.split,
        history: &p.history,
        opts,
        progress,
    };
    use StrategyType as S;
    let tunable: &[&str] = match strategy {
        S::Popular => strategies::popular::PARAMS,
        S::Itemcf => strategies::itemcf::PARAMS,
        S::Social => strategies::social::PARAMS,
        S::Dssm | S::Gat => twotower::PARAMS,
        S::Attribute => strategies::attribute::PARAMS,
        S::Spectral => strategies::spectral::PARAMS,
        S::Sequence => strategies::sequence::PARAMS,
        _ => &[],
    };
    opts.params.check(&strategy.to_string(), tunable)?;
    Ok(match strategy {
        S::Popular => Box::new(strategies::popular::train(&ctx)?),
        S::Itemcf => Box::new(strategies::itemcf::train(&ctx)?),
        S::Item2vec => Box::new(strategies::item2vec::train(&ctx)?),
        S::Social => Box::new(strategies::social::train(&ctx)?),
        S::Exploratory => Box::new(strategies::exploratory::train(&ctx)?),
        S::Attribute => Box::new(strategies::attribute::train(&ctx)?),
        S::Dssm => Box::new(twotower::train(&ctx, twotower::Kind::Dssm)?),
        S::Gat => Box::new(twotower::train(&ctx, twotower::Kind::Gat)?),
        S::Spectral => Box::new(strategies::spectral::train(&ctx)?),
        S::Sequence => Box::new(strategies::sequence::train(&ctx)?),
        S::Operational => {
            return Err(Error::InvalidInput(
                "operational queues are editor lists written in the RecallQueue spec; there is nothing to train".into(),
            ));
        }
    })
}

/// Validation metrics of a model: held-out validation items of (a sample of) users, ranked
/// over all items with the user's training items excluded.
pub fn validate(
    p: &Prepared,
    model: &dyn strategies::Recaller,
    seed: u64,
) -> Result<BTreeMap<String, f64>> {
    validate_parts(&p.ds, &p.split, &p.history, model, seed)
}

/// [`validate`] over the parts a trainer's [`Context`] holds (for early stopping).
pub fn validate_parts(
    ds: &Dataset,
    split: &Split,
    history: &History,
    model: &dyn strategies::Recaller,
    seed: u64,
) -> Result<BTreeMap<String, f64>> {
    let p = Parts { ds, split, history };
    let mut truth: Vec<Vec<u32>> = vec![Vec::new(); p.ds.n_users()];
    for r in &p.split.valid {
        truth[r.user as usize].push(r.item);
    }
    let mut users: Vec<u32> = (0..p.ds.n_users() as u32)
        .filter(|&u| !truth[u as usize].is_empty())
        .collect();
    if users.is_empty() {
        return Ok(BTreeMap::new());
    }
    users.shuffle(&mut StdRng::seed_from_u64(seed));
    users.truncate(VALID_USERS);
    users.sort_unstable();
    let queries: Vec<Query> = users
        .iter()
        .map(|&u| Query {
            user: Some(u),
            history: p.history.items(u as usize),
            exclude: p.history.items(u as usize),
        })
        .collect();
    let lists = model.recall(&queries, KS[KS.len() - 1])?;
    let mut acc = Accumulator::new(&KS, p.ds.n_items());
    for (u, list) in users.iter().zip(&lists) {
        acc.add(list, &truth[*u as usize].iter().copied().collect());
    }
    Ok(acc.finish())
}

struct Parts<'a> {
    ds: &'a Dataset,
    split: &'a Split,
    history: &'a History,
}

/// `kan train`: trains a strategy and writes its bundle.
pub fn train(req: &TrainRequest) -> Result<TrainOutcome> {
    let progress = Progress::new(req.opts.progress);
    let p = prepare(&req.data, req.format, req.split, req.opts.seed)?;
    let started = Instant::now();
    let model = fit(&p, req.strategy, &req.opts, &progress)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let metrics = validate(&p, model.as_ref(), req.opts.seed)?;

    let mut w = BundleWriter::create(&req.out)?;
    w.lines(files::ITEMS, p.ds.items.ids())?;
    w.lines(files::USERS, p.ds.users.ids())?;
    strategies::write_history(&mut w, &p.history)?;
    if p.ds.item_titles.iter().any(Option::is_some) {
        let titles: Vec<String> =
            p.ds.item_titles
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    t.as_ref().map(|t| {
                        format!(
                            "{}\t{}",
                            p.ds.items.id(i as u32),
                            t.replace(['\t', '\n'], " ")
                        )
                    })
                })
                .collect();
        w.lines(files::TITLES, &titles)?;
    }
    let propensity = crate::propensity::compute(&p.ds, &p.split.train);
    if let Some(lifts) = &propensity {
        crate::propensity::write(&mut w, p.ds.n_items(), lifts)?;
    }
    model.write(&mut w)?;
    let mut params = model.params();
    if let Some(obj) = params.as_object_mut() {
        obj.insert("split".into(), spec_string(p.spec).into());
        obj.insert("seed".into(), req.opts.seed.into());
        obj.insert("dim".into(), req.opts.dim.into());
        obj.insert("train_seconds".into(), train_seconds.into());
        if propensity.is_some() {
            obj.insert(
                "propensity".into(),
                serde_json::json!({
                    "min_support": kan_core::propensity::DEFAULT_MIN_SUPPORT,
                    "shrinkage": kan_core::propensity::DEFAULT_SHRINKAGE,
                    "min_segment_users": crate::propensity::MIN_SEGMENT_USERS,
                }),
            );
        }
    }
    let dataset = DatasetInfo {
        name: p.ds.name.clone(),
        fingerprint: p.ds.fingerprint(),
        users: p.ds.n_users() as u64,
        items: p.ds.n_items() as u64,
        interactions: p.split.train.len() as u64,
    };
    let manifest = w.finish(ManifestInfo {
        strategy: req.strategy,
        dataset,
        params,
        metrics,
        dim: model.dim(),
        created_at: created_now()?,
    })?;
    Ok(TrainOutcome {
        manifest,
        train_seconds,
    })
}
