//! Attribute recall: items sharing tags (genres, tags, knowledge-graph entities such as actors
//! and directors) with the user's recent history.
//!
//! 1. Profile: each of the `historyLength` most recent history items adds its tag weights,
//!    the i-th most recent scaled by `recencyDecay^i`.
//! 2. Expansion (optional, `kgExpansion`): from the profile's `maxTags` strongest tags,
//!    `kgHops` rounds over the related-tag graph (KG or co-occurrence neighbours, rows summing
//!    to 1); a tag reached at hop h adds `kgHopDecay^h` × relatedness × the weight it was
//!    reached from.
//! 3. The `maxTags` strongest tags are kept; each contributes `profile(t) × score(i, t)` to the
//!    first `perTagCap` items of its postings (tag weight × quality prior, best first) in every
//!    index given: the bundle's, and the one of items added after training. History and
//!    excluded items do not count against the cap.
//!
//! Items of the history and the excluded items are never recalled. No history, no candidates.

use kan_api::crd::AttributeSettings;

use crate::rank::{Hit, top_k_of, with_scores};
use crate::{CsrRef, recency_weight};

/// A CSR of weighted rows: row `r` lists `columns[offsets[r]..offsets[r+1]]` with the parallel
/// `weights`. Used for item → tags, tag → items (postings) and tag → related tags.
#[derive(Debug, Clone, Copy)]
pub struct Weighted<'a> {
    pub rows: CsrRef<'a>,
    pub weights: &'a [f32],
}

impl<'a> Weighted<'a> {
    /// Row `r` as (column, weight) pairs; empty past the end or when the weights are short.
    pub fn row(self, r: usize) -> impl Iterator<Item = (u32, f32)> + use<'a> {
        let range = self.rows.range(r);
        let weights = self.weights.get(range.clone()).unwrap_or_default();
        let columns = if weights.is_empty() {
            &[][..]
        } else {
            &self.rows.columns[range]
        };
        columns.iter().copied().zip(weights.iter().copied())
    }
}

/// The user's tag profile: (tag, weight), strongest first, at most `maxTags` tags.
/// `tags_of(item)` gives an item's (tag, weight) pairs.
pub fn profile<F, I>(
    history: &[u32],
    tags_of: F,
    related: Option<Weighted<'_>>,
    settings: &AttributeSettings,
) -> Vec<(u32, f32)>
where
    F: Fn(u32) -> I,
    I: Iterator<Item = (u32, f32)>,
{
    let recent = &history[..history.len().min(settings.history_length.max(1) as usize)];
    let weights = with_scores(|weights| {
        for (i, &item) in recent.iter().enumerate() {
            let w = recency_weight(settings.recency_decay, i);
            for (tag, tw) in tags_of(item) {
                if tw.is_finite() {
                    weights.add(tag, w * tw);
                }
            }
        }
        let summed: Vec<Hit> = weights.entries().collect();
        weights.clear();
        summed
    });
    let max_tags = settings.max_tags.max(1) as usize;
    let strongest = |hits: Vec<Hit>| {
        top_k_of(
            hits.into_iter().filter(|h| h.score > 0.0).collect(),
            max_tags,
        )
    };
    let weights = match related {
        // Only the strongest tags spread: the weak tail of a long history's profile cannot
        // reach the kept tags, and walking it was most of the queue's CPU (perf).
        Some(related) if settings.kg_expansion => expand(
            &strongest(weights),
            related,
            settings.kg_hops,
            settings.kg_hop_decay,
        ),
        _ => weights,
    };
    strongest(weights)
        .into_iter()
        .map(|h| (h.item, h.score))
        .collect()
}

/// Spreads a profile (tag, weight) over the related-tag graph for `hops` rounds (clamped to
/// 1..=2), each round's gain scaled by `hop_decay`; the original weights stay. Sums go into
/// dense per-tag accumulators (a tree map here cost a third of the whole platform's CPU) and
/// are added in one deterministic order, so `kan eval` and the worker get bit-identical scores.
/// Tags come back in the order they were first reached.
pub fn expand(profile: &[Hit], related: Weighted<'_>, hops: i32, hop_decay: f64) -> Vec<Hit> {
    with_scores(|out| {
        for h in profile {
            out.add(h.item, h.score);
        }
        let mut frontier = profile.to_vec();
        for _ in 0..hops.clamp(1, 2) {
            frontier = with_scores(|next| {
                for h in &frontier {
                    for (other, r) in related.row(h.item as usize) {
                        let gain = h.score * r * hop_decay as f32;
                        if gain.is_finite() && gain > 0.0 {
                            next.add(other, gain);
                        }
                    }
                }
                let reached: Vec<Hit> = next.entries().collect();
                next.clear();
                reached
            });
            for h in &frontier {
                out.add(h.item, h.score);
            }
        }
        let expanded: Vec<Hit> = out.entries().collect();
        out.clear();
        expanded
    })
}

