//! Merge policies: pure functions from the queues' ranked lists to one de-duplicated list.
//!
//! Every policy works on the same de-duplicated view of the input ([`Pool`]): an item returned
//! by several queues appears once, at its best position, with every queue that returned it in
//! `sources` (best position first, ties in queue order). A merge never drops an item: its output
//! holds every distinct input id exactly once; truncation to `k` happens after the filters.
//!
//! Worker scores should be finite; a candidate with a NaN or infinite score is moved behind
//! every finite-scored candidate of its queue (stable), and counts for nothing in `score`.

use kan_api::crd::{MergePolicy, MergeSpec};
use smallvec::SmallVec;

/// One candidate as the merge reads it: the id borrowed from the queue's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateRef<'a> {
    pub item_id: &'a str,
    pub score: f32,
}

/// One queue's answer as the merge sees it.
#[derive(Debug, Clone, Copy)]
pub struct QueueList<'a> {
    pub queue: &'a str,
    /// Weight of the queue (rrf, weighted-interleave, score).
    pub weight: f64,
    /// Most items taken from the queue in the first phase of `quota`.
    pub quota: Option<usize>,
    /// Best first.
    pub candidates: &'a [CandidateRef<'a>],
}

/// Queues that returned an item, best position first. Most items come from one or two queues,
/// so the list lives inline and a merge allocates nothing per item.
pub type Sources<'a> = SmallVec<[&'a str; 2]>;

/// One merged candidate, borrowing its id and source names from the merge's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged<'a> {
    pub item_id: &'a str,
    /// Merge score, higher is better; its scale depends on the policy (position-based policies
    /// give `1 / (1 + position)`).
    pub score: f64,
    /// Queues that returned the item, best position first.
    pub sources: Sources<'a>,
}

/// Merges the queues' lists with the policy of `spec`.
pub fn merge<'a>(spec: &MergeSpec, lists: &[QueueList<'a>]) -> Vec<Merged<'a>> {
    let pool = Pool::new(lists);
    let order: Vec<(u32, f64)> = match spec.policy {
        MergePolicy::Rrf => rrf(&pool, lists, spec.rrf_k),
        MergePolicy::Score => by_score(&pool, lists),
        MergePolicy::WeightedInterleave => with_position_scores(weighted_interleave(&pool, lists)),
        MergePolicy::Quota => with_position_scores(quota(&pool, lists)),
    };
    order
        .into_iter()
        .map(|(entry, score)| pool.merged(entry, score, lists))
        .collect()
}

/// Appends the fallback queue's candidates (best first, non-finite scores last) that `kept`
/// does not hold yet. They score 0 (below every merged item of the score-based policies) and
/// name the fallback queue as their source. The caller runs the list through the same filter
/// stages as the merged items, then truncates.
pub fn append_fallback<'a>(
    kept: &mut Vec<Merged<'a>>,
    fallback: &[CandidateRef<'a>],
    source: &'a str,
) {
    let mut present: foldhash::HashSet<&str> = kept.iter().map(|m| m.item_id).collect();
    for c in finite_first(fallback) {
        if present.insert(c.item_id) {
            kept.push(Merged {
                item_id: c.item_id,
                score: 0.0,
                sources: SmallVec::from_slice(&[source]),
            });
        }
    }
}

/// Where an item appeared: queue index, 0-based rank in that queue, raw score.
#[derive(Debug, Clone, Copy)]
struct Hit {
    queue: u32,
    rank: u32,
    score: f32,
}

/// The distinct items of all lists (pool entries, numbered in order of first appearance), with
/// their hits sorted by (rank, queue). Flat arrays: building a pool allocates a handful of
/// vectors whatever the number of items.
struct Pool<'a> {
    ids: Vec<&'a str>,
    /// The hits of entry `e` are `hits[starts[e]..starts[e + 1]]`.
    starts: Vec<u32>,
    hits: Vec<Hit>,
    /// Per queue, the pool entries in rank order (duplicates inside a queue removed).
    ranked: Vec<Vec<u32>>,
}

