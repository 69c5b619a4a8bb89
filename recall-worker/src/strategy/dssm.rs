//! Two-tower (DSSM) recall: the ONNX user tower encodes the history, the item tower's vectors are
//! searched in the index. Cold start: no history, no candidates.

use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::crd::EncoderSettings;

use super::encoder::EncoderRecall;
use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue};
use crate::error::Result;
use crate::index::{Hit, VectorIndex};
use crate::inference::UserEncoder;

pub struct Dssm(EncoderRecall);

impl Dssm {
    pub fn new(
        bundle: Arc<Bundle>,
        encoder: UserEncoder,
        index: Arc<dyn VectorIndex>,
        settings: &EncoderSettings,
    ) -> Self {
        Self(EncoderRecall::new(bundle, encoder, index, settings))
    }
}

impl Strategy for Dssm {
    fn name(&self) -> &'static str {
        "dssm"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.0.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(self.0.recall(self.name(), query))
    }
}
