//! Exact search: a full scan of the item matrix. Used for small catalogues and as the baseline
//! the ANN backends are measured against.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Hit, SearchParams, VectorIndex};
use crate::error::Result;

/// Brute-force cosine search over L2-normalised vectors (a dot product per item).
pub struct ExactIndex {
    dim: usize,
    vectors: Arc<Vec<f32>>,
}

impl ExactIndex {
    /// `vectors` is row-major `[N, dim]`.
    pub fn new(dim: usize, vectors: Arc<Vec<f32>>) -> Self {
        Self { dim, vectors }
    }

    /// The synchronous search, shared with benchmarks.
    pub fn search_sync(&self, query: &[f32], params: SearchParams<'_>) -> Vec<Hit> {
        // Hashing every item against an empty set cost more than its dot product.
        let filter = !params.exclude.is_empty();
        kan_core::vector::exact_scan(
            &self.vectors,
            self.dim,
            query,
            params.score_threshold,
            |item| filter && params.exclude.contains(&item),
            params.limit,
        )
    }
}

impl VectorIndex for ExactIndex {
    fn name(&self) -> &'static str {
        "exact"
    }

    fn search<'a>(
        &'a self,
        query: &'a [f32],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move { Ok(self.search_sync(query, params)) })
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn takes_added(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use kan_core::ItemSet;

    use super::*;

    #[test]
    fn exact_search_ranks_by_dot_product_and_honours_exclude_and_threshold() {
        let vectors = vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let index = ExactIndex::new(2, Arc::new(vectors));
        let none = ItemSet::default();
        let all = index.search_sync(
            &[1.0, 0.0],
            SearchParams {
                limit: 3,
                score_threshold: None,
                exclude: &none,
            },
        );
        assert_eq!(
            all.iter().map(|h| h.item).collect::<Vec<_>>(),
            vec![0, 2, 1]
        );
        let exclude = ItemSet::from_iter([0]);
        let some = index.search_sync(
            &[1.0, 0.0],
            SearchParams {
                limit: 3,
                score_threshold: Some(0.5),
                exclude: &exclude,
            },
        );
        assert_eq!(some.iter().map(|h| h.item).collect::<Vec<_>>(), vec![2]);
    }
}
