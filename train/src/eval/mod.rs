//! `kan eval`: full-ranking evaluation of bundles, one by one and merged by the gateway's merge
//! code (`kan_core::merge`). Queues recall with the core's kernels and the queue's settings (a
//! RecallQueue's `strategy`, or the CRD defaults), so the lists scored are the lists served.

pub mod exposures;
pub mod predictions;
pub mod report;
pub mod tune;

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
pub use predictions::PredictionInput;
pub use report::{EvalReport, Row, SegmentRow, TunedMerge};

/// Length of every queue's list and of merged lists (the largest cut-off).
pub const LIST_LENGTH: usize = 300;
/// The `k` of reciprocal rank fusion.
pub const RRF_K: f64 = kan_api::crd::DEFAULT_RRF_K;

/// The gateway's merge policies (`score` needs queue scores, which `kan eval`'s lists lack).
pub use kan_api::crd::MergePolicy;

/// A merge policy by name: rrf, weighted-interleave or quota.
pub fn parse_merge(s: &str) -> Result<MergePolicy> {
    s.parse().map_err(Error::InvalidInput)
}

/// One queue to evaluate.
#[derive(Clone, Debug)]
pub struct QueueInput {
    pub name: String,
    pub bundle: PathBuf,
    /// Merge weight (RRF, interleave).
    pub weight: f64,
    /// Quota of the `quota` merge; None: proportional to the weight.
    pub quota: Option<usize>,
    /// The queue's strategy settings (a RecallQueue's `spec.strategy`); None: CRD defaults.
    pub strategy: Option<kan_api::crd::Strategy>,
}

impl QueueInput {
    /// A queue with weight 1, no quota and the default settings of its strategy.
    pub fn new(name: impl Into<String>, bundle: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            bundle: bundle.into(),
            weight: 1.0,
            quota: None,
            strategy: None,
        }
    }
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
    /// The `k` of reciprocal rank fusion (a RecallGateway's `merge.rrfK`).
    pub rrf_k: f64,
    /// Evaluate on the validation part instead of test (for choosing hyper-parameters).
    pub on_validation: bool,
    /// Evaluate at most this many users (seeded sample); None = all.
    pub max_users: Option<usize>,
    pub progress: bool,
    /// A gateway's propensity stage (a RecallGateway's `filters.propensity`, its `table`
    /// resolved): every queue and merge is also scored with it, each user's context taken from
    /// the dataset's user attributes, and R@20 is reported per audience segment.
    pub propensity: Option<kan_api::crd::PropensitySpec>,
    /// The clock (unix seconds) exploratory queues draw for: online their draws change each
    /// UTC day. None: each bundle's reference time, so a figure is reproducible.
    pub now: Option<i64>,
    /// Choose every merge's weights for R@20 on the validation part ([`tune`]) and score the
    /// merge with them too. Only with `on_validation`: weights chosen on test would be peeking.
    pub tune_weights: bool,
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

