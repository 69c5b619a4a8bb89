//! Item-CF recall: the neighbours (RP3β / Swing weights) of the `historyLength` most recent
//! history items, the i-th most recent weighted `recencyDecay^i`, summed per item. Items of the
//! whole history are never recalled (the user has them). No history, no candidates.

use kan_api::crd::ItemCfSettings;

use crate::rank::{Hit, with_scores};
use crate::{CsrRef, recency_weight};

/// The `k` best items for `history` (item indices, most recent first), skipping `excluded`.
/// `neighbours` holds each item's neighbour list; `weights` is parallel to its columns.
pub fn recall(
    neighbours: CsrRef<'_>,
    weights: &[f32],
    settings: &ItemCfSettings,
    history: &[u32],
    excluded: &[u32],
    k: usize,
) -> Vec<Hit> {
    let recent = &history[..history.len().min(settings.history_length.max(1) as usize)];
    with_scores(|scores| {
        for (i, &item) in recent.iter().enumerate() {
            let w = recency_weight(settings.recency_decay, i);
            let range = neighbours.range(item as usize);
            let row_weights = weights.get(range.clone()).unwrap_or_default();
            for (&j, &s) in neighbours.columns[range].iter().zip(row_weights) {
                if s.is_finite() {
                    scores.add(j, w * s);
                }
            }
        }
        for &item in history.iter().chain(excluded) {
            scores.remove(item);
        }
        scores.top_k(k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // item 0 -> [2 (1.0), 1 (0.5)], item 1 -> [3 (1.0)], item 3 -> [4 (1.0)]
    const OFFSETS: [usize; 6] = [0, 2, 3, 3, 4, 4];
    const COLUMNS: [u32; 4] = [2, 1, 3, 4];
    const WEIGHTS: [f32; 4] = [1.0, 0.5, 1.0, 1.0];

    fn csr() -> CsrRef<'static> {
        CsrRef {
            offsets: &OFFSETS,
            columns: &COLUMNS,
        }
    }

    fn settings(history_length: i32, recency_decay: f64) -> ItemCfSettings {
        ItemCfSettings {
            history_length,
            recency_decay,
        }
    }

    #[test]
    fn neighbours_of_recent_items_count_more_and_history_is_never_recalled() {
        let hits = recall(csr(), &WEIGHTS, &settings(50, 0.5), &[1, 0], &[], 10);
        assert_eq!(
            hits,
            [
                Hit {
                    item: 3,
                    score: 1.0
                },
                Hit {
                    item: 2,
                    score: 0.5
                }
            ],
            "item 1 is history even though item 0 names it"
        );
    }

    #[test]
    fn only_the_history_length_most_recent_items_are_aggregated() {
        let hits = recall(csr(), &WEIGHTS, &settings(1, 0.5), &[3, 0], &[], 10);
        assert_eq!(
            hits,
            [Hit {
                item: 4,
                score: 1.0
            }]
        );
    }

    #[test]
    fn excluded_items_and_non_finite_weights_are_skipped() {
        let weights = [f32::NAN, 0.5, 1.0, 1.0];
        let hits = recall(csr(), &weights, &settings(50, 1.0), &[0], &[1], 10);
        assert!(hits.is_empty(), "{hits:?}");
        assert!(recall(csr(), &WEIGHTS, &settings(50, 1.0), &[], &[], 10).is_empty());
    }
}
