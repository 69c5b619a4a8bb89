//! Popular recall: precomputed ranked lists read in order of preference (the online store's
//! trending items, the request segment's list, the global list), skipping what the user must
//! not get again. The worker passes every list it has for the request; `kan eval`, which has no
//! request context, passes the global list: the same walk either way.

use std::collections::HashSet;

use crate::Hit;

/// The first `k` items of `lists`, read list after list, without excluded items and without
/// repeating an item an earlier list already gave.
pub fn recall<'a>(
    lists: impl IntoIterator<Item = &'a [Hit]>,
    excluded: impl Fn(u32) -> bool,
    k: usize,
) -> Vec<Hit> {
    let mut seen = HashSet::new();
    lists
        .into_iter()
        .flatten()
        .filter(|h| !excluded(h.item) && seen.insert(h.item))
        .take(k)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(items: &[u32]) -> Vec<Hit> {
        items
            .iter()
            .enumerate()
            .map(|(n, &item)| Hit {
                item,
                score: 10.0 - n as f32,
            })
            .collect()
    }

    #[test]
    fn lists_are_read_in_order_without_exclusions_or_repeats() {
        let (segment, global) = (hits(&[7, 3, 9]), hits(&[3, 1, 7, 4, 5]));
        let got = recall([segment.as_slice(), global.as_slice()], |i| i == 9, 4);
        let items: Vec<u32> = got.iter().map(|h| h.item).collect();
        assert_eq!(items, [7, 3, 1, 4]);
        // A segment item keeps its segment score, not the global one.
        assert_eq!(got[1].score, 9.0);
    }

    #[test]
    fn short_lists_give_what_they_have() {
        let global = hits(&[1, 2]);
        assert_eq!(recall([global.as_slice()], |_| false, 10).len(), 2);
        assert!(recall([global.as_slice()], |_| true, 10).is_empty());
    }
}
