//! The model strategies (dssm, gat): one encoder strategy. The user's history goes through the
//! bundle's ONNX user encoder (a two-tower user tower, or a graph-attention encoder over the
//! history items' graph embeddings), and the user vector is searched in the item index. A
//! multi-interest model (`user_embedding` `[B, K, D]`) gives K vectors: each is searched and
//! the lists merged by [`kan_core::interests::merge`] (best score per item, then top k), as
//! `kan eval` merges its exact scans. Cold start: no history, no candidates.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::crd::EncoderSettings;

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, SearchParams, VectorIndex, normalise};
use crate::inference::UserEncoder;

pub struct EncoderRecall {
    /// `dssm` or `gat`: the strategy type served.
    name: &'static str,
    bundle: Arc<Bundle>,
    encoder: UserEncoder,
    index: Arc<dyn VectorIndex>,
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
            encoder,
            index,
            score_threshold: settings.score_threshold.map(|t| t as f32),
        }
    }

    /// Cold start (empty history): no candidates; the gateway's fallback fills the list.
    async fn encode_and_search(&self, query: &Query<'_>) -> Result<Vec<Hit>> {
        let strategy = self.name;
        if query.history.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let mut users = self.encoder.encode(&query.history)?;
        metrics::histogram!(crate::metrics::INFERENCE_SECONDS, "strategy" => strategy)
            .record(start.elapsed().as_secs_f64());
        // A vector without direction finds nothing; a user with none left gets no candidates.
        users.retain_mut(|u| normalise(u));
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
        &self.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(self.encode_and_search(query))
    }
}
