//! Graph attention (GAT) recall: the ONNX encoder attends over the user's history items (their
//! graph embeddings); the user vector is searched among the items' graph embeddings. Cold start: no history, no candidates.

use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::crd::EncoderSettings;

use super::encoder::EncoderRecall;
use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, VectorIndex};
use crate::inference::UserEncoder;

pub struct Gat(EncoderRecall);

impl Gat {
    pub fn new(
        bundle: Arc<Bundle>,
        encoder: UserEncoder,
        index: Arc<dyn VectorIndex>,
        settings: &EncoderSettings,
    ) -> Self {
        Self(EncoderRecall::new(bundle, encoder, index, settings))
    }
}

impl Strategy for Gat {
    fn name(&self) -> &'static str {
        "gat"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.0.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(self.0.recall(self.name(), query))
    }
}
