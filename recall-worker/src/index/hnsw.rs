//! The embedded ANN backend: an in-process HNSW graph (`hnsw_rs`) built from the bundle's item
//! vectors at start-up.
//!
//! Why not `qdrant-edge`: neither published version builds on stable Rust. 0.9.0 and 0.8.0 both
//! fail in `src/shard/optimize.rs` on `std::debug_assert_matches` (unstable `assert_matches`,
//! E0658) with rustc 1.95 — checked for 0.8.0 after an 18-minute build of its ~480 dependencies.
//! Vendoring or patching it is not an option, so the embedded backend is `hnsw_rs`: pure Rust,
//! maintained, and it meets the recall target (see BENCHMARKS.md).

use std::collections::HashSet;

use futures::future::BoxFuture;
use hnsw_rs::prelude::{Distance, Hnsw};

use super::{Hit, SearchParams, VectorIndex, dot};
use crate::error::Result;

/// Graph parameters.
#[derive(Debug, Clone, Copy)]
pub struct HnswParams {
    /// Links per node (M).
    pub max_connections: usize,
    /// Candidate list width while building.
    pub ef_construction: usize,
    /// Candidate list width while searching (raised to `limit` when smaller).
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            max_connections: 24,
            ef_construction: 200,
            ef_search: 256,
        }
    }
}

/// Cosine distance for L2-normalised vectors. `anndists`' `DistDot` asserts `dot <= 1`, which
/// rounding breaks for near-identical vectors; this clamps instead of panicking.
#[derive(Debug, Clone, Copy, Default)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - dot(va, vb)).max(0.0)
    }
}

/// HNSW over `[N, dim]` vectors; point id = internal item index.
pub struct HnswIndex {
    dim: usize,
    graph: Hnsw<'static, f32, CosineDistance>,
    params: HnswParams,
}

impl HnswIndex {
    /// Builds the graph (in parallel on all cores).
    pub fn build(dim: usize, vectors: &[f32], params: HnswParams) -> Self {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let max_layer = 16;
        let graph = Hnsw::new(
            params.max_connections.min(256),
            n.max(1),
            max_layer,
            params.ef_construction,
            CosineDistance,
        );
        let points: Vec<(&[f32], usize)> = vectors
            .chunks_exact(dim.max(1))
            .enumerate()
            .map(|(i, v)| (v, i))
            .collect();
        graph.parallel_insert_slice(&points);
        let mut index = Self { dim, graph, params };
        index.graph.set_searching_mode(true);
        index
    }

    /// The synchronous search, shared with benchmarks.
    pub fn search_sync(&self, query: &[f32], params: SearchParams<'_>) -> Vec<Hit> {
        if query.len() != self.dim || params.limit == 0 {
            return Vec::new();
        }
        let exclude: &HashSet<u32> = params.exclude;
        // Few exclusions (the history, a page of seen items): over-fetch by their number and drop
        // them afterwards. hnsw_rs' filtered search checks the filter inside the graph walk and
        // made dssm requests tens of times slower than unfiltered search (BENCHMARKS.md, Worker);
        // it is kept for exclusion lists larger than the page itself.
        let found = if exclude.len() <= params.limit {
            let fetch = params.limit + exclude.len();
            let ef = self.params.ef_search.max(fetch);
            self.graph.search(query, fetch, ef)
        } else {
            let ef = self.params.ef_search.max(params.limit);
            let keep = |id: &usize| !exclude.contains(&(*id as u32));
            self.graph
                .search_filter(query, params.limit, ef, Some(&keep))
        };
        let threshold = params.score_threshold.unwrap_or(f32::NEG_INFINITY);
        let hits = found
            .into_iter()
            .map(|n| Hit {
                item: n.d_id as u32,
                score: 1.0 - n.distance,
            })
            .filter(|h| h.score >= threshold && !exclude.contains(&h.item));
        super::top_k(hits, params.limit)
    }
}

impl VectorIndex for HnswIndex {
    fn name(&self) -> &'static str {
        "hnsw"
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
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::index::exact::ExactIndex;
    use crate::synthetic::clustered_vectors;

    #[test]
    fn hnsw_finds_what_the_exact_scan_finds_on_clustered_vectors() {
        let (dim, n) = (16, 3000);
        let vectors = clustered_vectors(n, dim, 20, 7);
        let hnsw = HnswIndex::build(dim, &vectors, HnswParams::default());
        let exact = ExactIndex::new(dim, Arc::new(vectors.clone()));
        let none = HashSet::new();
        let mut found = 0;
        let queries = 20;
        for q in 0..queries {
            let query = &vectors[q * 97 * dim..(q * 97 + 1) * dim];
            let p = SearchParams {
                limit: 50,
                score_threshold: None,
                exclude: &none,
            };
            let truth: HashSet<u32> = exact.search_sync(query, p).iter().map(|h| h.item).collect();
            found += hnsw
                .search_sync(query, p)
                .iter()
                .filter(|h| truth.contains(&h.item))
                .count();
        }
        let recall = found as f64 / (queries * 50) as f64;
        assert!(recall >= 0.95, "recall@50 {recall}");
    }

    #[test]
    fn hnsw_never_returns_excluded_items() {
        let dim = 8;
        let vectors = clustered_vectors(500, dim, 5, 1);
        let hnsw = HnswIndex::build(dim, &vectors, HnswParams::default());
        let exclude: HashSet<u32> = (0..250).collect();
        let hits = hnsw.search_sync(
            &vectors[..dim],
            SearchParams {
                limit: 20,
                score_threshold: None,
                exclude: &exclude,
            },
        );
        assert_eq!(hits.len(), 20);
        assert!(hits.iter().all(|h| h.item >= 250));
    }
}