/// Runs one bundle over the evaluation queries, keeping `LIST_LENGTH` items; lists are in
/// dataset item indices.
/// `excluded`: items no list may hold besides each user's history (the warm items of a
/// cold-item split, so queues rank only the held-out items).
fn run_queue(
    q: &QueueInput,
    b: &BundleDir,
    p: &Prepared,
    users: &[u32],
    histories: &[Vec<u32>],
    excluded: &[u32],
    now: Option<i64>,
) -> Result<Vec<Vec<u32>>> {
    let k = LIST_LENGTH;
    let model = strategies::load(b, q.strategy.as_ref(), now)?;
    let map = Mapping::new(b, p)?;
    let with_excluded =
        |h: &[u32], extra: &[u32]| -> Vec<u32> { h.iter().chain(extra).copied().collect() };
    if map.identity {
        let excludes: Vec<Vec<u32>> = histories
            .iter()
            .map(|h| with_excluded(h, excluded))
            .collect();
        let queries: Vec<Query> = users
            .iter()
            .zip(histories)
            .zip(&excludes)
            .map(|((&u, h), e)| Query {
                user: Some(u),
                history: h,
                exclude: e,
            })
            .collect();
        return model.recall(&queries, k);
    }
    let translated: Vec<Vec<u32>> = histories.iter().map(|h| map.items_in(h)).collect();
    let extra = map.items_in(excluded);
    let excludes: Vec<Vec<u32>> = translated
        .iter()
        .map(|h| with_excluded(h, &extra))
        .collect();
    let queries: Vec<Query> = users
        .iter()
        .zip(&translated)
        .zip(&excludes)
        .map(|((&u, h), e)| Query {
            user: map.user_to_bundle[u as usize],
            history: h,
            exclude: e,
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
        .map(|q| crate::bundle::open(&q.bundle))
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
    evaluate(req, predictions, false).map(|(report, _)| report)
}

/// Every list [`eval`] scores, in dataset ids: per evaluated user, their known history (most
/// recent first, what a caller would send as `history`), each queue's list and each merge's.
#[derive(Debug, Clone, Default)]
pub struct EvalLists {
    pub users: Vec<String>,
    pub histories: Vec<Vec<String>>,
    /// (queue name, one list per user).
    pub queues: Vec<(String, Vec<Vec<String>>)>,
    /// (policy, one list per user).
    pub merges: Vec<(MergePolicy, Vec<Vec<String>>)>,
}

/// [`eval`], also returning the lists it scored (for parity checks against the serving path).
pub fn eval_keeping_lists(req: &EvalRequest) -> Result<(EvalReport, EvalLists)> {
    let (report, lists) = evaluate(req, &[], true)?;
    Ok((report, lists.unwrap_or_default()))
}

fn evaluate(
    req: &EvalRequest,
    predictions: &[PredictionInput],
    keep_lists: bool,
) -> Result<(EvalReport, Option<EvalLists>)> {
    if req.queues.is_empty() && predictions.is_empty() {
        return Err(Error::InvalidInput(
            "give at least one --bundle NAME=DIR or --predictions NAME=FILE to evaluate".into(),
        ));
    }
    if req.tune_weights && !req.on_validation {
        return Err(Error::InvalidInput(
            "--tune-weights chooses merge weights on the validation part: add --validation, then score test with the --weight flags it prints".into(),
        ));
    }
    let bundles = open_bundles(req)?;
    // Bundles that need ONNX Runtime fail now, not after minutes of scoring the others.
    if bundles
        .iter()
        .any(|b| strategies::needs_onnx_runtime(b.manifest.strategy))
    {
        kan_onnx::environment(None)?;
    }
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
    // A cold-item split scores recall of the held-out items among themselves: every item seen
    // in training or validation is excluded from every list, so a queue that only knows items
    // through interactions has nothing to return.
    let warm: Vec<u32> = if matches!(spec, SplitSpec::ColdItems { .. }) && !req.on_validation {
        let mut seen = vec![false; p.ds.n_items()];
        for r in p.split.train.iter().chain(&p.split.valid) {
            seen[r.item as usize] = true;
        }
        (0..p.ds.n_items() as u32)
            .filter(|&i| seen[i as usize])
            .collect()
    } else {
        Vec::new()
    };
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
    let ids = |l: &[u32]| -> Vec<String> {
        l.iter()
            .filter_map(|&i| p.ds.items.ids().get(i as usize).cloned())
            .collect()
    };
    let mut kept = keep_lists.then(|| EvalLists {
        users: users
            .iter()
            .filter_map(|&u| p.ds.users.ids().get(u as usize).cloned())
            .collect(),
        histories: histories.iter().map(|h| ids(h)).collect(),
        ..EvalLists::default()
    });
    let mut rows = Vec::new();
    let mut lists = Vec::new();
    let table = req
        .propensity
        .as_ref()
        .map(|spec| load_propensity_table(std::path::Path::new(&spec.table)))
        .transpose()?;
    let contexts = crate::propensity::user_contexts(&p.ds);
    let user_contexts: Vec<&BTreeMap<String, String>> =
        users.iter().map(|&u| &contexts[u as usize]).collect();
    let stages = req
        .propensity
        .as_ref()
        .zip(table.as_ref())
        .map(|(spec, table)| Stages {
            spec,
            table,
            contexts: &user_contexts,
        });
    let mut boosted_pairs: Vec<BoostedPair> = Vec::new();
    for (q, b) in req.queues.iter().zip(&bundles) {
        let l = run_queue(q, b, &p, &users, &histories, &warm, req.now)?;
        rows.push(Row {
            name: q.name.clone(),
            kind: "queue".into(),
            strategy: b.manifest.strategy.to_string(),
            metrics: score(&l, &truth, p.ds.n_items()),
        });
        if let Some(k) = kept.as_mut() {
            k.queues
                .push((q.name.clone(), l.iter().map(|l| ids(l)).collect()));
        }
        if let Some(stage) = &stages {
            // A gateway routing this one queue: rrf over one list, then the stage.
            let spec = kan_api::crd::MergeSpec {
                policy: MergePolicy::Rrf,
                total: LIST_LENGTH as i32,
                rrf_k: req.rrf_k,
            };
            let route = [Route {
                name: &q.name,
                weight: 1.0,
                quota: LIST_LENGTH,
            }];
            let boosted: Vec<Vec<u32>> = (0..users.len())
                .into_par_iter()
                .map(|n| {
                    merge_lists(
                        &spec,
                        &route,
                        &[l[n].as_slice()],
                        p.ds.items.ids(),
                        LIST_LENGTH,
                        stage.for_user(n).as_ref(),
                    )
                })
                .collect();
            rows.push(Row {
                name: format!("{}+propensity", q.name),
                kind: "queue+propensity".into(),
                strategy: b.manifest.strategy.to_string(),
                metrics: score(&boosted, &truth, p.ds.n_items()),
            });
            boosted_pairs.push((q.name.clone(), l.clone(), boosted));
        }
        lists.push(l);
        pb.inc(1);
    }
    for input in predictions {
        let mut l =
            predictions::load_lists(input, &p.ds, &users, &histories, LIST_LENGTH, &mut warnings)?;
        if !warm.is_empty() {
            let is_warm: HashSet<u32> = warm.iter().copied().collect();
            for list in &mut l {
                list.retain(|i| !is_warm.contains(i));
            }
        }
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
    let sources: Vec<(&str, f64, Option<usize>)> = req
        .queues
        .iter()
        .map(|q| (q.name.as_str(), q.weight, q.quota))
        .chain(
            predictions
                .iter()
                .map(|x| (x.name.as_str(), x.weight, None)),
        )
        .collect();
    let weights: Vec<f64> = sources.iter().map(|s| s.1).collect();
    let routes = routes_with(&sources, &weights);
    let mut tuned = Vec::new();
    for &policy in &req.merges {
        let spec = kan_api::crd::MergeSpec {
            policy,
            total: LIST_LENGTH as i32,
            rrf_k: req.rrf_k,
        };
        // Every user's merged list under `routes`, cut at `total`, through the propensity stage
        // when `stages` is given.
        let merge_all =
            |routes: &[Route], total: usize, stages: Option<&Stages>| -> Vec<Vec<u32>> {
                (0..users.len())
                    .into_par_iter()
                    .map(|n| {
                        let per_queue: Vec<&[u32]> =
                            lists.iter().map(|l| l[n].as_slice()).collect();
                        merge_lists(
                            &spec,
                            routes,
                            &per_queue,
                            p.ds.items.ids(),
                            total,
                            stages.and_then(|s| s.for_user(n)).as_ref(),
                        )
                    })
                    .collect()
            };
        let merged = merge_all(&routes, LIST_LENGTH, None);
        let names: Vec<&str> = sources.iter().map(|s| s.0).collect();
        let name = format!("merge:{}({})", policy.as_str(), names.join("+"));
        if req.tune_weights {
            let recall_20 = |weights: &[f64]| -> f64 {
                let lists = merge_all(&routes_with(&sources, weights), TUNE_K, None);
                let sum: f64 = lists
                    .iter()
                    .zip(&truth)
                    .map(|(l, t)| crate::metrics::recall_at(l, t, TUNE_K))
                    .sum();
                sum / users.len().max(1) as f64
            };
            let search = tune::coordinate_ascent(&weights, recall_20);
            let merged = merge_all(&routes_with(&sources, &search.weights), LIST_LENGTH, None);
            rows.push(Row {
                name: format!("merge:{}(tuned)", policy.as_str()),
                kind: "merge".into(),
                strategy: policy.as_str().into(),
                metrics: score(&merged, &truth, p.ds.n_items()),
            });
            tuned.push(TunedMerge {
                policy: policy.as_str().into(),
                weights: names
                    .iter()
                    .map(|n| n.to_string())
                    .zip(search.weights.iter().copied())
                    .collect(),
                recall_20: search.value,
                initial_recall_20: search.initial_value,
                evaluations: search.evaluations,
            });
        }
        rows.push(Row {
            name: name.clone(),
            kind: "merge".into(),
            strategy: policy.as_str().into(),
            metrics: score(&merged, &truth, p.ds.n_items()),
        });
        if let Some(k) = kept.as_mut() {
            k.merges
                .push((policy, merged.iter().map(|l| ids(l)).collect()));
        }
        if let Some(stage) = &stages {
            let boosted = merge_all(&routes, LIST_LENGTH, Some(stage));
            rows.push(Row {
                name: format!("{name}+propensity"),
                kind: "merge+propensity".into(),
                strategy: policy.as_str().into(),
                metrics: score(&boosted, &truth, p.ds.n_items()),
            });
            boosted_pairs.push((name, merged, boosted));
        }
        pb.inc(1);
    }
    let segments = match &req.propensity {
        Some(spec) => segment_rows(&spec.keys, &user_contexts, &truth, &boosted_pairs),
        None => Vec::new(),
    };
    pb.finish();
    let report = EvalReport {
        dataset: p.ds.name.clone(),
        split: spec.describe(),
        part: match (req.on_validation, warm.is_empty()) {
            (true, _) => "validation".into(),
            (false, true) => "test".into(),
            (false, false) => {
                "test (held-out items only: warm items excluded from every list)".into()
            }
        },
        seed,
        users: users.len(),
        items: p.ds.n_items(),
        ks: KS.to_vec(),
        rows,
        segments,
        tuned,
        warnings,
    };
    Ok((report, kept))
}

/// The propensity stage of every evaluated user (by position in the evaluated users).
struct Stages<'a> {
    spec: &'a kan_api::crd::PropensitySpec,
    table: &'a kan_core::propensity::Table,
    contexts: &'a [&'a BTreeMap<String, String>],
}

impl Stages<'_> {
    fn for_user(&self, n: usize) -> Option<kan_core::propensity::Stage<'_>> {
        kan_core::propensity::Stage::new(self.spec, self.table, self.contexts.get(n)?)
    }
}

