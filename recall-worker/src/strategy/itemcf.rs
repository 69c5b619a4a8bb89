//! Item-CF recall: the neighbours (RP3β / Swing weights) of each history item, summed with
//! weight `recencyDecay^i` for the i-th most recent item. History items are not recalled.
//! Cold start: no history, no candidates.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::ItemCfSettings;

use super::{Query, Strategy, recency_weight};
use crate::bundle::{Bundle, Catalogue, Csr, parallel};
use crate::error::Result;
use crate::index::{Hit, top_k};

pub struct ItemCf {
    bundle: Arc<Bundle>,
    neighbours: Csr,
    weights: Vec<f32>,
    history_length: usize,
    decay: f64,
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
            history_length: settings.history_length.max(1) as usize,
            decay: settings.recency_decay,
        })
    }
}

/// Sums neighbour weights over the history; history items themselves are skipped.
pub fn aggregate(
    neighbours: &Csr,
    weights: &[f32],
    history: &[u32],
    decay: f64,
) -> HashMap<u32, f32> {
    let mut scores: HashMap<u32, f32> = HashMap::new();
    for (i, &item) in history.iter().enumerate() {
        let w = recency_weight(decay, i);
        let range = neighbours.range(item as usize);
        for (&j, &s) in neighbours.row(item as usize).iter().zip(&weights[range]) {
            if s.is_finite() {
                *scores.entry(j).or_default() += w * s;
            }
        }
    }
    for item in history {
        scores.remove(item);
    }
    scores
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
            let history = &query.history[..query.history.len().min(self.history_length)];
            let scores = aggregate(&self.neighbours, &self.weights, history, self.decay);
            let hits = scores
                .into_iter()
                .filter(|(i, _)| !query.exclude.contains(i))
                .map(|(item, score)| Hit { item, score });
            Ok(top_k(hits, query.k))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_of_recent_items_count_more_and_history_is_skipped() {
        // item 0 -> [2 (1.0), 1 (0.5)], item 1 -> [3 (1.0)]
        let csr = Csr::new(vec![0, 2, 3, 3, 3], vec![2, 1, 3], 4, 4).unwrap();
        let scores = aggregate(&csr, &[1.0, 0.5, 1.0], &[1, 0], 0.5);
        assert_eq!(scores.get(&3), Some(&1.0));
        assert_eq!(scores.get(&2), Some(&0.5));
        assert!(!scores.contains_key(&1), "history item 1 is not recalled");
    }
}
