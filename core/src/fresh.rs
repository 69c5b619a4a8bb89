//! Fresh signals from the online store, the decisions only: which time buckets make up a
//! trending window and what each weighs, how decayed bucket counts combine into a ranking, and
//! how a stored recent history joins the bundle's. The stores (in-process and Redis) and the
//! worker call these, so both stores rank the same way.

use std::collections::HashMap;

/// Width of one trending bucket: item counts are kept per minute and segment.
pub const BUCKET_MS: i64 = 60_000;
/// Longest trending window any reader may ask for; stores drop buckets older than this.
pub const MAX_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The bucket an event at `ts_ms` counts in.
pub fn bucket_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(BUCKET_MS)
}

/// The buckets of the window ending at `now_ms` (the current one first) and the weight of each:
/// `0.5^(age / half_life)` with the age in whole buckets, the current bucket counting fully. A
/// window shorter than a bucket is one bucket.
pub fn window(now_ms: i64, window_ms: i64, half_life_ms: i64) -> Vec<(i64, f64)> {
    let current = bucket_of(now_ms);
    let n = (window_ms.clamp(BUCKET_MS, MAX_WINDOW_MS) / BUCKET_MS).max(1);
    (0..n)
        .map(|age| {
            let weight = if half_life_ms <= 0 {
                1.0
            } else {
                0.5f64.powf((age * BUCKET_MS) as f64 / half_life_ms as f64)
            };
            (current - age, weight)
        })
        .collect()
}

/// Sums `weight · count` per item over weighted buckets; the `k` best, best first (ties by id,
/// so both stores give the same order).
pub fn combine<'a>(
    buckets: impl IntoIterator<Item = (f64, &'a [(String, f64)])>,
    k: usize,
) -> Vec<(String, f64)> {
    let mut sums: HashMap<&str, f64> = HashMap::new();
    for (weight, counts) in buckets {
        for (item, count) in counts {
            *sums.entry(item.as_str()).or_default() += weight * count;
        }
    }
    let mut ranked: Vec<(String, f64)> = sums
        .into_iter()
        .filter(|(_, s)| s.is_finite() && *s > 0.0)
        .map(|(i, s)| (i.to_string(), s))
        .collect();
    rank(&mut ranked);
    ranked.truncate(k);
    ranked
}

/// Best score first, ties by item id.
pub fn rank(items: &mut [(String, f64)]) {
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// The history a request without one is served with: the stored recent items (most recent
/// first) ahead of the bundle's, each item once, at most `max`.
pub fn merge_history(fresh: &[u32], bundle: &[u32], max: usize) -> Vec<u32> {
    let mut seen = std::collections::HashSet::with_capacity(fresh.len() + bundle.len());
    fresh
        .iter()
        .chain(bundle)
        .copied()
        .filter(|i| seen.insert(*i))
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_covers_its_minutes_newest_first_with_halving_weights() {
        let now = 10 * BUCKET_MS + 5;
        let w = window(now, 3 * BUCKET_MS, BUCKET_MS);
        assert_eq!(w, [(10, 1.0), (9, 0.5), (8, 0.25)]);
        assert_eq!(window(now, 1, 0), [(10, 1.0)], "at least one bucket");
        assert_eq!(bucket_of(-1), -1, "times before 1970 do not share bucket 0");
    }

    #[test]
    fn a_recent_burst_outranks_an_older_larger_count() {
        let now = [("burst".to_string(), 5.0)];
        let old = [("steady".to_string(), 8.0), ("burst".to_string(), 1.0)];
        let ranked = combine([(1.0, &now[..]), (0.25, &old[..])], 10);
        assert_eq!(ranked[0], ("burst".to_string(), 5.25));
        assert_eq!(ranked[1], ("steady".to_string(), 2.0));
        assert_eq!(combine([(1.0, &now[..])], 0), []);
    }

    #[test]
    fn stored_history_comes_first_and_each_item_once() {
        assert_eq!(merge_history(&[3, 1], &[1, 2, 3, 4], 4), [3, 1, 2, 4]);
        assert_eq!(merge_history(&[], &[1, 2], 1), [1]);
    }
}