/// Reads the lift table of a bundle directory (what a gateway's `filters.propensity.table`
/// names) through the bundle reader, which checks every file's digest.
pub fn load_propensity_table(dir: &std::path::Path) -> Result<kan_core::propensity::Table> {
    use kan_api::bundle::files;
    let b = crate::bundle::open(dir)?;
    if !b.has(files::PROPENSITY) {
        return Err(Error::InvalidInput(format!(
            "{}: the bundle has no {} (train it on data with user attributes)",
            dir.display(),
            files::PROPENSITY
        )));
    }
    kan_core::propensity::Table::decode(
        b.lines(files::ITEMS)?,
        b.lines(files::PROPENSITY_SEGMENTS)?,
        &b.read(files::PROPENSITY)?,
    )
    .map_err(|e| Error::InvalidInput(format!("{}: {e}", dir.display())))
}

/// A row's name, its lists without the propensity stage and with it (per evaluated user).
type BoostedPair = (String, Vec<Vec<u32>>, Vec<Vec<u32>>);

/// Cut-off of the per-segment table.
const SEGMENT_K: usize = 20;

/// R@20 per audience segment (every value of every declared key among the evaluated users),
/// without and with the propensity stage, for every row that has both.
fn segment_rows(
    keys: &[String],
    contexts: &[&BTreeMap<String, String>],
    truth: &[HashSet<u32>],
    pairs: &[BoostedPair],
) -> Vec<SegmentRow> {
    let mut out = Vec::new();
    for key in keys {
        let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (n, ctx) in contexts.iter().enumerate() {
            if let Some(v) = ctx.get(key) {
                members.entry(v).or_default().push(n);
            }
        }
        for (value, users) in members {
            let recall = |lists: &[Vec<u32>]| {
                users
                    .iter()
                    .map(|&n| crate::metrics::recall_at(&lists[n], &truth[n], SEGMENT_K))
                    .sum::<f64>()
                    / users.len() as f64
            };
            out.push(SegmentRow {
                segment: kan_core::propensity::segment_name(key, value),
                users: users.len(),
                recall: pairs
                    .iter()
                    .map(|(name, base, boosted)| (name.clone(), (recall(base), recall(boosted))))
                    .collect(),
            });
        }
    }
    out
}

