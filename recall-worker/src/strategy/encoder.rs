//! The model strategies (dssm, gat): one encoder strategy. The user's history goes through the
//! bundle's ONNX user encoder (a two-tower user tower, or a graph-attention encoder over the
//! history items' graph embeddings), and the user vector is searched in the item index. A
//! multi-interest model (`user_embedding` `[B, K, D]`) gives K vectors: each is searched and
//! the lists merged by [`kan_core::interests::merge`] (best score per item, then top k), as
//! `kan eval` merges its exact scans. Cold start: no history, no candidates.
//!
//! Items added after training (`POST /v1/items`) bring a content vector in the item tower's
//! space ([`super::added_vectors`]) and are searched beside the bundle's index. The encoder has
//! no embedding for them: one in a history is not recalled again but does not shape the user
//! vector.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::crd::EncoderSettings;

use kan_api::wire::NewItem;

use super::added_vectors::{self, Added};
use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, SearchParams, VectorIndex};
use kan_onnx::UserEncoder;

pub struct EncoderRecall {
    /// `dssm` or `gat`: the strategy type served.
    name: &'static str,
    bundle: Arc<Bundle>,
    encoder: Arc<UserEncoder>,
    /// The bundle's index; `index` searches it and the added items' vectors.
    base: Arc<dyn VectorIndex>,
    index: Arc<dyn VectorIndex>,
    /// Items added after training; `None` while none were added.
    added: Option<Arc<Added>>,
    score_threshold: Option<f32>,
}

impl EncoderRecall {
    pub fn new(
        name: &'static str,
        bundle: Arc<Bundle>,
        encoder: UserEncoder,
        index: Arc<dyn VectorIndex>,
        settings: &EncoderSettings,
    ) -> Self {
        Self {
            name,
            bundle,
            encoder: Arc::new(encoder),
            base: index.clone(),
            index,
            added: None,
            score_threshold: settings.score_threshold.map(|t| t as f32),
        }
    }

    /// The user's vectors ([`UserEncoder::query_vectors`], as `kan eval` scores them) searched
    /// in the index. Cold start (empty history) and vectors without direction: no candidates;
    /// the gateway's fallback fills the list.
    async fn encode_and_search(&self, query: &Query<'_>) -> Result<Vec<Hit>> {
        let strategy = self.name;
        if query.history.is_empty() {
            return Ok(Vec::new());
        }
        // The model embeds only the bundle's items.
        let n = self.bundle.items.len() as u32;
        let trained: Vec<u32> = query.history.iter().copied().filter(|&i| i < n).collect();
        if trained.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let users = self.encoder.query_vectors(&trained)?;
        metrics::histogram!(crate::metrics::INFERENCE_SECONDS, "strategy" => strategy)
            .record(start.elapsed().as_secs_f64());
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let exclude = query.exclude_with_history();
        let start = Instant::now();
        let params = SearchParams {
            limit: query.k,
            score_threshold: self.score_threshold,
            exclude: &exclude,
        };
        let hits = if let [user] = users.as_slice() {
            self.index.search(user, params).await
        } else {
            // K interest vectors: K searches, each item once at its best score, top k.
            let lists = self.index.search_many(&users, params).await?;
            Ok(kan_core::interests::merge(&lists, query.k))
        };
        metrics::histogram!(crate::metrics::INDEX_SEARCH_SECONDS, "backend" => self.index.name())
            .record(start.elapsed().as_secs_f64());
        hits
    }
}

impl Strategy for EncoderRecall {
    fn name(&self) -> &'static str {
        self.name
    }

    fn catalogue(&self) -> &Catalogue {
        self.added
            .as_ref()
            .map_or(&self.bundle.items, |a| &a.catalogue)
    }

    fn with_added(&self, items: &[NewItem], strict: bool) -> Option<Result<Arc<dyn Strategy>>> {
        let added = added_vectors::add(self.name, &self.bundle, &self.base, items, strict);
        Some(added.map(|added| {
            Arc::new(EncoderRecall {
                name: self.name,
                bundle: self.bundle.clone(),
                encoder: self.encoder.clone(),
                base: self.base.clone(),
                index: added.index.clone(),
                added: Some(Arc::new(added)),
                score_threshold: self.score_threshold,
            }) as Arc<dyn Strategy>
        }))
    }

    fn added(&self) -> &[NewItem] {
        self.added.as_ref().map_or(&[], |a| &a.items)
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(self.encode_and_search(query))
    }
}
