//! `kan eval`: full-ranking evaluation of bundles, one by one and merged as the gateway would.

pub mod exposures;
pub mod merge;
pub mod predictions;
pub mod report;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::bundle::BundleDir;
use crate::data::Format;
use crate::error::{Error, Result};
use crate::metrics::{Accumulator, KS};
use crate::pipeline::{Prepared, prepare};
use crate::progress::Progress;
use crate::split::SplitSpec;
use crate::strategies::{self, Query};
use merge::Ranked;
pub use predictions::PredictionInput;
pub use report::{EvalReport, Row};

/// Length of every queue's list and of merged lists (the largest cut-off).
pub const LIST_LENGTH: usize = 300;
/// The `k` of reciprocal rank fusion.
pub const RRF_K: f64 = 60.0;

/// Merge policies `kan eval` can apply to the queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergePolicy {
    Rrf,
    WeightedInterleave,
    Quota,
}

impl MergePolicy {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "rrf" => Ok(MergePolicy::Rrf),
            "weighted-interleave" => Ok(MergePolicy::WeightedInterleave),
            "quota" => Ok(MergePolicy::Quota),
            other => Err(Error::InvalidInput(format!(
                "unknown merge `{other}`: use rrf, weighted-interleave or quota"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MergePolicy::Rrf => "rrf",
            MergePolicy::WeightedInterleave => "weighted-interleave",
            MergePolicy::Quota => "quota",
        }
    }
}

/// One queue to evaluate.
#[derive(Clone, Debug)]
pub struct QueueInput {
    pub name: String,
    pub bundle: PathBuf,
    /// Merge weight (RRF, interleave); quota is proportional to it.
    pub weight: f64,
}

/// Everything `kan eval` needs.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    pub data: PathBuf,
    pub format: Format,
    /// None: taken from the first bundle's params (the split it was trained with).
    pub split: Option<SplitSpec>,
    /// None: taken from the first bundle's params.
    pub seed: Option<u64>,
    pub queues: Vec<QueueInput>,
    pub merges: Vec<MergePolicy>,
    /// Evaluate on the validation part instead of test (for choosing hyper-parameters).
    pub on_validation: bool,
    /// Evaluate at most this many users (seeded sample); None = all.
    pub max_users: Option<usize>,
    pub progress: bool,
}

/// Maps indices between a bundle's id lists and the evaluation dataset's.
struct Mapping {
    identity: bool,
    item_to_bundle: Vec<Option<u32>>,
    item_from_bundle: Vec<Option<u32>>,
    user_to_bundle: Vec<Option<u32>>,
}

impl Mapping {
    fn new(b: &BundleDir, p: &Prepared) -> Result<Self> {
        use kan_api::bundle::files;
        let items = b.lines(files::ITEMS)?;
        let users = if b.has(files::USERS) {
            b.lines(files::USERS)?
        } else {
            Vec::new()
        };
        let identity = items.as_slice() == p.ds.items.ids() && users.as_slice() == p.ds.users.ids();
        let bundle_items = crate::data::IdMap::from_ids(items.clone());
        let bundle_users = crate::data::IdMap::from_ids(users);
        Ok(Mapping {
            identity,
            item_to_bundle: p
                .ds
                .items
                .ids()
                .iter()
                .map(|id| bundle_items.get(id))
                .collect(),
            item_from_bundle: items.iter().map(|id| p.ds.items.get(id)).collect(),
            user_to_bundle: p
                .ds
                .users
                .ids()
                .iter()
                .map(|id| bundle_users.get(id))
                .collect(),
        })
    }

    fn items_in(&self, items: &[u32]) -> Vec<u32> {
        items
            .iter()
            .filter_map(|&i| self.item_to_bundle[i as usize])
            .collect()
    }
}

