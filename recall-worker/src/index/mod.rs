//! Nearest-neighbour search over item vectors behind one trait, so strategies do not know which
//! backend they talk to: [`exact::ExactIndex`] (brute force; small catalogues and the recall
//! baseline), [`hnsw::HnswIndex`] (embedded HNSW) and [`qdrant::QdrantIndex`] (a Qdrant server).

pub mod exact;
pub mod hnsw;
pub mod qdrant;

use std::collections::HashSet;

use futures::future::BoxFuture;

use crate::error::Result;

/// One search result: an internal item index and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub item: u32,
    pub score: f32,
}

/// What a search asks for.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams<'a> {
    /// Most hits returned.
    pub limit: usize,
    /// Hits scoring below this are dropped.
    pub score_threshold: Option<f32>,
    /// Internal item indices that must not be returned.
    pub exclude: &'a HashSet<u32>,
}

/// A vector index over one bundle's item vectors (internal item index = point id).
pub trait VectorIndex: Send + Sync {
    /// Backend name, used in metrics and `/readyz`.
    fn name(&self) -> &'static str;

    /// Top `limit` items by cosine similarity to `query` (L2-normalised), best first.
    fn search<'a>(
        &'a self,
        query: &'a [f32],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Hit>>>;

    /// Ok when the index can serve (for `/readyz`).
    fn check(&self) -> BoxFuture<'_, Result<()>>;
}

/// Catalogues up to this size are searched exactly: a scan is as fast as HNSW there and exact.
pub const EXACT_SCAN_MAX_ITEMS: usize = 20_000;

/// Keeps the best `limit` hits; NaN scores never enter, ties keep the lower item index first.
pub(crate) fn top_k(hits: impl Iterator<Item = Hit>, limit: usize) -> Vec<Hit> {
    use std::cmp::{Ordering, Reverse};
    use std::collections::BinaryHeap;

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
    out.sort_by_key(|h| Reverse(Ranked(*h)));
    out
}

/// Dot product in eight independent lanes, so LLVM vectorises it: a plain `sum()` over f32 is
/// one serial chain (float addition is not associative) and runs several times slower. Every
/// distance in the exact scan and the HNSW graph goes through here.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// L2-normalises in place; false when the vector has no direction (all zero or not finite).
pub fn normalise(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= f32::EPSILON {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(item: u32, score: f32) -> Hit {
        Hit { item, score }
    }

    #[test]
    fn top_k_keeps_the_best_and_ranks_nan_out() {
        let hits = vec![
            hit(0, 0.1),
            hit(1, f32::NAN),
            hit(2, 0.9),
            hit(3, 0.5),
            hit(4, f32::NEG_INFINITY),
        ];
        assert_eq!(top_k(hits.into_iter(), 2), vec![hit(2, 0.9), hit(3, 0.5)]);
    }

    #[test]
    fn top_k_breaks_ties_by_lower_item_index() {
        let hits = vec![hit(5, 0.5), hit(1, 0.5), hit(3, 0.5)];
        assert_eq!(top_k(hits.into_iter(), 2), vec![hit(1, 0.5), hit(3, 0.5)]);
    }

    #[test]
    fn dot_matches_the_naive_sum_for_every_length() {
        for n in [0, 1, 7, 8, 9, 64, 67] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 / (1.0 + i as f32)).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "length {n}");
        }
    }

    #[test]
    fn zero_vectors_cannot_be_normalised() {
        assert!(!normalise(&mut [0.0, 0.0]));
        let mut v = [3.0, 4.0];
        assert!(normalise(&mut v));
        assert_eq!(v, [0.6, 0.8]);
    }
}
