//! Item-CF recall over the bundle's neighbour lists; the kernel (history length, recency decay,
//! aggregation) is the core's [`kan_core::itemcf::recall`], the one `kan eval` scores.
//! Cold start: no history, no candidates.

use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::ItemCfSettings;

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr, parallel};
use crate::error::Result;
use crate::index::Hit;

pub struct ItemCf {
    bundle: Arc<Bundle>,
    neighbours: Csr,
    weights: Vec<f32>,
    settings: ItemCfSettings,
}

impl ItemCf {
    pub fn new(bundle: Arc<Bundle>, settings: &ItemCfSettings) -> Result<Self> {
        let file = bundle.tensors(files::NEIGHBOURS)?;
        let n = bundle.items.len();
        let neighbours = file.csr(n, "neighbours", n)?;
        let weights = parallel(&file, "weights", file.f32_1d("weights")?, &neighbours)?;
        Ok(Self {
            bundle,
            neighbours,
            weights,
            settings: settings.clone(),
        })
    }
}

impl Strategy for ItemCf {
    fn name(&self) -> &'static str {
        "itemcf"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let excluded: Vec<u32> = query.exclude.iter().copied().collect();
            Ok(kan_core::itemcf::recall(
                self.neighbours.view(),
                &self.weights,
                &self.settings,
                &query.history,
                &excluded,
                query.k,
            ))
        })
    }
}