/// Runs one bundle over the evaluation queries; lists are in dataset item indices.
fn run_queue(
    b: &BundleDir,
    p: &Prepared,
    users: &[u32],
    histories: &[Vec<u32>],
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    let model = strategies::load(b)?;
    let map = Mapping::new(b, p)?;
    if map.identity {
        let queries: Vec<Query> = users
            .iter()
            .zip(histories)
            .map(|(&u, h)| Query {
                user: Some(u),
                history: h,
                exclude: h,
            })
            .collect();
        return model.recall(&queries, k);
    }
    let translated: Vec<Vec<u32>> = histories.iter().map(|h| map.items_in(h)).collect();
    let queries: Vec<Query> = users
        .iter()
        .zip(&translated)
        .map(|(&u, h)| Query {
            user: map.user_to_bundle[u as usize],
            history: h,
            exclude: h,
        })
        .collect();
    let lists = model.recall(&queries, k)?;
    Ok(lists
        .into_iter()
        .map(|l| {
            l.into_iter()
                .filter_map(|i| map.item_from_bundle[i as usize])
                .collect()
        })
        .collect())
}

fn score(lists: &[Vec<u32>], truth: &[HashSet<u32>], n_items: usize) -> BTreeMap<String, f64> {
    lists
        .par_iter()
        .zip(truth)
        .fold(
            || Accumulator::new(&KS, n_items),
            |mut acc, (l, t)| {
                acc.add(l, t);
                acc
            },
        )
        .reduce(
            || Accumulator::new(&KS, n_items),
            |mut a, b| {
                a.merge(b);
                a
            },
        )
        .finish()
}

/// The split and seed to evaluate on: given ones win, else the first bundle's. Without a
/// bundle nothing records them, so both must be given.
fn split_and_seed(req: &EvalRequest, bundles: &[BundleDir]) -> Result<(SplitSpec, u64)> {
    let Some(first) = bundles.first() else {
        return match (req.split, req.seed) {
            (Some(s), Some(seed)) => Ok((s, seed)),
            _ => Err(Error::InvalidInput(
                "without --bundle nothing records the split: pass --split and --seed (those the predictions were made for)".into(),
            )),
        };
    };
    let params = &first.manifest.params;
    let spec = match req.split {
        Some(s) => s,
        None => match params["split"].as_str() {
            Some(s) => SplitSpec::parse(s)?,
            None => {
                return Err(Error::InvalidInput(
                    "the first bundle does not record its split: pass --split".into(),
                ));
            }
        },
    };
    let seed = req.seed.or_else(|| params["seed"].as_u64()).unwrap_or(42);
    Ok((spec, seed))
}

fn open_bundles(req: &EvalRequest) -> Result<Vec<BundleDir>> {
    req.queues
        .iter()
        .map(|q| BundleDir::open(&q.bundle))
        .collect()
}

/// `kan eval --dump-split DIR`: writes the split the bundles (or `--split`/`--seed`) define,
/// for peers to train on exactly what the queues trained on.
pub fn dump_split(req: &EvalRequest, dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let (spec, seed) = split_and_seed(req, &open_bundles(req)?)?;
    let p = prepare(&req.data, req.format, Some(spec), seed)?;
    predictions::write_split(&p, seed, dir)
}

/// `kan eval`: scores every queue and every requested merge of them.
pub fn eval(req: &EvalRequest) -> Result<EvalReport> {
    eval_with(req, &[])
}