/// The `k` best items for a profile over the given postings (tag → items, best first); items of
/// `history` and `excluded` are skipped. Each tag reads at most `perTagCap` items per index.
pub fn score(
    profile: &[(u32, f32)],
    postings: &[Weighted<'_>],
    settings: &AttributeSettings,
    history: &[u32],
    excluded: &[u32],
    k: usize,
) -> Vec<Hit> {
    let cap = settings.per_tag_cap.max(1) as usize;
    with_scores(|scores| {
        for &item in history.iter().chain(excluded) {
            scores.remove(item);
        }
        for &(tag, p) in profile {
            for index in postings {
                let mut taken = 0;
                for (item, s) in index.row(tag as usize) {
                    if taken == cap {
                        break;
                    }
                    if scores.is_removed(item) {
                        continue;
                    }
                    taken += 1;
                    let w = p * s;
                    if w.is_finite() {
                        scores.add(item, w);
                    }
                }
            }
        }
        scores.top_k(k)
    })
}

/// Profile then scoring: the whole kernel, as the worker and `kan eval` run it.
pub fn recall<F, I>(
    tags_of: F,
    postings: &[Weighted<'_>],
    related: Option<Weighted<'_>>,
    settings: &AttributeSettings,
    history: &[u32],
    excluded: &[u32],
    k: usize,
) -> Vec<Hit>
where
    F: Fn(u32) -> I,
    I: Iterator<Item = (u32, f32)>,
{
    let p = profile(history, tags_of, related, settings);
    score(&p, postings, settings, history, excluded, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Items: 0 {tag 0}, 1 {tag 0, tag 1}, 2 {tag 1}, 3 {tag 2}, 4 {tag 0}.
    const ITEM_OFFSETS: [usize; 6] = [0, 1, 3, 4, 5, 6];
    const ITEM_TAGS: [u32; 6] = [0, 0, 1, 1, 2, 0];
    const ITEM_WEIGHTS: [f32; 6] = [1.0, 0.5, 0.5, 1.0, 1.0, 1.0];
    // Postings, best first: tag 0 -> 4, 0, 1; tag 1 -> 2, 1; tag 2 -> 3.
    const TAG_OFFSETS: [usize; 4] = [0, 3, 5, 6];
    const TAG_ITEMS: [u32; 6] = [4, 0, 1, 2, 1, 3];
    const TAG_SCORES: [f32; 6] = [0.9, 0.8, 0.4, 1.0, 0.5, 1.0];
    // Related: tag 1 -> tag 2 (1.0); tag 2 -> tag 0 (1.0).
    const REL_OFFSETS: [usize; 4] = [0, 0, 1, 2];
    const REL_TAGS: [u32; 2] = [2, 0];
    const REL_WEIGHTS: [f32; 2] = [1.0, 1.0];

    fn weighted<'a>(offsets: &'a [usize], columns: &'a [u32], weights: &'a [f32]) -> Weighted<'a> {
        Weighted {
            rows: CsrRef { offsets, columns },
            weights,
        }
    }
    fn items() -> Weighted<'static> {
        weighted(&ITEM_OFFSETS, &ITEM_TAGS, &ITEM_WEIGHTS)
    }
    fn postings() -> Weighted<'static> {
        weighted(&TAG_OFFSETS, &TAG_ITEMS, &TAG_SCORES)
    }
    fn related() -> Weighted<'static> {
        weighted(&REL_OFFSETS, &REL_TAGS, &REL_WEIGHTS)
    }
    fn settings() -> AttributeSettings {
        AttributeSettings {
            recency_decay: 0.5,
            ..AttributeSettings::default()
        }
    }
    fn run(history: &[u32], excluded: &[u32], s: &AttributeSettings) -> Vec<u32> {
        recall(
            |i| items().row(i as usize),
            &[postings()],
            Some(related()),
            s,
            history,
            excluded,
            10,
        )
        .iter()
        .map(|h| h.item)
        .collect()
    }

    #[test]
    fn items_sharing_the_recent_historys_tags_are_recalled_and_history_is_not() {
        // History 2 (tag 1) then 0 (tag 0, weight 0.5 by recency): tag 1 items first.
        let hits = recall(
            |i| items().row(i as usize),
            &[postings()],
            None,
            &settings(),
            &[2, 0],
            &[],
            10,
        );
        let ids: Vec<u32> = hits.iter().map(|h| h.item).collect();
        assert_eq!(ids, [1, 4], "item 1 has both tags; 2 and 0 are history");
        assert_eq!(hits[1].score, 0.5 * 0.9);
    }

    #[test]
    fn the_profile_decays_with_recency_and_keeps_only_the_strongest_tags() {
        let s = AttributeSettings {
            max_tags: 1,
            ..settings()
        };
        let p = profile(&[3, 0], |i| items().row(i as usize), None, &s);
        assert_eq!(p, [(2, 1.0)], "tag 2 (most recent) beats tag 0 (0.5)");
        let short = AttributeSettings {
            history_length: 1,
            ..settings()
        };
        assert_eq!(run(&[3, 0], &[], &short), Vec::<u32>::new(), "only item 3");
    }

    #[test]
    fn the_per_tag_cap_takes_only_the_best_items_of_each_tag() {
        let s = AttributeSettings {
            per_tag_cap: 1,
            ..settings()
        };
        assert_eq!(run(&[1], &[], &s), [2, 4]);
        // Excluded items do not use up the cap: item 4 is skipped, item 0 takes its place.
        assert_eq!(run(&[1], &[4], &s), [2, 0]);
    }

    #[test]
    fn expansion_reaches_related_tags_one_or_two_hops_away_with_decay() {
        let off = settings();
        assert_eq!(run(&[2], &[], &off), [1], "tag 1 only");
        let one = AttributeSettings {
            kg_expansion: true,
            kg_hops: 1,
            kg_hop_decay: 0.5,
            ..settings()
        };
        assert_eq!(run(&[2], &[], &one), [1, 3], "tag 2 is one hop from tag 1");
        let two = AttributeSettings { kg_hops: 2, ..one };
        assert_eq!(run(&[2], &[], &two), [1, 3, 4, 0], "tag 0 two hops away");
        let p = profile(&[2], |i| items().row(i as usize), Some(related()), &two);
        assert_eq!(p, [(1, 1.0), (2, 0.5), (0, 0.25)]);
    }

    #[test]
    fn only_the_strongest_tags_spread() {
        // Items 0 {tag 0: 1.0}, 1 {tag 1: 0.4}, 2 {tag 2: 0.4}; tags 1 and 2 both relate to tag 3.
        let (item_offsets, item_tags, item_weights) = ([0, 1, 2, 3], [0, 1, 2], [1.0, 0.4, 0.4]);
        let (rel_offsets, rel_tags, rel_weights) = ([0, 0, 1, 2, 2], [3, 3], [1.0, 1.0]);
        let items = weighted(&item_offsets, &item_tags, &item_weights);
        let related = weighted(&rel_offsets, &rel_tags, &rel_weights);
        let s = |max_tags| AttributeSettings {
            recency_decay: 1.0,
            max_tags,
            kg_expansion: true,
            kg_hops: 1,
            kg_hop_decay: 1.0,
            ..AttributeSettings::default()
        };
        let p = |max_tags| {
            profile(
                &[0, 1, 2],
                |i| items.row(i as usize),
                Some(related),
                &s(max_tags),
            )
        };
        // All three tags spread: tag 3 sums both gains and outranks tags 1 and 2.
        assert_eq!(p(3), [(0, 1.0), (3, 0.8), (1, 0.4)]);
        // Two tags kept: tag 2 (the weaker of the tie) does not spread, so tag 3 gets one gain.
        assert_eq!(p(2), [(0, 1.0), (1, 0.4)]);
    }

    #[test]
    fn excluded_items_empty_history_and_non_finite_weights_give_nothing_bad() {
        assert_eq!(run(&[2], &[1], &settings()), Vec::<u32>::new());
        assert!(run(&[], &[], &settings()).is_empty());
        let nan = [f32::NAN, 0.8, 0.4, 1.0, 0.5, 1.0];
        let bad = Weighted {
            rows: postings().rows,
            weights: &nan,
        };
        let hits = recall(
            |i| items().row(i as usize),
            &[bad],
            None,
            &settings(),
            &[3, 0],
            &[],
            10,
        );
        assert!(hits.iter().all(|h| h.score.is_finite()), "{hits:?}");
        assert_eq!(hits.iter().map(|h| h.item).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn a_second_index_of_new_items_is_searched_with_the_bundles() {
        // Item 5 arrived after training with tag 2.
        let offsets = [0usize, 0, 0, 1];
        let columns = [5u32];
        let weights = [0.7f32];
        let fresh = Weighted {
            rows: CsrRef {
                offsets: &offsets,
                columns: &columns,
            },
            weights: &weights,
        };
        let hits = recall(
            |i| items().row(i as usize),
            &[postings(), fresh],
            None,
            &settings(),
            &[3],
            &[],
            10,
        );
        assert_eq!(
            hits,
            [Hit {
                item: 5,
                score: 0.7
            }]
        );
    }
}
