//! Recall strategies. Each implements [`Strategy`]: a `name`, the required `recall` that does the
//! work, and a provided `run` that owns the span and the metrics and enforces the output contract
//! (no excluded, duplicate or NaN-scored items, at most `k`, best first).
//!
//! Cold start (a user with no usable history) per strategy:
//!
//! | strategy | cold start |
//! | --- | --- |
//! | dssm, gat, item2vec, itemcf | no candidates: the gateway's fallback queue (usually popular) fills the list |
//! | social | no candidates when the user is unknown or has no friends with recent engagements |
//! | exploratory | no dominant interests, so every category is eligible; still Thompson-sampled per user and day |
//! | popular | the same list as for known users (segment when the request context names one, else global) |
//! | operational | the same pinned list for everyone |
//! | attribute | no candidates (no history, no tag profile) |
//!
//! Items added after training (`POST /v1/items`) reach strategies that implement
//! [`Strategy::with_added`]: attribute, exploratory, popular, and the vector strategies (dssm,
//! gat, spectral, sequence, item2vec) on an embedded index.

mod added_vectors;
mod attribute;
mod encoder;
mod exploratory;
mod item2vec;
mod itemcf;
mod operational;
mod popular;
mod social;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::crd::{Strategy as StrategySpec, StrategyType};
use kan_api::wire::NewItem;
use tracing::Instrument;

pub use kan_core::exploratory::{exploration_seed, stable_hash};
pub use operational::Operational;

use crate::bundle::{Bundle, Catalogue};
use crate::error::{Error, Result};
use crate::index::{Hit, VectorIndex};
use kan_core::ItemSet;
use kan_onnx::UserEncoder;

/// One recall request, resolved against the bundle (internal indices).
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub user_id: &'a str,
    /// The user's index in the bundle, when known.
    pub user: Option<u32>,
    /// Internal item indices, most recent first (from the request, else the bundle).
    pub history: Vec<u32>,
    /// Candidates wanted (already capped by `maxCandidates`).
    pub k: usize,
    /// Internal indices that must not be returned.
    pub exclude: &'a ItemSet,
    /// Request context (segments).
    pub context: &'a BTreeMap<String, String>,
    /// Wall-clock unix seconds.
    pub now: i64,
    /// The online signal store, when the queue reads one (social and popular `trending` use
    /// it; the worker has already put its stored history in `history`).
    pub fresh: Option<&'a crate::signals::Fresh<'a>>,
}

impl Query<'_> {
    /// The exclusions plus the history: recalling what the user already engaged with is waste.
    pub fn exclude_with_history(&self) -> ItemSet {
        self.exclude
            .iter()
            .copied()
            .chain(self.history.iter().copied())
            .collect()
    }
}

/// A recall strategy over one bundle.
pub trait Strategy: Send + Sync {
    /// The strategy's name (as in `strategy.type`).
    fn name(&self) -> &'static str;

    /// The ids this strategy's internal indices refer to.
    fn catalogue(&self) -> &Catalogue;

    /// Candidates for `query`, best first. Need not drop exclusions or truncate; `run` does.
    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>>;

    /// A copy that also recalls `items` (every item added after training so far), for
    /// strategies that can; None for the others. `strict`: an unusable item (an id the bundle
    /// has, an unknown tag) is an error naming its field; otherwise it is skipped.
    fn with_added(&self, items: &[NewItem], strict: bool) -> Option<Result<Arc<dyn Strategy>>> {
        let _ = (items, strict);
        None
    }

    /// The items added after training this strategy serves.
    fn added(&self) -> &[NewItem] {
        &[]
    }

    /// `recall` inside a span, timed, with the output contract enforced.
    fn run<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let span = tracing::info_span!(
                "strategy",
                name = self.name(),
                k = query.k,
                history = query.history.len()
            );
            let start = Instant::now();
            let result = self.recall(query).instrument(span).await;
            metrics::histogram!(crate::metrics::STRATEGY_SECONDS, "strategy" => self.name())
                .record(start.elapsed().as_secs_f64());
            result.map(|hits| finish(hits, query.exclude, query.k))
        })
    }
}