impl<'a> Pool<'a> {
    fn new(lists: &[QueueList<'a>]) -> Self {
        let total: usize = lists.iter().map(|l| l.candidates.len()).sum();
        let mut index: foldhash::HashMap<&'a str, u32> =
            foldhash::HashMap::with_capacity_and_hasher(total, Default::default());
        let mut ids: Vec<&'a str> = Vec::with_capacity(total);
        // Per entry: hit count, and the last queue that hit it (to skip repeats inside a queue).
        let mut counts: Vec<u32> = Vec::with_capacity(total);
        let mut last_queue: Vec<u32> = Vec::with_capacity(total);
        let mut raw: Vec<(u32, Hit)> = Vec::with_capacity(total);
        let mut ranked = Vec::with_capacity(lists.len());
        for (q, list) in lists.iter().enumerate() {
            let q = q as u32;
            let mut order = Vec::with_capacity(list.candidates.len());
            for c in finite_first(list.candidates) {
                let entry = *index.entry(c.item_id).or_insert_with(|| {
                    ids.push(c.item_id);
                    counts.push(0);
                    last_queue.push(u32::MAX);
                    (ids.len() - 1) as u32
                });
                let e = entry as usize;
                // The first occurrence inside one queue is its position there.
                if last_queue[e] == q {
                    continue;
                }
                last_queue[e] = q;
                counts[e] += 1;
                raw.push((
                    entry,
                    Hit {
                        queue: q,
                        rank: order.len() as u32,
                        score: c.score,
                    },
                ));
                order.push(entry);
            }
            ranked.push(order);
        }
        // Counting sort of the hits by entry (stable, so each entry's hits stay in queue order),
        // then each entry's few hits by (rank, queue).
        let mut starts = Vec::with_capacity(ids.len() + 1);
        let mut next = Vec::with_capacity(ids.len());
        let mut sum = 0u32;
        starts.push(0);
        for &n in &counts {
            next.push(sum);
            sum += n;
            starts.push(sum);
        }
        let mut hits = vec![
            Hit {
                queue: 0,
                rank: 0,
                score: 0.0
            };
            raw.len()
        ];
        for (entry, hit) in raw {
            let slot = &mut next[entry as usize];
            hits[*slot as usize] = hit;
            *slot += 1;
        }
        for e in 0..ids.len() {
            sort_by_rank(&mut hits[starts[e] as usize..starts[e + 1] as usize]);
        }
        Self {
            ids,
            starts,
            hits,
            ranked,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// The entry whose best hit is at `rank` in queue `queue`.
    fn entry_at(&self, queue: u32, rank: u32) -> u32 {
        self.ranked[queue as usize][rank as usize]
    }

    fn hits(&self, entry: u32) -> &[Hit] {
        let e = entry as usize;
        &self.hits[self.starts[e] as usize..self.starts[e + 1] as usize]
    }

    /// Sort key that breaks every tie deterministically: best rank, then queue, then id.
    fn tie_key(&self, entry: u32) -> (u32, u32, &'a str) {
        let best = self.hits[self.starts[entry as usize] as usize];
        (best.rank, best.queue, self.ids[entry as usize])
    }

    fn merged(&self, entry: u32, score: f64, lists: &[QueueList<'a>]) -> Merged<'a> {
        Merged {
            item_id: self.ids[entry as usize],
            score,
            sources: self
                .hits(entry)
                .iter()
                .map(|h| lists[h.queue as usize].queue)
                .collect(),
        }
    }
}

/// Sorts one entry's hits, which arrive in queue order, by rank, keeping queue order among equal
/// ranks. An entry has a hit per queue at most, so this is an insertion sort of a few elements —
/// cheaper than a general sort's set-up when run for every entry.
fn sort_by_rank(hits: &mut [Hit]) {
    for i in 1..hits.len() {
        let mut j = i;
        while j > 0 && hits[j - 1].rank > hits[j].rank {
            hits.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The queue's candidates with non-finite scores moved to the end, order otherwise kept.
fn finite_first<'c, 'a>(
    candidates: &'c [CandidateRef<'a>],
) -> impl Iterator<Item = &'c CandidateRef<'a>> {
    let finite = candidates.iter().filter(|c| c.score.is_finite());
    finite.chain(candidates.iter().filter(|c| !c.score.is_finite()))
}

fn weight(list: &QueueList<'_>) -> f64 {
    if list.weight.is_finite() {
        list.weight.max(0.0)
    } else {
        0.0
    }
}

/// Reciprocal rank fusion (Cormack et al., 2009): `Σ weight / (rrf_k + rank)`, rank from 1.
fn rrf(pool: &Pool<'_>, lists: &[QueueList<'_>], rrf_k: f64) -> Vec<(u32, f64)> {
    let weights: Vec<f64> = lists.iter().map(weight).collect();
    let scored = (0..pool.len() as u32)
        .map(|e| {
            let s = pool
                .hits(e)
                .iter()
                .map(|h| weights[h.queue as usize] / (rrf_k + h.rank as f64 + 1.0))
                .sum();
            (e, s, true)
        })
        .collect();
    sort_by_score(pool, scored)
}

/// Per-queue min-max normalisation of finite scores to [0, 1], then a weighted sum. A queue whose
/// finite scores are all equal normalises them to 1. Items with no finite score rank last.
fn by_score(pool: &Pool<'_>, lists: &[QueueList<'_>]) -> Vec<(u32, f64)> {
    let ranges: Vec<Option<(f32, f32)>> = lists
        .iter()
        .map(|l| {
            l.candidates
                .iter()
                .map(|c| c.score)
                .filter(|s| s.is_finite())
                .fold(None, |acc, s| match acc {
                    None => Some((s, s)),
                    Some((lo, hi)) => Some((lo.min(s), hi.max(s))),
                })
        })
        .collect();
    let scored = (0..pool.len() as u32)
        .map(|e| {
            let hits = pool.hits(e);
            let s = hits
                .iter()
                .filter(|h| h.score.is_finite())
                .map(|h| {
                    let norm = match ranges[h.queue as usize] {
                        Some((lo, hi)) if hi > lo => ((h.score - lo) / (hi - lo)) as f64,
                        _ => 1.0,
                    };
                    weight(&lists[h.queue as usize]) * norm
                })
                .sum();
            (e, s, hits.iter().any(|h| h.score.is_finite()))
        })
        .collect();
    sort_by_score(pool, scored)
}

/// Sorts `scored` — (entry, score, has a finite score) for every entry, in entry order — best
/// first: finite before not, higher score, then best rank, then queue. (rank, queue) is unique
/// per entry — a queue has one entry per rank — so the order is total without comparing ids,
/// packs into one integer per entry, and that integer names its entry: only keys are sorted.
fn sort_by_score(pool: &Pool<'_>, scored: Vec<(u32, f64, bool)>) -> Vec<(u32, f64)> {
    let mut keys: Vec<u128> = scored
        .iter()
        .map(|&(e, score, finite)| {
            let (rank, queue, _) = pool.tie_key(e);
            sort_key(score, finite, rank, queue)
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter()
        .map(|key| {
            let (rank, queue) = rank_and_queue(key);
            let e = pool.entry_at(queue, rank);
            (e, scored[e as usize].1)
        })
        .collect()
}

/// An integer whose order is: `finite` first, then `score` descending (in `f64::total_cmp`
/// order), then `rank`, then `queue` (below 2³¹).
fn sort_key(score: f64, finite: bool, rank: u32, queue: u32) -> u128 {
    let bits = score.to_bits();
    // Flipping the sign bit of positives and every bit of negatives makes the integer order
    // the total order of the floats; negating that gives descending.
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    let descending = !ascending;
    (u128::from(!finite) << 127)
        | (u128::from(descending) << 63)
        | (u128::from(rank) << 31)
        | u128::from(queue & 0x7fff_ffff)
}

/// The (rank, queue) a [`sort_key`] was made from.
fn rank_and_queue(key: u128) -> (u32, u32) {
    ((key >> 31) as u32, (key & 0x7fff_ffff) as u32)
}

/// Smooth weighted round-robin (the nginx algorithm): each turn every queue with items left
/// gains its weight, the richest queue gives its best unused item and pays the total. Queues of
/// weight 0 only contribute once the weighted queues are exhausted.
fn weighted_interleave(pool: &Pool<'_>, lists: &[QueueList<'_>]) -> Vec<u32> {
    let mut taken = vec![false; pool.len()];
    let mut out = Vec::with_capacity(pool.len());
    let mut cursor = vec![0usize; lists.len()];
    let mut current = vec![0f64; lists.len()];
    let next_unused = |q: usize, cursor: &mut [usize], taken: &[bool]| {
        while cursor[q] < pool.ranked[q].len() && taken[pool.ranked[q][cursor[q]] as usize] {
            cursor[q] += 1;
        }
        pool.ranked[q].get(cursor[q]).copied()
    };
    loop {
        let mut total = 0.0;
        let mut best: Option<usize> = None;
        for q in 0..lists.len() {
            let w = weight(&lists[q]);
            if w <= 0.0 || next_unused(q, &mut cursor, &taken).is_none() {
                continue;
            }
            current[q] += w;
            total += w;
            if best.is_none_or(|b| current[q] > current[b]) {
                best = Some(q);
            }
        }
        let Some(q) = best else { break };
        current[q] -= total;
        if let Some(entry) = next_unused(q, &mut cursor, &taken) {
            taken[entry as usize] = true;
            out.push(entry);
        }
    }
    append_rest_by_rank(pool, &mut taken, &mut out);
    out
}

/// Each queue in order gives up to its quota of unused items (no quota: none); the rest
/// follows by best rank.
fn quota(pool: &Pool<'_>, lists: &[QueueList<'_>]) -> Vec<u32> {
    let mut taken = vec![false; pool.len()];
    let mut out = Vec::with_capacity(pool.len());
    for (q, list) in lists.iter().enumerate() {
        let quota = list.quota.unwrap_or(0);
        let mut given = 0;
        for &entry in &pool.ranked[q] {
            if given == quota {
                break;
            }
            if !taken[entry as usize] {
                taken[entry as usize] = true;
                out.push(entry);
                given += 1;
            }
        }
    }
    append_rest_by_rank(pool, &mut taken, &mut out);
    out
}

fn append_rest_by_rank(pool: &Pool<'_>, taken: &mut [bool], out: &mut Vec<u32>) {
    let mut rest: Vec<u32> = (0..pool.len() as u32)
        .filter(|&e| !taken[e as usize])
        .collect();
    rest.sort_by_key(|&e| pool.tie_key(e));
    for &e in &rest {
        taken[e as usize] = true;
    }
    out.extend(rest);
}

fn with_position_scores(order: Vec<u32>) -> Vec<(u32, f64)> {
    order
        .into_iter()
        .enumerate()
        .map(|(pos, e)| (e, 1.0 / (1.0 + pos as f64)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn cands<'a>(ids: &[(&'a str, f32)]) -> Vec<CandidateRef<'a>> {
        ids.iter()
            .map(|&(item_id, score)| CandidateRef { item_id, score })
            .collect()
    }

    fn spec(policy: MergePolicy) -> MergeSpec {
        MergeSpec {
            policy,
            ..MergeSpec::default()
        }
    }

    fn list<'a>(queue: &'a str, weight: f64, candidates: &'a [CandidateRef<'a>]) -> QueueList<'a> {
        QueueList {
            queue,
            weight,
            quota: None,
            candidates,
        }
    }

