//! Ranking: the hit type every kernel returns, top-k selection with one tie rule, and the
//! dense score accumulator the aggregation kernels (item-CF, social) share.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A set of internal item indices (exclusions, seen items) with a fast non-cryptographic hash:
/// std's SipHash on every membership test was a measurable share of request CPU (perf).
pub type ItemSet = foldhash::HashSet<u32>;

/// One recalled item: an internal item index and its score (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub item: u32,
    pub score: f32,
}

#[derive(PartialEq)]
struct Ranked(Hit);
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    // Better = higher score, then lower item index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .score
            .total_cmp(&other.0.score)
            .then_with(|| other.0.item.cmp(&self.0.item))
    }
}

/// Keeps the best `limit` hits, best first; NaN scores never enter, ties keep the lower item
/// index first. Streams through a bounded heap: for long scans (a catalogue) it holds only
/// `limit` hits. For hits already in memory [`top_k_of`] is cheaper.
pub fn top_k(hits: impl Iterator<Item = Hit>, limit: usize) -> Vec<Hit> {
    if limit == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(limit + 1);
    for hit in hits.filter(|h| !h.score.is_nan()) {
        if heap.len() < limit {
            heap.push(Reverse(Ranked(hit)));
        } else if let Some(worst) = heap.peek()
            && Ranked(hit) > worst.0
        {
            heap.pop();
            heap.push(Reverse(Ranked(hit)));
        }
    }
    let mut out: Vec<Hit> = heap.into_iter().map(|r| r.0.0).collect();
    out.sort_unstable_by(best_first);
    out
}

/// [`top_k`] of hits already collected (each item at most once): a linear-time selection then a
/// sort of the `limit` kept, instead of a heap operation per hit. Same order, same tie rule.
pub fn top_k_of(mut hits: Vec<Hit>, limit: usize) -> Vec<Hit> {
    hits.retain(|h| !h.score.is_nan());
    if hits.len() > limit {
        if limit == 0 {
            return Vec::new();
        }
        hits.select_nth_unstable_by(limit - 1, best_first);
        hits.truncate(limit);
    }
    hits.sort_unstable_by(best_first);
    hits
}

/// Better first: higher score, then lower item index (a total order on distinct items).
fn best_first(a: &Hit, b: &Hit) -> Ordering {
    Ranked(*b).cmp(&Ranked(*a))
}

const UNTOUCHED: u8 = 0;
const SCORED: u8 = 1;
const REMOVED: u8 = 2;

/// Dense per-item score sums: an array indexed by item plus the list of touched items, so
/// adding is an array write (no hashing) and clearing costs only what was touched. Kernels
/// borrow a per-thread one through [`with_scores`], so a request allocates nothing once warm.
#[derive(Default)]
pub struct Scores {
    score: Vec<f32>,
    state: Vec<u8>,
    touched: Vec<u32>,
}

impl Scores {
    /// Adds `w` to `item`'s score (a removed item stays removed).
    #[inline]
    pub fn add(&mut self, item: u32, w: f32) {
        let i = item as usize;
        if i >= self.score.len() {
            self.grow(i + 1);
        }
        match self.state[i] {
            UNTOUCHED => {
                self.state[i] = SCORED;
                self.score[i] = w;
                self.touched.push(item);
            }
            SCORED => self.score[i] += w,
            _ => {}
        }
    }

    /// Takes `item` out of the result whatever is added to it.
    pub fn remove(&mut self, item: u32) {
        let i = item as usize;
        if i >= self.score.len() {
            self.grow(i + 1);
        }
        if self.state[i] == UNTOUCHED {
            self.touched.push(item);
        }
        self.state[i] = REMOVED;
    }

    /// True when `item` was removed (history, exclusions).
    #[inline]
    pub fn is_removed(&self, item: u32) -> bool {
        self.state.get(item as usize) == Some(&REMOVED)
    }

    /// The best `k` scored items (see [`top_k`]); clears the accumulator.
    pub fn top_k(&mut self, k: usize) -> Vec<Hit> {
        let out = top_k_of(self.entries().collect(), k);
        self.clear();
        out
    }

    /// The scored items with their sums, in the order they were first added (deterministic
    /// for a deterministic sequence of adds); removed items are left out.
    pub fn entries(&self) -> impl Iterator<Item = Hit> + '_ {
        self.touched
            .iter()
            .filter(|&&i| self.state[i as usize] == SCORED)
            .map(|&item| Hit {
                item,
                score: self.score[item as usize],
            })
    }

    /// Empties the accumulator (costs only what was touched).
    pub fn clear(&mut self) {
        for &i in &self.touched {
            self.state[i as usize] = UNTOUCHED;
        }
        self.touched.clear();
    }

    fn grow(&mut self, len: usize) {
        self.score.resize(len, 0.0);
        self.state.resize(len, UNTOUCHED);
    }
}

