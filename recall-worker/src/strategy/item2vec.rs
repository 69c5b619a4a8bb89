//! item2vec recall: the core's user vector ([`kan_core::item2vec::user_vector`], the one
//! `kan eval` scores) searched in the index.
//! Cold start: no history, no candidates.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::crd::Item2vecSettings;

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, SearchParams, VectorIndex};

pub struct Item2vec {
    bundle: Arc<Bundle>,
    index: Arc<dyn VectorIndex>,
    dim: usize,
    vectors: Arc<Vec<f32>>,
    settings: Item2vecSettings,
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
            settings: settings.clone(),
        })
    }
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
            let Some(user) = kan_core::item2vec::user_vector(
                &self.vectors,
                self.dim,
                &self.settings,
                &query.history,
            ) else {
                return Ok(Vec::new());
            };
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
            metrics::histogram!(crate::metrics::INDEX_SEARCH_SECONDS, "backend" => self.index.name())
                .record(start.elapsed().as_secs_f64());
            hits
        })
    }
}