/// [`eval`] plus externally produced lists, scored like queues and merged like them.
pub fn eval_with(req: &EvalRequest, predictions: &[PredictionInput]) -> Result<EvalReport> {
    if req.queues.is_empty() && predictions.is_empty() {
        return Err(Error::InvalidInput(
            "give at least one --bundle NAME=DIR or --predictions NAME=FILE to evaluate".into(),
        ));
    }
    let bundles = open_bundles(req)?;
    let (spec, seed) = split_and_seed(req, &bundles)?;
    let p = prepare(&req.data, req.format, Some(spec), seed)?;
    let mut warnings = Vec::new();
    for (q, b) in req.queues.iter().zip(&bundles) {
        if b.manifest.dataset.fingerprint != p.ds.fingerprint() {
            warnings.push(format!(
                "{}: trained on different data than {} (fingerprints differ)",
                q.name, p.ds.name
            ));
        }
        if b.manifest.params["split"].as_str() != Some(crate::pipeline::spec_string(spec).as_str())
            || b.manifest.params["seed"].as_u64() != Some(seed)
        {
            warnings.push(format!("{}: trained with another split or seed; held-out items may have been seen in training", q.name));
        }
    }

    // Held-out items per user; the user's known history is everything not held out.
    let (held_out, known) = if req.on_validation {
        (&p.split.valid, vec![&p.split.train])
    } else {
        (&p.split.test, vec![&p.split.train, &p.split.valid])
    };
    let mut truth_of: Vec<HashSet<u32>> = vec![HashSet::new(); p.ds.n_users()];
    for r in held_out {
        truth_of[r.user as usize].insert(r.item);
    }
    let known_rows: Vec<_> = known.into_iter().flatten().copied().collect();
    let known_hist = crate::history::History::build(&known_rows, p.ds.n_users());
    let mut users: Vec<u32> = (0..p.ds.n_users() as u32)
        .filter(|&u| !truth_of[u as usize].is_empty())
        .collect();
    if let Some(max) = req.max_users {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        users.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        users.truncate(max);
        users.sort_unstable();
    }
    let histories: Vec<Vec<u32>> = users
        .iter()
        .map(|&u| known_hist.items(u as usize).to_vec())
        .collect();
    let truth: Vec<HashSet<u32>> = users
        .iter()
        .map(|&u| truth_of[u as usize].clone())
        .collect();

    let progress = Progress::new(req.progress);
    let pb = progress.bar(
        (req.queues.len() + predictions.len() + req.merges.len()) as u64,
        "eval",
    );
    let mut rows = Vec::new();
    let mut lists = Vec::new();
    for (q, b) in req.queues.iter().zip(&bundles) {
        let l = run_queue(b, &p, &users, &histories, LIST_LENGTH)?;
        rows.push(Row {
            name: q.name.clone(),
            kind: "queue".into(),
            strategy: b.manifest.strategy.to_string(),
            metrics: score(&l, &truth, p.ds.n_items()),
        });
        lists.push(l);
        pb.inc(1);
    }
    for input in predictions {
        let l =
            predictions::load_lists(input, &p.ds, &users, &histories, LIST_LENGTH, &mut warnings)?;
        rows.push(Row {
            name: input.name.clone(),
            kind: "predictions".into(),
            strategy: "external".into(),
            metrics: score(&l, &truth, p.ds.n_items()),
        });
        lists.push(l);
        pb.inc(1);
    }
    // Every list in `lists` order: queues, then predictions.
    let sources: Vec<(&str, f64)> = req
        .queues
        .iter()
        .map(|q| (q.name.as_str(), q.weight))
        .chain(predictions.iter().map(|x| (x.name.as_str(), x.weight)))
        .collect();
    let total_weight: f64 = sources
        .iter()
        .map(|s| s.1)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    for &policy in &req.merges {
        let merged: Vec<Vec<u32>> = (0..users.len())
            .into_par_iter()
            .map(|n| {
                let ranked: Vec<Ranked> = sources
                    .iter()
                    .zip(&lists)
                    .map(|(&(_, weight), l)| Ranked {
                        weight,
                        quota: ((weight / total_weight) * LIST_LENGTH as f64).round() as usize,
                        items: &l[n],
                    })
                    .collect();
                match policy {
                    MergePolicy::Rrf => merge::rrf(&ranked, RRF_K, LIST_LENGTH),
                    MergePolicy::WeightedInterleave => {
                        merge::weighted_interleave(&ranked, LIST_LENGTH)
                    }
                    MergePolicy::Quota => merge::quota(&ranked, LIST_LENGTH),
                }
            })
            .collect();
        let names: Vec<&str> = sources.iter().map(|s| s.0).collect();
        rows.push(Row {
            name: format!("merge:{}({})", policy.as_str(), names.join("+")),
            kind: "merge".into(),
            strategy: policy.as_str().into(),
            metrics: score(&merged, &truth, p.ds.n_items()),
        });
        pb.inc(1);
    }
    pb.finish();
    Ok(EvalReport {
        dataset: p.ds.name.clone(),
        split: spec.describe(),
        part: if req.on_validation {
            "validation".into()
        } else {
            "test".into()
        },
        seed,
        users: users.len(),
        items: p.ds.n_items(),
        ks: KS.to_vec(),
        rows,
        warnings,
    })
}
