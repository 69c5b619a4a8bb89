//! The online work shared by the model strategies (dssm, gat): the user's history goes through
//! the ONNX user encoder, and the user vector is searched in the item index.

use std::sync::Arc;
use std::time::Instant;

use kan_api::crd::EncoderSettings;

use super::Query;
use crate::bundle::Bundle;
use crate::error::Result;
use crate::index::{Hit, SearchParams, VectorIndex, normalise};
use crate::inference::UserEncoder;

pub struct EncoderRecall {
    pub bundle: Arc<Bundle>,
    encoder: UserEncoder,
    index: Arc<dyn VectorIndex>,
    score_threshold: Option<f32>,
}

impl EncoderRecall {
    pub fn new(
        bundle: Arc<Bundle>,
        encoder: UserEncoder,
        index: Arc<dyn VectorIndex>,
        settings: &EncoderSettings,
    ) -> Self {
        Self {
            bundle,
            encoder,
            index,
            score_threshold: settings.score_threshold.map(|t| t as f32),
        }
    }

    /// Cold start (empty history): no candidates; the gateway's fallback fills the list.
    pub async fn recall(&self, strategy: &'static str, query: &Query<'_>) -> Result<Vec<Hit>> {
        if query.history.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let mut user = self.encoder.encode(&query.history)?;
        metrics::histogram!("kan_worker_inference_duration_seconds", "strategy" => strategy)
            .record(start.elapsed().as_secs_f64());
        if !normalise(&mut user) {
            return Ok(Vec::new());
        }
        let exclude = query.exclude_with_history();
        let start = Instant::now();
        let params = SearchParams {
            limit: query.k,
            score_threshold: self.score_threshold,
            exclude: &exclude,
        };
        let hits = self.index.search(&user, params).await;
        metrics::histogram!("kan_worker_index_search_duration_seconds", "backend" => self.index.name())
            .record(start.elapsed().as_secs_f64());
        hits
    }
}
