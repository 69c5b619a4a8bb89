//! Resolving a request against the loaded bundle (the body itself is parsed by
//! [`kan_api::wire::parse_recall_request`], the parser the gateway uses too).

use kan_core::ItemSet;

/// Known ids of `ids` as internal indices, in order (unknown ids dropped).
pub fn resolve<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Vec<u32> {
    ids.into_iter().filter_map(|id| lookup(id)).collect()
}

/// The same as a set.
pub fn resolve_set<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> ItemSet {
    ids.into_iter().filter_map(|id| lookup(id)).collect()
}

/// `k` as served: the request's, else the queue default, capped by `maxCandidates`.
pub fn effective_k(requested: Option<u32>, default: i32, max: i32) -> usize {
    let max = max.max(1) as usize;
    requested
        .map(|k| k as usize)
        .unwrap_or(default.max(1) as usize)
        .clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_defaults_to_the_queue_and_is_capped_by_max_candidates() {
        assert_eq!(effective_k(None, 300, 1000), 300);
        assert_eq!(effective_k(Some(5000), 300, 1000), 1000);
        assert_eq!(effective_k(Some(7), 300, 1000), 7);
    }
}
