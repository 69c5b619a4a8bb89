//! One request resolved against the loaded queue (ids, history, exclusions, `k`) and run through
//! its strategy under the queue's time budget.

use std::time::Duration;

use kan_api::crd::Strategy as StrategySpec;
use kan_api::wire::{Candidate, RecallRequest};

use super::load::Loaded;
use crate::error::{Error, Result};
use crate::request::{effective_k, resolve, resolve_set};
use crate::signals::Fresh;
use crate::strategy::Query;

/// What [`serve`] produced.
pub(super) struct Served {
    pub candidates: Vec<Candidate>,
    /// How many of the request's history ids the bundle does not know.
    pub unknown_history: u32,
    /// The signal store was configured but not read: the answer is the bundle's alone.
    pub degraded: bool,
}

/// Resolves a request against the loaded queue and runs its strategy under the queue's budget.
pub(super) async fn serve(loaded: &Loaded, request: &RecallRequest, now: i64) -> Result<Served> {
    let budget = Duration::from_millis(loaded.spec.timeout_ms.max(1) as u64);
    let fresh = loaded.signals.as_deref().map(|s| Fresh::new(s, budget));
    let catalogue = loaded.strategy.catalogue();
    let k = effective_k(
        request.k,
        loaded.spec.candidates,
        loaded.spec.max_candidates,
    );
    let exclude = resolve_set(&request.exclude, |id| catalogue.get(id));
    let user = loaded
        .bundle
        .as_ref()
        .and_then(|b| b.users.get(&request.user_id));
    let mut unknown_history = 0;
    let history = match &request.history {
        Some(history) => {
            let known = resolve(history, |id| catalogue.get(id));
            unknown_history = (history.len() - known.len()) as u32;
            known
        }
        None => {
            let bundle = match (
                user,
                loaded.bundle.as_ref().and_then(|b| b.history.as_ref()),
            ) {
                (Some(u), Some(h)) => h.items(u),
                _ => &[],
            };
            match &fresh {
                Some(fresh) if reads_history(&loaded.spec.strategy) => {
                    let stored = fresh
                        .read(
                            fresh
                                .store()
                                .history(&request.user_id, kan_signals::HISTORY_MAX),
                        )
                        .await
                        .unwrap_or_default();
                    let stored = resolve(&stored, |id| catalogue.get(id));
                    kan_core::fresh::merge_history(&stored, bundle, kan_api::wire::MAX_HISTORY)
                }
                _ => bundle.to_vec(),
            }
        }
    };
    let query = Query {
        user_id: &request.user_id,
        user,
        history,
        k,
        exclude: &exclude,
        context: &request.context,
        now,
        fresh: fresh.as_ref(),
    };
    let hits = tokio::time::timeout(budget, loaded.strategy.run(&query))
        .await
        .map_err(|_| Error::Timeout(budget.as_millis() as u64))??;
    let candidates = hits
        .into_iter()
        .filter_map(|h| {
            catalogue.id(h.item).map(|id| Candidate {
                item_id: id.to_string(),
                score: h.score,
            })
        })
        .collect();
    Ok(Served {
        candidates,
        unknown_history,
        degraded: fresh.as_ref().is_some_and(Fresh::degraded),
    })
}

/// Strategies that recall from the user's history, so read the stored one when a request
/// carries none. Operational does not look at history; popular only drops it from its lists,
/// and reads the store for it only to keep fresh arrivals (`newItems`) a user engaged with out,
/// which the bundle's history cannot know of.
fn reads_history(strategy: &StrategySpec) -> bool {
    match strategy {
        StrategySpec::Operational { .. } => false,
        StrategySpec::Popular { popular } => popular.new_items > 0,
        _ => true,
    }
}
