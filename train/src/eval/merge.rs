//! Merging several queues' ranked lists into one, as the gateway does, for offline evaluation.
//! Pure functions; every output is de-duplicated and at most `total` long.

use std::collections::{HashMap, HashSet};

/// One queue's list with its merge settings.
#[derive(Clone, Copy, Debug)]
pub struct Ranked<'a> {
    pub weight: f64,
    pub quota: usize,
    pub items: &'a [u32],
}

/// Reciprocal rank fusion: score(i) = Σ_q weight_q / (k + rank_q(i)), rank from 1.
pub fn rrf(lists: &[Ranked], k: f64, total: usize) -> Vec<u32> {
    let mut score: HashMap<u32, f64> = HashMap::new();
    let mut first_seen: HashMap<u32, (usize, usize)> = HashMap::new();
    for (q, l) in lists.iter().enumerate() {
        for (r, &i) in l.items.iter().enumerate() {
            *score.entry(i).or_default() += l.weight / (k + (r + 1) as f64);
            first_seen.entry(i).or_insert((r, q));
        }
    }
    let mut items: Vec<u32> = score.keys().copied().collect();
    // Ties go to the item that appeared at the better rank (then the earlier queue).
    items.sort_by(|a, b| {
        score[b]
            .total_cmp(&score[a])
            .then(first_seen[a].cmp(&first_seen[b]))
    });
    items.truncate(total);
    items
}

/// Smooth weighted round-robin: each turn the queue with the most accumulated credit gives its
/// next unseen item, so over any window queues contribute in proportion to their weights.
pub fn weighted_interleave(lists: &[Ranked], total: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = vec![0usize; lists.len()];
    let mut credit = vec![0f64; lists.len()];
    let sum: f64 = lists.iter().map(|l| l.weight.max(0.0)).sum();
    while out.len() < total {
        let live: Vec<usize> = (0..lists.len())
            .filter(|&q| cursor[q] < lists[q].items.len() && lists[q].weight > 0.0)
            .collect();
        if live.is_empty() {
            break;
        }
        for &q in &live {
            credit[q] += lists[q].weight;
        }
        let best = live
            .iter()
            .copied()
            .fold(live[0], |b, q| if credit[q] > credit[b] { q } else { b });
        credit[best] -= sum;
        // Advance the chosen queue past items already merged.
        while cursor[best] < lists[best].items.len() {
            let item = lists[best].items[cursor[best]];
            cursor[best] += 1;
            if seen.insert(item) {
                out.push(item);
                break;
            }
        }
    }
    out
}

/// Each queue first contributes up to its quota, in queue order; the remaining slots are filled
/// by rank position across queues (all rank-1 items, then rank-2, ...).
pub fn quota(lists: &[Ranked], total: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for l in lists {
        let mut taken = 0;
        for &i in l.items {
            if taken >= l.quota || out.len() >= total {
                break;
            }
            if seen.insert(i) {
                out.push(i);
                taken += 1;
            }
        }
    }
    let longest = lists.iter().map(|l| l.items.len()).max().unwrap_or(0);
    for r in 0..longest {
        for l in lists {
            if out.len() >= total {
                return out;
            }
            if let Some(&i) = l.items.get(r)
                && seen.insert(i)
            {
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(weight: f64, quota: usize, items: &[u32]) -> Ranked<'_> {
        Ranked {
            weight,
            quota,
            items,
        }
    }

    #[test]
    fn rrf_sums_reciprocal_ranks_across_queues() {
        // k = 1: item 2 gets 1/3 + 1/2, item 1 gets 1/2, item 3 gets 1/3.
        let a = [1, 2];
        let b = [2, 3];
        assert_eq!(rrf(&[q(1.0, 0, &a), q(1.0, 0, &b)], 1.0, 10), [2, 1, 3]);
        // A heavy weight on b puts its items first.
        assert_eq!(rrf(&[q(1.0, 0, &a), q(10.0, 0, &b)], 1.0, 2), [2, 3]);
    }

    #[test]
    fn weighted_interleave_follows_weights_and_skips_duplicates() {
        let a = [1, 2, 3, 4];
        let b = [1, 5, 6];
        assert_eq!(
            weighted_interleave(&[q(2.0, 0, &a), q(1.0, 0, &b)], 6),
            [1, 5, 2, 3, 6, 4]
        );
        assert_eq!(
            weighted_interleave(&[q(1.0, 0, &a), q(1.0, 0, &b)], 3),
            [1, 5, 2]
        );
    }

    #[test]
    fn quota_gives_each_queue_its_share_then_fills_by_rank() {
        let a = [1, 2, 3];
        let b = [2, 7, 8];
        assert_eq!(quota(&[q(1.0, 1, &a), q(1.0, 2, &b)], 10), [1, 2, 7, 3, 8]);
        assert_eq!(quota(&[q(1.0, 1, &a), q(1.0, 2, &b)], 2), [1, 2]);
    }

    #[test]
    fn every_merge_conserves_items_without_duplicates() {
        let a = [1, 2, 3, 4];
        let b = [4, 5, 1, 6];
        let lists = [q(1.0, 2, &a), q(3.0, 2, &b)];
        for merged in [
            rrf(&lists, 60.0, 100),
            weighted_interleave(&lists, 100),
            quota(&lists, 100),
        ] {
            let mut m = merged.clone();
            m.sort();
            assert_eq!(m, [1, 2, 3, 4, 5, 6], "{merged:?}");
        }
    }
}