/// Drops excluded, duplicate and NaN-scored hits, keeps the first `k`.
pub fn finish(hits: Vec<Hit>, exclude: &ItemSet, k: usize) -> Vec<Hit> {
    let mut seen = ItemSet::with_capacity_and_hasher(hits.len(), Default::default());
    hits.into_iter()
        .filter(|h| !h.score.is_nan() && !exclude.contains(&h.item) && seen.insert(h.item))
        .take(k)
        .collect()
}

/// What a strategy may need besides the bundle.
pub struct Parts {
    pub index: Option<Arc<dyn VectorIndex>>,
    pub encoder: Option<UserEncoder>,
}

/// Builds the strategy of `spec` over `bundle` (none for operational).
pub fn build(
    spec: &StrategySpec,
    bundle: Option<Arc<Bundle>>,
    parts: Parts,
) -> Result<Arc<dyn Strategy>> {
    let need_bundle = || {
        bundle
            .clone()
            .ok_or_else(|| Error::Config(format!("strategy {} needs spec.bundle", spec.type_())))
    };
    let need_index = || {
        parts
            .index
            .clone()
            .ok_or_else(|| Error::Config("vector strategies need an index".to_string()))
    };
    let strategy: Arc<dyn Strategy> = match spec {
        StrategySpec::Dssm { dssm: settings }
        | StrategySpec::Gat { gat: settings }
        | StrategySpec::Spectral { spectral: settings }
        | StrategySpec::Sequence { sequence: settings } => Arc::new(encoder::EncoderRecall::new(
            spec.type_().as_str(),
            need_bundle()?,
            need_encoder(parts.encoder)?,
            need_index()?,
            settings,
        )),
        StrategySpec::Item2vec { item2vec } => Arc::new(item2vec::Item2vec::new(
            need_bundle()?,
            need_index()?,
            item2vec,
        )?),
        StrategySpec::Itemcf { itemcf } => Arc::new(itemcf::ItemCf::new(need_bundle()?, itemcf)?),
        StrategySpec::Social { social } => Arc::new(social::Social::new(need_bundle()?, social)?),
        StrategySpec::Exploratory { exploratory } => {
            Arc::new(exploratory::Exploratory::new(need_bundle()?, exploratory)?)
        }
        StrategySpec::Popular { popular } => {
            Arc::new(popular::Popular::new(need_bundle()?, popular)?)
        }
        StrategySpec::Operational { operational } => Arc::new(Operational::new(operational)?),
        StrategySpec::Attribute { attribute } => {
            Arc::new(attribute::Attribute::new(need_bundle()?, attribute)?)
        }
    };
    Ok(strategy)
}

fn need_encoder(encoder: Option<UserEncoder>) -> Result<UserEncoder> {
    encoder.ok_or_else(|| Error::Config("encoder strategies need model.onnx loaded".to_string()))
}

/// True for strategies whose bundle carries an ONNX user encoder.
pub fn uses_encoder(t: StrategyType) -> bool {
    matches!(
        t,
        StrategyType::Dssm | StrategyType::Gat | StrategyType::Spectral | StrategyType::Sequence
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_drops_excluded_duplicate_and_nan_hits_and_truncates() {
        let hits = vec![
            Hit {
                item: 1,
                score: 0.9,
            },
            Hit {
                item: 2,
                score: f32::NAN,
            },
            Hit {
                item: 1,
                score: 0.8,
            },
            Hit {
                item: 3,
                score: 0.7,
            },
            Hit {
                item: 4,
                score: 0.6,
            },
            Hit {
                item: 5,
                score: 0.5,
            },
        ];
        let exclude = ItemSet::from_iter([3]);
        let out: Vec<u32> = finish(hits, &exclude, 2).iter().map(|h| h.item).collect();
        assert_eq!(out, vec![1, 4]);
    }
}
