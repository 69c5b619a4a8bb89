//! item2vec recall: the user vector is the recency-weighted mean of the history items' skip-gram
//! vectors (weight `recencyDecay^i` for the i-th most recent), searched in the index.
//! Cold start: no history, no candidates.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::crd::Item2vecSettings;

use super::{Query, Strategy, recency_weight};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, SearchParams, VectorIndex, normalise};

pub struct Item2vec {
    bundle: Arc<Bundle>,
    index: Arc<dyn VectorIndex>,
    dim: usize,
    vectors: Arc<Vec<f32>>,
    history_length: usize,
    decay: f64,
}

impl Item2vec {
    pub fn new(
        bundle: Arc<Bundle>,
        index: Arc<dyn VectorIndex>,
        settings: &Item2vecSettings,
    ) -> Result<Self> {
        let (dim, vectors) = bundle.item_vectors()?;
        Ok(Self {
            bundle,
            index,
            dim,
            vectors: Arc::new(vectors),
            history_length: settings.history_length.max(1) as usize,
            decay: settings.recency_decay,
        })
    }
}

/// The recency-weighted mean of the history's vectors (not normalised).
pub fn user_vector(vectors: &[f32], dim: usize, history: &[u32], decay: f64) -> Vec<f32> {
    let mut user = vec![0f32; dim];
    for (i, &item) in history.iter().enumerate() {
        let w = recency_weight(decay, i);
        if let Some(v) = vectors.get(item as usize * dim..(item as usize + 1) * dim) {
            user.iter_mut().zip(v).for_each(|(u, x)| *u += w * x);
        }
    }
    user
}

impl Strategy for Item2vec {
    fn name(&self) -> &'static str {
        "item2vec"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let history = &query.history[..query.history.len().min(self.history_length)];
            let mut user = user_vector(&self.vectors, self.dim, history, self.decay);
            if history.is_empty() || !normalise(&mut user) {
                return Ok(Vec::new());
            }
            let exclude = query.exclude_with_history();
            let start = Instant::now();
            let hits = self
                .index
                .search(
                    &user,
                    SearchParams {
                        limit: query.k,
                        score_threshold: None,
                        exclude: &exclude,
                    },
                )
                .await;
            metrics::histogram!("kan_worker_index_search_duration_seconds", "backend" => self.index.name())
                .record(start.elapsed().as_secs_f64());
            hits
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_items_weigh_more_in_the_user_vector() {
        let vectors = [1.0, 0.0, 0.0, 1.0];
        assert_eq!(user_vector(&vectors, 2, &[1, 0], 0.5), vec![0.5, 1.0]);
        assert_eq!(user_vector(&vectors, 2, &[], 0.5), vec![0.0, 0.0]);
    }
}