/// Accumulators kept per thread for reuse; nesting (attribute expansion sums inside a sum)
/// takes a second one. Bounded so a deep nesting cannot pin memory.
const POOLED: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<Scores>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty accumulator of this thread's pool (a nested call gets another one),
/// so a request allocates nothing once the thread is warm.
pub fn with_scores<R>(f: impl FnOnce(&mut Scores) -> R) -> R {
    let mut scores = POOL
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default();
    scores.clear();
    let out = f(&mut scores);
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOLED {
            pool.push(scores);
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(item: u32, score: f32) -> Hit {
        Hit { item, score }
    }

    #[test]
    fn top_k_keeps_the_best_ranks_nan_out_and_breaks_ties_by_lower_index() {
        let hits = vec![
            hit(0, 0.1),
            hit(1, f32::NAN),
            hit(2, 0.9),
            hit(5, 0.5),
            hit(3, 0.5),
            hit(4, f32::NEG_INFINITY),
        ];
        assert_eq!(
            top_k(hits.clone().into_iter(), 3),
            [hit(2, 0.9), hit(3, 0.5), hit(5, 0.5)]
        );
        assert_eq!(top_k(hits.into_iter(), 0), []);
    }

    #[test]
    fn scores_sum_per_item_and_removed_items_never_come_back() {
        let mut s = Scores::default();
        s.add(3, 1.0);
        s.add(7, 0.5);
        s.add(3, 0.25);
        s.remove(7);
        s.add(7, 9.0);
        s.remove(11);
        assert!(s.is_removed(7) && s.is_removed(11) && !s.is_removed(3) && !s.is_removed(99));
        assert_eq!(s.top_k(10), [hit(3, 1.25)]);
        // Taking the result cleared everything, removals included.
        s.add(7, 2.0);
        assert_eq!(s.top_k(10), [hit(7, 2.0)]);
    }

    #[test]
    fn entries_come_in_first_added_order_without_removed_items_until_cleared() {
        let mut s = Scores::default();
        s.add(9, 1.0);
        s.add(2, 0.5);
        s.add(9, 0.25);
        s.add(5, 2.0);
        s.remove(5);
        assert_eq!(s.entries().collect::<Vec<_>>(), [hit(9, 1.25), hit(2, 0.5)]);
        s.clear();
        assert_eq!(s.entries().count(), 0);
        s.add(5, 1.0);
        assert_eq!(s.entries().collect::<Vec<_>>(), [hit(5, 1.0)]);
    }

    #[test]
    fn top_k_of_collected_hits_equals_the_streaming_top_k() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        let mut rng = SmallRng::seed_from_u64(7);
        for n in [0usize, 1, 5, 50, 400] {
            // Coarse scores so ties are common; a few NaN and infinities.
            let hits: Vec<Hit> = (0..n as u32)
                .map(|item| {
                    let score = match rng.random_range(0..20) {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        2 => f32::INFINITY,
                        r => r as f32 / 4.0,
                    };
                    hit(item * 3 % 401, score)
                })
                .collect();
            for limit in [0usize, 1, 3, 10, 300, 1000] {
                assert_eq!(
                    top_k_of(hits.clone(), limit),
                    top_k(hits.iter().copied(), limit),
                    "n {n}, limit {limit}"
                );
            }
        }
    }

    #[test]
    fn a_nested_accumulator_does_not_see_the_outer_ones_scores() {
        let out = with_scores(|outer| {
            outer.add(1, 1.0);
            let inner = with_scores(|inner| {
                inner.add(2, 1.0);
                inner.top_k(5)
            });
            (outer.top_k(5), inner)
        });
        assert_eq!(out, (vec![hit(1, 1.0)], vec![hit(2, 1.0)]));
        assert_eq!(with_scores(|s| s.top_k(5)), []);
        // Pooled accumulators come back empty, even when left unfinished.
        with_scores(|outer| {
            outer.add(3, 1.0);
            with_scores(|inner| inner.add(4, 1.0));
        });
        let again = with_scores(|outer| {
            let inner = with_scores(|inner| inner.entries().count());
            (outer.entries().count(), inner)
        });
        assert_eq!(again, (0, 0));
    }
}