    fn ids<'a>(merged: &[Merged<'a>]) -> Vec<&'a str> {
        merged.iter().map(|m| m.item_id).collect()
    }

    #[test]
    fn rrf_ranks_items_found_by_several_queues_first_and_records_all_sources() {
        let a = cands(&[("x", 0.9), ("y", 0.8), ("z", 0.7)]);
        let b = cands(&[("z", 0.9), ("w", 0.5)]);
        let merged = merge(
            &spec(MergePolicy::Rrf),
            &[list("a", 1.0, &a), list("b", 1.0, &b)],
        );
        // y and w tie on 1/62: y wins on queue order.
        assert_eq!(ids(&merged), ["z", "x", "y", "w"]);
        assert_eq!(
            merged[0].sources.as_slice(),
            ["b", "a"],
            "best position first"
        );
        let expected = 1.0 / 63.0 + 1.0 / 61.0;
        assert!((merged[0].score - expected).abs() < 1e-12);
    }

    #[test]
    fn rrf_weights_scale_each_queues_contribution() {
        let a = cands(&[("x", 0.9)]);
        let b = cands(&[("y", 0.9)]);
        let merged = merge(
            &spec(MergePolicy::Rrf),
            &[list("a", 1.0, &a), list("b", 3.0, &b)],
        );
        assert_eq!(ids(&merged), ["y", "x"]);
        assert!((merged[0].score - 3.0 / 61.0).abs() < 1e-12);
    }

    #[test]
    fn rrf_k_flattens_the_advantage_of_top_ranks() {
        let a = cands(&[("x", 1.0), ("y", 1.0)]);
        let b = cands(&[("z", 1.0)]);
        let lists = [list("a", 1.0, &a), list("b", 1.0, &b)];
        let sharp = merge(
            &MergeSpec {
                rrf_k: 0.0,
                ..spec(MergePolicy::Rrf)
            },
            &lists,
        );
        assert!((sharp[0].score - 1.0).abs() < 1e-12);
        assert!((sharp[2].score - 0.5).abs() < 1e-12);
    }

    #[test]
    fn weighted_interleave_takes_turns_in_proportion_to_weights() {
        let a = cands(&[("a1", 1.0), ("a2", 1.0), ("a3", 1.0), ("a4", 1.0)]);
        let b = cands(&[("b1", 1.0), ("b2", 1.0)]);
        let merged = merge(
            &spec(MergePolicy::WeightedInterleave),
            &[list("a", 2.0, &a), list("b", 1.0, &b)],
        );
        assert_eq!(ids(&merged), ["a1", "b1", "a2", "a3", "b2", "a4"]);
        assert!(merged.windows(2).all(|w| w[0].score > w[1].score));
    }

    #[test]
    fn weighted_interleave_skips_items_already_taken_and_keeps_zero_weight_queues_last() {
        let a = cands(&[("x", 1.0), ("y", 1.0)]);
        let b = cands(&[("x", 1.0), ("z", 1.0)]);
        let c = cands(&[("q", 1.0)]);
        let merged = merge(
            &spec(MergePolicy::WeightedInterleave),
            &[list("a", 1.0, &a), list("b", 1.0, &b), list("c", 0.0, &c)],
        );
        assert_eq!(ids(&merged), ["x", "z", "y", "q"]);
        assert_eq!(merged[0].sources.as_slice(), ["a", "b"]);
    }

    #[test]
    fn quota_takes_each_queues_quota_in_order_then_fills_by_rank() {
        let a = cands(&[("a1", 1.0), ("a2", 1.0), ("a3", 1.0)]);
        let b = cands(&[("a1", 1.0), ("b2", 1.0), ("b3", 1.0)]);
        let lists = [
            QueueList {
                quota: Some(1),
                ..list("a", 1.0, &a)
            },
            QueueList {
                quota: Some(2),
                ..list("b", 1.0, &b)
            },
        ];
        let merged = merge(&spec(MergePolicy::Quota), &lists);
        // b's first item was a's, so b gives its next two unused ones.
        assert_eq!(ids(&merged), ["a1", "b2", "b3", "a2", "a3"]);
    }

    #[test]
    fn score_normalises_each_queue_before_the_weighted_sum() {
        // Raw scales differ by 1000x; after min-max both tops are worth 1.
        let a = cands(&[("x", 1000.0), ("y", 500.0), ("z", 0.0)]);
        let b = cands(&[("y", 0.9), ("w", 0.1)]);
        let merged = merge(
            &spec(MergePolicy::Score),
            &[list("a", 1.0, &a), list("b", 1.0, &b)],
        );
        assert_eq!(ids(&merged), ["y", "x", "w", "z"]);
        assert!((merged[0].score - 1.5).abs() < 1e-9);
        assert!((merged[1].score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn nan_and_infinite_scores_rank_below_every_finite_score() {
        let a = cands(&[
            ("nan", f32::NAN),
            ("inf", f32::INFINITY),
            ("ok", 0.1),
            ("neg", f32::NEG_INFINITY),
        ]);
        for policy in [
            MergePolicy::Rrf,
            MergePolicy::Score,
            MergePolicy::WeightedInterleave,
            MergePolicy::Quota,
        ] {
            let merged = merge(&spec(policy), &[list("a", 1.0, &a)]);
            assert_eq!(merged[0].item_id, "ok", "{policy:?}");
            assert_eq!(merged.len(), 4, "{policy:?}");
            assert!(merged.iter().all(|m| m.score.is_finite()), "{policy:?}");
        }
    }

    #[test]
    fn a_queue_repeating_an_item_counts_it_once_at_its_first_position() {
        let a = cands(&[("x", 1.0), ("x", 0.5), ("y", 0.2)]);
        let merged = merge(&spec(MergePolicy::Rrf), &[list("a", 1.0, &a)]);
        assert_eq!(ids(&merged), ["x", "y"]);
        assert_eq!(merged[0].sources.as_slice(), ["a"]);
        assert!(
            (merged[1].score - 1.0 / 62.0).abs() < 1e-12,
            "y is at rank 2 once x is de-duplicated"
        );
    }

    #[test]
    fn the_fallback_appends_its_items_not_kept_yet_best_first_scoring_zero() {
        let mut kept = vec![Merged {
            item_id: "a",
            score: 1.0,
            sources: SmallVec::from_slice(&["q"]),
        }];
        let popular = cands(&[("a", 9.0), ("nan", f32::NAN), ("b", 7.0), ("b", 6.0)]);
        append_fallback(&mut kept, &popular, "popular");
        assert_eq!(ids(&kept), ["a", "b", "nan"]);
        assert_eq!(kept[1].sources.as_slice(), ["popular"]);
        assert_eq!(kept[1].score, 0.0);
    }

    #[test]
    fn no_queues_merge_to_nothing() {
        for policy in [
            MergePolicy::Rrf,
            MergePolicy::Score,
            MergePolicy::WeightedInterleave,
            MergePolicy::Quota,
        ] {
            assert!(merge(&spec(policy), &[]).is_empty());
        }
    }

    /// Per queue: weight, quota, (item number, score) pairs.
    type RawLists = Vec<(f64, Option<usize>, Vec<(u8, f32)>)>;

    /// Queue names and, per queue, its (item id, score) pairs.
    type Owned = (Vec<String>, Vec<Vec<(String, f32)>>);

    fn names_and_candidates(raw: &RawLists, score: impl Fn(f32) -> f32) -> Owned {
        let names = (0..raw.len()).map(|i| format!("q{i}")).collect();
        let cand = raw
            .iter()
            .map(|(_, _, c)| {
                c.iter()
                    .map(|(id, s)| (format!("i{id}"), score(*s)))
                    .collect()
            })
            .collect();
        (names, cand)
    }

    fn refs(cand: &[Vec<(String, f32)>]) -> Vec<Vec<CandidateRef<'_>>> {
        cand.iter()
            .map(|c| {
                c.iter()
                    .map(|(id, score)| CandidateRef {
                        item_id: id,
                        score: *score,
                    })
                    .collect()
            })
            .collect()
    }

    fn queue_lists<'a>(
        raw: &RawLists,
        names: &'a [String],
        cand: &'a [Vec<CandidateRef<'a>>],
    ) -> Vec<QueueList<'a>> {
        raw.iter()
            .enumerate()
            .map(|(i, (w, quota, _))| QueueList {
                queue: &names[i],
                weight: *w,
                quota: *quota,
                candidates: &cand[i],
            })
            .collect()
    }

    fn arb_lists() -> impl Strategy<Value = RawLists> {
        let score = prop_oneof![8 => -10.0f32..10.0, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY)];
        prop::collection::vec(
            (
                0.0f64..5.0,
                prop::option::of(0usize..10),
                prop::collection::vec((0u8..40, score), 0..30),
            ),
            0..6,
        )
    }

    fn arb_policy() -> impl Strategy<Value = MergePolicy> {
        prop_oneof![
            Just(MergePolicy::Rrf),
            Just(MergePolicy::Score),
            Just(MergePolicy::WeightedInterleave),
            Just(MergePolicy::Quota)
        ]
    }

    proptest! {
        #[test]
        fn every_distinct_input_item_comes_out_exactly_once_with_exactly_its_queues(
            raw in arb_lists(), policy in arb_policy()
        ) {
            let (names, owned) = names_and_candidates(&raw, |s| s);
            let cand = refs(&owned);
            let lists = queue_lists(&raw, &names, &cand);
            let merged = merge(&spec(policy), &lists);

            let input: BTreeSet<&str> = cand.iter().flatten().map(|c| c.item_id).collect();
            let output: Vec<&str> = ids(&merged);
            let unique: BTreeSet<&str> = output.iter().copied().collect();
            prop_assert_eq!(output.len(), unique.len(), "no duplicates");
            prop_assert_eq!(&unique, &input, "nothing lost, nothing invented");
            for m in &merged {
                let expected: BTreeSet<&str> = cand.iter().enumerate()
                    .filter(|(_, c)| c.iter().any(|c| c.item_id == m.item_id))
                    .map(|(i, _)| names[i].as_str()).collect();
                let got: BTreeSet<&str> = m.sources.iter().copied().collect();
                prop_assert_eq!(got, expected);
                prop_assert_eq!(m.sources.len(), expected_len(&m.sources));
                prop_assert!(m.score.is_finite());
            }
        }

        #[test]
        fn merge_is_deterministic(raw in arb_lists(), policy in arb_policy()) {
            let (names, owned) = names_and_candidates(&raw, |s| s);
            let cand = refs(&owned);
            let lists = queue_lists(&raw, &names, &cand);
            let a = merge(&spec(policy), &lists);
            let b = merge(&spec(policy), &lists);
            prop_assert_eq!(ids(&a), ids(&b));
        }

        #[test]
        fn score_ordered_policies_return_non_increasing_scores(raw in arb_lists(), rrf in any::<bool>()) {
            let (names, owned) = names_and_candidates(&raw, |s| s.abs().min(1e6));
            let cand = refs(&owned);
            let lists = queue_lists(&raw, &names, &cand);
            let policy = if rrf { MergePolicy::Rrf } else { MergePolicy::Score };
            let merged = merge(&spec(policy), &lists);
            prop_assert!(merged.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }

    /// Per queue, each distinct item's 0-based rank once non-finite scores are moved last and
    /// repeats inside the queue are dropped — written the plain way, as a reference.
    fn reference_ranks<'a>(lists: &[QueueList<'a>]) -> Vec<BTreeMap<&'a str, usize>> {
        lists
            .iter()
            .map(|l| {
                let mut ranks = BTreeMap::new();
                for c in finite_first(l.candidates) {
                    let next = ranks.len();
                    ranks.entry(c.item_id).or_insert(next);
                }
                ranks
            })
            .collect()
    }

    proptest! {
        #[test]
        fn rrf_scores_and_source_order_match_a_plain_reference(raw in arb_lists(), rrf_k in 0.0f64..100.0) {
            let (names, owned) = names_and_candidates(&raw, |s| s);
            let cand = refs(&owned);
            let lists = queue_lists(&raw, &names, &cand);
            let merged = merge(&MergeSpec { rrf_k, ..spec(MergePolicy::Rrf) }, &lists);
            let ranks = reference_ranks(&lists);
            for m in &merged {
                let mut hits: Vec<(usize, usize)> = ranks.iter().enumerate()
                    .filter_map(|(q, r)| r.get(m.item_id).map(|&rank| (rank, q)))
                    .collect();
                hits.sort();
                let expected: f64 = hits.iter()
                    .map(|&(rank, q)| weight(&lists[q]) / (rrf_k + rank as f64 + 1.0))
                    .sum();
                prop_assert!((m.score - expected).abs() <= 1e-12 * expected.max(1.0));
                let sources: Vec<&str> = hits.iter().map(|&(_, q)| lists[q].queue).collect();
                prop_assert_eq!(m.sources.as_slice(), sources.as_slice(), "best position first");
            }
        }
    }

    proptest! {
        #[test]
        fn the_packed_sort_key_orders_like_the_comparison_it_replaces(
            a in (any::<f64>(), any::<bool>(), any::<u32>(), 0u32..1 << 31),
            b in (any::<f64>(), any::<bool>(), any::<u32>(), 0u32..1 << 31),
        ) {
            let expected = b.1.cmp(&a.1)
                .then(b.0.total_cmp(&a.0))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3));
            let got = sort_key(a.0, a.1, a.2, a.3).cmp(&sort_key(b.0, b.1, b.2, b.3));
            prop_assert_eq!(got, expected);
            prop_assert_eq!(rank_and_queue(sort_key(a.0, a.1, a.2, a.3)), (a.2, a.3));
        }

        #[test]
        fn hits_sort_by_rank_keeping_queue_order_among_equal_ranks(
            ranks in prop::collection::vec(0u32..4, 0..8),
        ) {
            let mut hits: Vec<Hit> = ranks
                .iter()
                .enumerate()
                .map(|(q, &rank)| Hit { queue: q as u32, rank, score: 0.0 })
                .collect();
            let mut expected: Vec<(u32, u32)> = hits.iter().map(|h| (h.rank, h.queue)).collect();
            expected.sort();
            sort_by_rank(&mut hits);
            let got: Vec<(u32, u32)> = hits.iter().map(|h| (h.rank, h.queue)).collect();
            prop_assert_eq!(got, expected);
        }
    }

    /// Sources never repeat a queue.
    fn expected_len(sources: &[&str]) -> usize {
        sources.iter().collect::<BTreeSet<_>>().len()
    }
}
