//! Multi-interest users: a user encoder may output K vectors (`user_embedding: float32[B, K, D]`,
//! MIND/ComiRec-style) instead of one. One mean vector of a user whose history spans two
//! far-apart interests sits between them and finds neither (BENCHMARKS.md); K vectors each sit
//! in one interest.
//!
//! * [`merge`] — how the K searches become one list: best score per item, then top-k. The
//!   worker runs it over its K index searches and `kan eval` over its K exact scans, so both
//!   rank the same way. Over K *exact* top-k lists it returns exactly the top-k of
//!   `max_k ⟨u_k, item⟩` over the catalogue: an item in that top-k reaches its maximum under
//!   some interest whose own top-k it is in.
//! * [`pool`] — the reference of Kan's parameter-free interest extraction (the `interests`
//!   option of the dssm trainer exports it as ONNX; the parity test holds the two equal):
//!   1. seeds by farthest-point selection over the history rows, L2-normalised: seed 1 is the
//!      most recent item; seed j + 1 is the item least similar to its closest seed so far
//!      (similarities compared in steps of [`SEED_QUANTUM`]; the first such position on ties);
//!   2. one soft assignment: item `l` gives interest `j` the weight
//!      `softmax_j(τ · cos(h_l, seed_j))`;
//!   3. interest `j` is the weighted mean of the (unnormalised) history rows.
//!
//!   That is one step of soft k-means from a farthest-point start: for a history drawn from K
//!   clusters, each seed lands in a different cluster and each interest is close to its
//!   cluster's mean. The caller's tower (dssm's residual MLP, or none) then maps each interest
//!   as it maps the single mean.

use crate::rank::{Hit, top_k};
use crate::vector::{dot, exact_scan};

/// Inverse temperature of the soft assignment ([`pool`]).
pub const ASSIGN_SCALE: f32 = 10.0;

/// Most interest vectors a model may output (the worker runs one search per vector).
pub const MAX_INTERESTS: usize = 16;

/// Merges the hit lists of one user's K interest vectors: each item once, with its best score,
/// then the best `k` (NaN scores dropped, ties by lower item index, as [`top_k`]).
pub fn merge(lists: &[Vec<Hit>], k: usize) -> Vec<Hit> {
    if let [only] = lists {
        return top_k(only.iter().copied(), k);
    }
    let mut best: foldhash::HashMap<u32, f32> = foldhash::HashMap::default();
    for hit in lists.iter().flatten().filter(|h| !h.score.is_nan()) {
        best.entry(hit.item)
            .and_modify(|s| *s = s.max(hit.score))
            .or_insert(hit.score);
    }
    top_k(best.into_iter().map(|(item, score)| Hit { item, score }), k)
}

/// One user's recall over all item vectors (row-major `[n, dim]`), exactly as the worker's
/// exact index and its encoder strategy answer it: each of the user's vectors (one, or K
/// interest vectors) scanned by [`exact_scan`], the K lists merged by [`merge`]. `kan eval`
/// scores encoder bundles with this; no vectors, no hits.
pub fn exact_recall(
    vectors: &[f32],
    dim: usize,
    users: &[Vec<f32>],
    threshold: Option<f32>,
    excluded: impl Fn(u32) -> bool,
    limit: usize,
) -> Vec<Hit> {
    let scan = |u: &Vec<f32>| exact_scan(vectors, dim, u, threshold, &excluded, limit);
    match users {
        [] => Vec::new(),
        // The worker returns a single search's hits as they are.
        [user] => scan(user),
        _ => merge(&users.iter().map(scan).collect::<Vec<_>>(), limit),
    }
}

/// Similarities are compared in steps of this size when choosing the next seed, so that
/// rounding noise between implementations (Rust here, ONNX Runtime in the exported model) cannot
/// pick different items among near-equals, e.g. repeats of an item that is already a seed.
pub const SEED_QUANTUM: f32 = 1e-4;

/// The value the farthest-point choice compares (the ONNX export rounds the same way: `Round`
/// is half-to-even).
pub fn seed_rank(similarity: f32) -> f32 {
    (similarity / SEED_QUANTUM).round_ties_even()
}

/// Cosine of two rows, 0 when either has no length.
fn cosine(a: &[f32], b: &[f32], na: f32, nb: f32) -> f32 {
    let d = na * nb;
    if d > f32::EPSILON { dot(a, b) / d } else { 0.0 }
}

