//! Nearest-neighbour search over item vectors behind one trait, so strategies do not know which
//! backend they talk to: [`exact::ExactIndex`] (brute force; small catalogues and the recall
//! baseline), [`hnsw::HnswIndex`] (embedded HNSW) and [`qdrant::QdrantIndex`] (a Qdrant server).

pub mod added;
pub mod exact;
pub mod hnsw;
pub mod qdrant;

pub use kan_core::ItemSet;

use futures::future::BoxFuture;

use crate::error::Result;

/// One search result: an internal item index and its cosine similarity (the core's hit type).
pub use kan_core::Hit;

/// What a search asks for.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams<'a> {
    /// Most hits returned.
    pub limit: usize,
    /// Hits scoring below this are dropped.
    pub score_threshold: Option<f32>,
    /// Internal item indices that must not be returned.
    pub exclude: &'a ItemSet,
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

    /// The hits of several queries with the same parameters (a multi-interest user's K
    /// vectors), one list per query in order. The default runs [`VectorIndex::search`] for each
    /// in turn (the embedded indexes search on the calling thread anyway); a remote backend
    /// sends them in one request.
    fn search_many<'a>(
        &'a self,
        queries: &'a [Vec<f32>],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Vec<Hit>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(queries.len());
            for query in queries {
                out.push(self.search(query, params).await?);
            }
            Ok(out)
        })
    }

    /// Ok when the index can serve (for `/readyz`).
    fn check(&self) -> BoxFuture<'_, Result<()>>;

    /// Resolves once a load this index runs in the background (a Qdrant collection the worker
    /// loads itself) is complete, or fails with why it is not; at once for every other index.
    /// A reload waits on it before replacing a queue that serves.
    fn loaded(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the vectors of items added after training can be searched beside this index
    /// ([`added::WithAdded`]): the embedded indexes, whose whole catalogue this worker holds;
    /// not a remote collection, which other workers read too.
    fn takes_added(&self) -> bool {
        false
    }
}

/// Catalogues up to this size are searched exactly: a scan is as fast as HNSW there and exact.
pub const EXACT_SCAN_MAX_ITEMS: usize = 20_000;

// Top-k selection and the vector arithmetic live in the core, shared with `kan eval`.
pub(crate) use kan_core::top_k;
pub use kan_core::vector::{dot, normalise};