/// The cut-off weights are tuned for (R@20, the headline metric).
const TUNE_K: usize = 20;

/// Routes of the merge sources (name, weight, quota) under `weights`: a source without a quota
/// gets a share of the list proportional to its weight (the `quota` policy's default).
fn routes_with<'a>(sources: &[(&'a str, f64, Option<usize>)], weights: &[f64]) -> Vec<Route<'a>> {
    let total: f64 = weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    sources
        .iter()
        .zip(weights)
        .map(|(&(name, _, quota), &weight)| Route {
            name,
            weight,
            quota: quota.unwrap_or(((weight / total) * LIST_LENGTH as f64).round() as usize),
        })
        .collect()
}

/// A queue's merge settings, as a RecallGateway's `queues` entry gives them.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    pub name: &'a str,
    pub weight: f64,
    pub quota: usize,
}

/// Merges one user's queue lists (dataset item indices, best first) with the gateway's merge
/// code, applies the gateway's propensity stage for the user when given, and keeps the first
/// `total` items. Lists carry no scores here, so each candidate
/// scores by position (which only the `score` policy would read).
pub fn merge_lists(
    spec: &kan_api::crd::MergeSpec,
    routes: &[Route],
    lists: &[&[u32]],
    item_ids: &[String],
    total: usize,
    propensity: Option<&kan_core::propensity::Stage>,
) -> Vec<u32> {
    use kan_core::merge::{CandidateRef, QueueList, merge};
    let candidates: Vec<Vec<CandidateRef>> = lists
        .iter()
        .map(|l| {
            l.iter()
                .enumerate()
                .filter_map(|(r, &i)| {
                    item_ids.get(i as usize).map(|id| CandidateRef {
                        item_id: id.as_str(),
                        score: 1.0 / (1.0 + r as f32),
                    })
                })
                .collect()
        })
        .collect();
    let queues: Vec<QueueList> = routes
        .iter()
        .zip(&candidates)
        .map(|(r, c)| QueueList {
            queue: r.name,
            weight: r.weight,
            quota: Some(r.quota),
            candidates: c,
        })
        .collect();
    // Ids are unique, so an id's position in `item_ids` is its index: the merge hands ids back.
    let index: std::collections::HashMap<&str, u32> = lists
        .iter()
        .flat_map(|l| l.iter())
        .filter_map(|&i| item_ids.get(i as usize).map(|id| (id.as_str(), i)))
        .collect();
    let mut merged = merge(spec, &queues);
    // The gateway's order: boost, then the filters (here the only one that applies: minLift).
    if let Some(stage) = propensity {
        stage.boost(&mut merged);
        merged.retain(|m| stage.keeps(m.item_id));
    }
    merged
        .into_iter()
        .filter_map(|m| index.get(m.item_id).copied())
        .take(total)
        .collect()
}
