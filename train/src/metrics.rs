//! Full-ranking metrics. Pure functions over ranked lists and held-out sets.
//!
//! Conventions (those of LightGCN/RecBole, so numbers compare with papers): Recall@K = hits in
//! the top K / number of held-out items; NDCG@K uses binary gains with the ideal DCG over
//! min(|held-out|, K) positions; HitRate@K = 1 when any held-out item is in the top K;
//! coverage@K = distinct items in anyone's top K / catalogue size.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

/// Cut-offs reported by `kan eval` (10 for comparison with RecBole's ML-100K tables).
pub const KS: [usize; 5] = [10, 20, 50, 100, 300];

pub fn recall_at(ranked: &[u32], truth: &HashSet<u32>, k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    hits(ranked, truth, k) as f64 / truth.len() as f64
}

pub fn hit_at(ranked: &[u32], truth: &HashSet<u32>, k: usize) -> f64 {
    if hits(ranked, truth, k) > 0 { 1.0 } else { 0.0 }
}

pub fn ndcg_at(ranked: &[u32], truth: &HashSet<u32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| truth.contains(i))
        .map(|(r, _)| 1.0 / ((r + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..truth.len().min(k))
        .map(|r| 1.0 / ((r + 2) as f64).log2())
        .sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

fn hits(ranked: &[u32], truth: &HashSet<u32>, k: usize) -> usize {
    ranked.iter().take(k).filter(|i| truth.contains(i)).count()
}

/// The `k` best indices by score, best first. NaN ranks below every number; equal scores keep
/// the lower index first; `excluded` indices never appear.
pub fn top_k(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<u32> {
    let mut skip = vec![false; scores.len()];
    for &e in excluded {
        if let Some(s) = skip.get_mut(e as usize) {
            *s = true;
        }
    }
    let mut idx: Vec<u32> = (0..scores.len() as u32)
        .filter(|&i| !skip[i as usize])
        .collect();
    let cmp = |a: &u32, b: &u32| {
        let (x, y) = (scores[*a as usize], scores[*b as usize]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => a.cmp(b),
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => y.partial_cmp(&x).unwrap_or(Ordering::Equal).then(a.cmp(b)),
        }
    };
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
        // Lists of every evaluated user are kept: without this each would hold the whole
        // catalogue's capacity (Gowalla: 164 KB a user, 5 GB a queue).
        idx.shrink_to_fit();
    }
    idx.sort_unstable_by(cmp);
    idx
}

/// Running means of every metric at every cut-off, plus the items seen per cut-off.
#[derive(Clone, Debug)]
pub struct Accumulator {
    n_items: usize,
    users: usize,
    sums: BTreeMap<String, f64>,
    seen: Vec<HashSet<u32>>,
    ks: Vec<usize>,
}

impl Accumulator {
    pub fn new(ks: &[usize], n_items: usize) -> Self {
        Accumulator {
            n_items,
            users: 0,
            sums: BTreeMap::new(),
            seen: vec![HashSet::new(); ks.len()],
            ks: ks.to_vec(),
        }
    }

    /// Adds one user's ranked list against their held-out items.
    pub fn add(&mut self, ranked: &[u32], truth: &HashSet<u32>) {
        self.users += 1;
        for (n, &k) in self.ks.iter().enumerate() {
            *self.sums.entry(format!("recall@{k}")).or_default() += recall_at(ranked, truth, k);
            *self.sums.entry(format!("ndcg@{k}")).or_default() += ndcg_at(ranked, truth, k);
            *self.sums.entry(format!("hit@{k}")).or_default() += hit_at(ranked, truth, k);
            self.seen[n].extend(ranked.iter().take(k));
        }
    }

    pub fn merge(&mut self, other: Accumulator) {
        self.users += other.users;
        for (k, v) in other.sums {
            *self.sums.entry(k).or_default() += v;
        }
        for (mine, theirs) in self.seen.iter_mut().zip(other.seen) {
            mine.extend(theirs);
        }
    }

    /// Means over users, coverage over the catalogue, and `users`.
    pub fn finish(&self) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = self
            .sums
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if self.users == 0 {
                        0.0
                    } else {
                        v / self.users as f64
                    },
                )
            })
            .collect();
        for (n, &k) in self.ks.iter().enumerate() {
            let cov = if self.n_items == 0 {
                0.0
            } else {
                self.seen[n].len() as f64 / self.n_items as f64
            };
            out.insert(format!("coverage@{k}"), cov);
        }
        out.insert("users".to_string(), self.users as f64);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> HashSet<u32> {
        items.iter().copied().collect()
    }

    #[test]
    fn recall_hit_and_ndcg_match_hand_computed_values() {
        // Held out {1, 4, 9}; ranked list hits 1 at rank 2 and 4 at rank 4.
        let ranked = [7, 1, 3, 4, 5];
        let truth = set(&[1, 4, 9]);
        assert!((recall_at(&ranked, &truth, 2) - 1.0 / 3.0).abs() < 1e-12);
        assert!((recall_at(&ranked, &truth, 5) - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(hit_at(&ranked, &truth, 1), 0.0);
        assert_eq!(hit_at(&ranked, &truth, 2), 1.0);
        // DCG = 1/log2(3) + 1/log2(5); IDCG over 3 positions = 1 + 1/log2(3) + 1/log2(4).
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!((ndcg_at(&ranked, &truth, 5) - dcg / idcg).abs() < 1e-12);
        // With K = 2 the ideal has only 2 positions.
        let idcg2 = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg_at(&ranked, &truth, 2) - (1.0 / 3f64.log2()) / idcg2).abs() < 1e-12);
    }

    #[test]
    fn a_perfect_ranking_scores_one_and_an_empty_truth_scores_zero() {
        let truth = set(&[3, 2]);
        assert_eq!(ndcg_at(&[2, 3, 9], &truth, 20), 1.0);
        assert_eq!(recall_at(&[2, 3, 9], &truth, 20), 1.0);
        assert_eq!(recall_at(&[2], &set(&[]), 20), 0.0);
        assert_eq!(ndcg_at(&[2], &set(&[]), 20), 0.0);
    }

    #[test]
    fn top_k_orders_by_score_puts_nan_last_and_skips_excluded() {
        let scores = [0.5, f32::NAN, 0.9, 0.5, 0.1, f32::INFINITY];
        assert_eq!(top_k(&scores, 10, &[]), [5, 2, 0, 3, 4, 1]);
        assert_eq!(top_k(&scores, 3, &[2]), [5, 0, 3]);
        assert_eq!(top_k(&scores, 0, &[]), Vec::<u32>::new());
    }

    #[test]
    fn a_top_k_list_holds_k_entries_of_memory_not_the_catalogues() {
        let scores: Vec<f32> = (0..100_000).map(|i| (i % 977) as f32).collect();
        let list = top_k(&scores, 300, &[]);
        assert_eq!(list.len(), 300);
        assert!(list.capacity() < 1000, "capacity {}", list.capacity());
    }

    #[test]
    fn the_accumulator_averages_over_users_and_counts_coverage() {
        let mut acc = Accumulator::new(&[1, 2], 10);
        acc.add(&[1, 2], &set(&[2]));
        let mut other = Accumulator::new(&[1, 2], 10);
        other.add(&[3, 2], &set(&[3, 4]));
        acc.merge(other);
        let m = acc.finish();
        assert_eq!(m["users"], 2.0);
        assert!((m["recall@1"] - (0.0 + 0.5) / 2.0).abs() < 1e-12);
        assert!((m["recall@2"] - (1.0 + 0.5) / 2.0).abs() < 1e-12);
        assert!((m["hit@1"] - 0.5).abs() < 1e-12);
        assert!((m["coverage@1"] - 0.2).abs() < 1e-12);
        assert!((m["coverage@2"] - 0.3).abs() < 1e-12);
    }
}
