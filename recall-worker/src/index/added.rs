//! The bundle's embedded index plus the vectors of items added after training
//! (`POST /v1/items`), numbered after the bundle's items: the bundle's index answers for its
//! items, an exact scan for the added ones, and the two lists are merged by score.
//!
//! Why beside the graph and not inserted into it: the bundle's graph is shared with the strategy
//! value still serving (and saved to the bundle cache), so an insert would change what it
//! serves before the post is validated and persisted, and USearch's `reserve` is not safe while
//! searches run; a rebuild costs the graph's build time (477 s at 1M items, BENCHMARKS.md). The
//! scan is exact, so a new item is found whenever it scores, and its cost is bounded by
//! [`MAX_ADDED_VECTORS`].

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{EXACT_SCAN_MAX_ITEMS, Hit, SearchParams, VectorIndex};
use crate::error::Result;

/// Most added vectors a queue scans per request: the catalogue size the worker scans exactly
/// instead of building a graph. Past it, retrain.
pub const MAX_ADDED_VECTORS: usize = EXACT_SCAN_MAX_ITEMS;

pub struct WithAdded {
    base: Arc<dyn VectorIndex>,
    /// Catalogue index of the first added item (the bundle's item count).
    first: u32,
    dim: usize,
    /// Row-major `[added, dim]`, L2-normalised like the bundle's item vectors.
    vectors: Vec<f32>,
}

impl WithAdded {
    pub fn new(base: Arc<dyn VectorIndex>, first: u32, dim: usize, vectors: Vec<f32>) -> Self {
        Self {
            base,
            first,
            dim,
            vectors,
        }
    }

    fn scan(&self, query: &[f32], params: SearchParams<'_>) -> Vec<Hit> {
        let first = self.first;
        let mut hits = kan_core::vector::exact_scan(
            &self.vectors,
            self.dim,
            query,
            params.score_threshold,
            |i| params.exclude.contains(&(first + i)),
            params.limit,
        );
        hits.iter_mut().for_each(|h| h.item += first);
        hits
    }
}

impl VectorIndex for WithAdded {
    fn name(&self) -> &'static str {
        self.base.name()
    }

    fn search<'a>(
        &'a self,
        query: &'a [f32],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let trained = self.base.search(query, params).await?;
            let added = self.scan(query, params);
            Ok(super::top_k(trained.into_iter().chain(added), params.limit))
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        self.base.check()
    }

    fn loaded(&self) -> BoxFuture<'_, Result<()>> {
        self.base.loaded()
    }

    fn takes_added(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use kan_core::ItemSet;

    use super::*;
    use crate::index::exact::ExactIndex;

    fn items(hits: &[Hit]) -> Vec<u32> {
        hits.iter().map(|h| h.item).collect()
    }

    #[tokio::test]
    async fn added_vectors_rank_beside_the_bundles_by_score_under_the_same_params() {
        // Bundle: items 0 (x axis), 1 (y axis); added: items 2 (near x), 3 (-x).
        let base = Arc::new(ExactIndex::new(2, Arc::new(vec![1.0, 0.0, 0.0, 1.0])));
        let index = WithAdded::new(base, 2, 2, vec![0.8, 0.6, -1.0, 0.0]);
        let none = ItemSet::default();
        let params = |limit, exclude, score_threshold| SearchParams {
            limit,
            score_threshold,
            exclude,
        };
        let all = index.search(&[1.0, 0.0], params(4, &none, None)).await;
        assert_eq!(items(&all.unwrap()), [0, 2, 1, 3]);
        let excluded = ItemSet::from_iter([2]);
        let some = index
            .search(&[1.0, 0.0], params(4, &excluded, Some(-0.5)))
            .await;
        assert_eq!(items(&some.unwrap()), [0, 1]);
        let top = index.search(&[0.6, 0.8], params(1, &none, None)).await;
        assert_eq!(items(&top.unwrap()), [2]);
    }
}
