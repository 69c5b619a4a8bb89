//! item2vec recall: the core's user vector ([`kan_core::item2vec::user_vector`], the one
//! `kan eval` scores) searched in the index.
//! Cold start: no history, no candidates.
//!
//! Items added after training (`POST /v1/items`) bring a content vector in the item vectors'
//! space ([`super::added_vectors`]): they are searched beside the bundle's index, and one in a
//! history adds its vector to the user's.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::crd::Item2vecSettings;

use kan_api::wire::NewItem;

use super::added_vectors::{self, Added};
use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, SearchParams, VectorIndex};

pub struct Item2vec {
    bundle: Arc<Bundle>,
    /// The bundle's index; `index` searches it and the added items' vectors.
    base: Arc<dyn VectorIndex>,
    index: Arc<dyn VectorIndex>,
    dim: usize,
    vectors: Arc<Vec<f32>>,
    /// Items added after training; `None` while none were added.
    added: Option<Added>,
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
            base: index.clone(),
            index,
            dim,
            vectors: Arc::new(vectors),
            added: None,
            settings: settings.clone(),
        })
    }

    /// The item's vector: the bundle's, else the added item's.
    fn vector(&self, item: u32) -> Option<&[f32]> {
        let (item, dim) = (item as usize, self.dim);
        let n = self.bundle.items.len();
        match item.checked_sub(n) {
            None => self.vectors.get(item * dim..(item + 1) * dim),
            Some(j) => self.added.as_ref()?.vectors.get(j * dim..(j + 1) * dim),
        }
    }
}

impl Strategy for Item2vec {
    fn name(&self) -> &'static str {
        "item2vec"
    }

    fn catalogue(&self) -> &Catalogue {
        self.added
            .as_ref()
            .map_or(&self.bundle.items, |a| &a.catalogue)
    }

    fn with_added(&self, items: &[NewItem], strict: bool) -> Option<Result<Arc<dyn Strategy>>> {
        let added = added_vectors::add(self.name(), &self.bundle, &self.base, items, strict);
        Some(added.map(|added| {
            Arc::new(Item2vec {
                bundle: self.bundle.clone(),
                base: self.base.clone(),
                index: added.index.clone(),
                dim: self.dim,
                vectors: self.vectors.clone(),
                added: Some(added),
                settings: self.settings.clone(),
            }) as Arc<dyn Strategy>
        }))
    }

    fn added(&self) -> &[NewItem] {
        self.added.as_ref().map_or(&[], |a| &a.items)
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let Some(user) = kan_core::item2vec::user_vector_of(
                |item| self.vector(item),
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
