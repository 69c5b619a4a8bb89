//! item2vec's user vector: the recency-weighted sum of the `historyLength` most recent history
//! items' skip-gram vectors (the i-th most recent weighted `recencyDecay^i`), L2-normalised.
//! It is searched like any user vector (the worker's index, or [`crate::vector::exact_scan`]).

use kan_api::crd::Item2vecSettings;

use crate::recency_weight;
use crate::vector::normalise;

/// The user vector for `history` (most recent first) over row-major `[n, dim]` item vectors;
/// None when no history item has a vector to give it a direction (cold start).
pub fn user_vector(
    vectors: &[f32],
    dim: usize,
    settings: &Item2vecSettings,
    history: &[u32],
) -> Option<Vec<f32>> {
    user_vector_of(
        |item| vectors.get(item as usize * dim..(item as usize + 1) * dim),
        dim,
        settings,
        history,
    )
}

/// [`user_vector`] over the vectors `vector_of` gives (the worker's bundle vectors, then those of
/// items added after training); an item without one adds nothing.
pub fn user_vector_of<'a>(
    vector_of: impl Fn(u32) -> Option<&'a [f32]>,
    dim: usize,
    settings: &Item2vecSettings,
    history: &[u32],
) -> Option<Vec<f32>> {
    let recent = &history[..history.len().min(settings.history_length.max(1) as usize)];
    let mut user = vec![0f32; dim];
    for (i, &item) in recent.iter().enumerate() {
        let w = recency_weight(settings.recency_decay, i);
        if let Some(v) = vector_of(item) {
            user.iter_mut().zip(v).for_each(|(u, x)| *u += w * x);
        }
    }
    (!recent.is_empty() && normalise(&mut user)).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(history_length: i32, recency_decay: f64) -> Item2vecSettings {
        Item2vecSettings {
            history_length,
            recency_decay,
        }
    }

    #[test]
    fn recent_items_weigh_more_and_the_vector_is_normalised() {
        let vectors = [1.0, 0.0, 0.0, 1.0];
        let u = user_vector(&vectors, 2, &settings(50, 0.75), &[1, 0]).unwrap_or_default();
        assert_eq!(u, [0.6, 0.8]);
    }

    #[test]
    fn only_the_history_length_most_recent_items_count() {
        let vectors = [1.0, 0.0, 0.0, 1.0];
        let u = user_vector(&vectors, 2, &settings(1, 0.5), &[1, 0]).unwrap_or_default();
        assert_eq!(u, [0.0, 1.0]);
    }

    #[test]
    fn no_history_or_unknown_items_give_no_user_vector() {
        let vectors = [1.0, 0.0];
        assert_eq!(user_vector(&vectors, 2, &settings(50, 0.9), &[]), None);
        assert_eq!(user_vector(&vectors, 2, &settings(50, 0.9), &[7]), None);
    }
}
