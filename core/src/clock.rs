//! The one definition of a bundle's reference time: the "now" that time-decayed strategies
//! (social, popular) age interactions from, so a bundle trained on old data keeps its shape
//! offline and online instead of decaying to nothing against today's clock.

/// The reference time of a bundle trained on interactions at `timestamps`: the latest one.
/// None when the data has no time (every timestamp 0). Trainers record it as
/// `params.reference_time`; readers age engagements from it.
pub fn reference_time(timestamps: impl IntoIterator<Item = i64>) -> Option<i64> {
    timestamps.into_iter().filter(|&ts| ts > 0).max()
}

/// The "now" engagements are aged from: the bundle's reference time, else the wall clock.
pub fn now(reference_time: Option<i64>, wall_clock: i64) -> i64 {
    reference_time.unwrap_or(wall_clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_time_is_the_latest_timestamp_and_none_without_time() {
        assert_eq!(reference_time([5, 0, 9, 3]), Some(9));
        assert_eq!(reference_time([0, 0]), None);
        assert_eq!(reference_time([]), None);
    }

    #[test]
    fn the_reference_time_wins_over_the_wall_clock() {
        assert_eq!(now(Some(9), 100), 9);
        assert_eq!(now(None, 100), 100);
    }
}