/// The K interest means of a history (`rows`: the history items' rows, most recent first), see
/// the module doc. An empty history gives K zero vectors of `dim`; fewer distinct items than K
/// repeats seeds (the interests then coincide, which [`merge`] absorbs).
pub fn pool(rows: &[&[f32]], dim: usize, interests: usize, scale: f32) -> Vec<Vec<f32>> {
    let interests = interests.max(1);
    if rows.is_empty() {
        return vec![vec![0.0; dim]; interests];
    }
    let norms: Vec<f32> = rows.iter().map(|r| dot(r, r).sqrt()).collect();
    let sim = |a: usize, b: usize| cosine(rows[a], rows[b], norms[a], norms[b]);
    let mut seeds = vec![0usize];
    // closest[l]: similarity of item l to its most similar seed so far.
    let mut closest: Vec<f32> = (0..rows.len()).map(|l| sim(l, 0)).collect();
    while seeds.len() < interests {
        let mut far = 0;
        for (l, &c) in closest.iter().enumerate() {
            if seed_rank(c) < seed_rank(closest[far]) {
                far = l;
            }
        }
        seeds.push(far);
        for (l, c) in closest.iter_mut().enumerate() {
            *c = c.max(sim(l, far));
        }
    }
    let mut sums = vec![vec![0.0f32; dim]; interests];
    let mut weights = vec![0.0f32; interests];
    let mut logits = vec![0.0f32; interests];
    for (l, row) in rows.iter().enumerate() {
        for (j, &s) in seeds.iter().enumerate() {
            logits[j] = scale * sim(l, s);
        }
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|x| (x - top).exp()).collect();
        let total: f32 = exp.iter().sum();
        for j in 0..interests {
            let a = exp[j] / total;
            weights[j] += a;
            for (s, x) in sums[j].iter_mut().zip(row.iter()) {
                *s += a * x;
            }
        }
    }
    for (sum, w) in sums.iter_mut().zip(&weights) {
        let w = w.max(f32::EPSILON);
        sum.iter_mut().for_each(|x| *x /= w);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(item: u32, score: f32) -> Hit {
        Hit { item, score }
    }

    #[test]
    fn merged_lists_keep_each_item_once_with_its_best_score_then_the_top_k() {
        let a = vec![hit(1, 0.9), hit(2, 0.5), hit(3, 0.1)];
        let b = vec![hit(4, 0.8), hit(2, 0.7), hit(5, f32::NAN)];
        assert_eq!(
            merge(&[a.clone(), b], 3),
            [hit(1, 0.9), hit(4, 0.8), hit(2, 0.7)]
        );
        assert_eq!(
            merge(std::slice::from_ref(&a), 2),
            [hit(1, 0.9), hit(2, 0.5)]
        );
        assert_eq!(merge(&[], 5), []);
        assert_eq!(merge(&[a.clone(), a], 0), []);
    }

    #[test]
    fn merging_exact_per_interest_lists_equals_the_exact_top_k_of_the_best_interest_score() {
        // 40 items on a circle, two interests pointing at opposite sides.
        let items: Vec<[f32; 2]> = (0..40)
            .map(|i| {
                let t = i as f32 * std::f32::consts::TAU / 40.0;
                [t.cos(), t.sin()]
            })
            .collect();
        let users = [[1.0f32, 0.0], [-0.6, 0.8]];
        let k = 7;
        let lists: Vec<Vec<Hit>> = users
            .iter()
            .map(|u| {
                let hits = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| hit(i as u32, dot(u, v)));
                top_k(hits, k)
            })
            .collect();
        let best = items.iter().enumerate().map(|(i, v)| {
            let s = users.iter().map(|u| dot(u, v)).fold(f32::MIN, f32::max);
            hit(i as u32, s)
        });
        assert_eq!(merge(&lists, k), top_k(best, k));
    }

    #[test]
    fn exact_recall_scans_one_vector_and_merges_several_honouring_exclusions() {
        let items = [1.0f32, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0];
        let one = exact_recall(&items, 2, &[vec![1.0, 0.0]], None, |_| false, 3);
        assert_eq!(one, exact_scan(&items, 2, &[1.0, 0.0], None, |_| false, 3));
        let two = [vec![1.0, 0.0], vec![0.0, 1.0]];
        let merged = exact_recall(&items, 2, &two, None, |i| i == 0, 3);
        assert_eq!(merged, [hit(1, 1.0), hit(2, 0.8), hit(3, 0.0)]);
        assert_eq!(
            exact_recall(&items, 2, &two, Some(0.9), |_| false, 4),
            [hit(0, 1.0), hit(1, 1.0)]
        );
        assert!(exact_recall(&items, 2, &[], None, |_| false, 3).is_empty());
    }

    #[test]
    fn a_history_from_two_clusters_pools_into_one_interest_per_cluster() {
        // Most recent first, alternating between a cluster near x and one near y.
        let history: Vec<[f32; 3]> = vec![
            [1.0, 0.1, 0.0],
            [0.0, 1.0, 0.1],
            [0.9, 0.0, 0.1],
            [0.1, 0.9, 0.0],
            [1.0, 0.0, 0.0],
        ];
        let rows: Vec<&[f32]> = history.iter().map(|r| &r[..]).collect();
        let pooled = pool(&rows, 3, 2, ASSIGN_SCALE);
        assert_eq!(pooled.len(), 2);
        // Interest 1 is seeded by the most recent item (cluster x), interest 2 by the item
        // least like it (cluster y); each is close to its cluster's mean.
        assert!(pooled[0][0] > 0.9 && pooled[0][1] < 0.1, "{pooled:?}");
        assert!(pooled[1][1] > 0.9 && pooled[1][0] < 0.1, "{pooled:?}");
        // The single-interest pool is the plain mean, between the clusters.
        let mean = pool(&rows, 3, 1, ASSIGN_SCALE);
        let plain: Vec<f32> = (0..3)
            .map(|c| history.iter().map(|r| r[c]).sum::<f32>() / 5.0)
            .collect();
        for (a, b) in mean[0].iter().zip(&plain) {
            assert!((a - b).abs() < 1e-6, "{mean:?} vs {plain:?}");
        }
    }

    #[test]
    fn short_and_empty_histories_still_give_k_interests() {
        let one = [[0.0f32, 2.0]];
        let rows: Vec<&[f32]> = one.iter().map(|r| &r[..]).collect();
        assert_eq!(pool(&rows, 2, 3, ASSIGN_SCALE), vec![vec![0.0, 2.0]; 3]);
        assert_eq!(pool(&[], 2, 2, ASSIGN_SCALE), vec![vec![0.0, 0.0]; 2]);
    }
}
