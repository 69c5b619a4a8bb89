//! The online A/B readout: each exposure (a response served to a user in an arm) is joined with
//! the user's engagements on the exposed items within a window after it. Per arm: exposures,
//! engaged exposures, the rate with its 95% Wilson interval; per arm against the baseline: the
//! difference with Newcombe's hybrid score interval (built from the two Wilson intervals, so it
//! behaves at rates near 0 and 1 where the normal approximation does not).

use std::collections::{BTreeMap, HashMap, HashSet};

use kan_api::events::{ArmDifference, ArmReadout, Readout};
use kan_api::wire::ExposureRecord;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `successes` out of `n`; `[0, 1]` when `n` is 0 (nothing is
/// known).
pub fn wilson(successes: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// `rate(a) - rate(b)` and its 95% interval (Newcombe 1998, method 10).
pub fn difference(a: (u64, u64), b: (u64, u64)) -> (f64, f64, f64) {
    let rate = |(s, n): (u64, u64)| if n == 0 { 0.0 } else { s as f64 / n as f64 };
    let (pa, pb) = (rate(a), rate(b));
    let (la, ua) = wilson(a.0, a.1);
    let (lb, ub) = wilson(b.0, b.1);
    let d = pa - pb;
    let low = d - ((pa - la).powi(2) + (ub - pb).powi(2)).sqrt();
    let high = d + ((ua - pa).powi(2) + (pb - lb).powi(2)).sqrt();
    (d, low, high)
}

/// One engagement of a user, as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Engaged {
    pub item_id: String,
    pub ts_ms: i64,
}

/// Joins `exposures` with `engagements` (per user) within `window_ms` after each exposure.
pub fn readout(
    exposures: &[ExposureRecord],
    engagements: &HashMap<String, Vec<Engaged>>,
    window_ms: i64,
) -> Readout {
    // (experiment, arm) → (engaged, exposures)
    let mut counts = ArmCounts::new();
    for exposure in exposures {
        if exposure.assignments.is_empty() {
            continue;
        }
        let items: HashSet<&str> = exposure.items.iter().map(String::as_str).collect();
        let engaged = engagements.get(&exposure.user_id).is_some_and(|list| {
            list.iter().any(|e| {
                e.ts_ms >= exposure.ts_ms
                    && e.ts_ms <= exposure.ts_ms.saturating_add(window_ms)
                    && items.contains(e.item_id.as_str())
            })
        });
        for a in &exposure.assignments {
            let c = counts
                .entry((a.experiment.clone(), a.arm.clone()))
                .or_default();
            c.0 += u64::from(engaged);
            c.1 += 1;
        }
    }
    from_counts(window_ms, &counts)
}

/// Engaged exposures and exposures per `(experiment, arm)`.
pub type ArmCounts = BTreeMap<(String, String), (u64, u64)>;

/// The readout of counts already joined: each arm's rate with its Wilson interval, and each
/// arm against its experiment's baseline (the arm named `control`, else the first by name).
/// [`readout`] joins one exposure log; the operator sums the counts of every gateway pod and
/// calls this, so both report the same statistics.
pub fn from_counts(window_ms: i64, counts: &ArmCounts) -> Readout {
    let arms: Vec<ArmReadout> = counts
        .iter()
        .map(|((experiment, arm), &(engaged, n))| {
            let (low, high) = wilson(engaged, n);
            ArmReadout {
                experiment: experiment.clone(),
                arm: arm.clone(),
                exposures: n,
                engaged,
                rate: if n == 0 {
                    0.0
                } else {
                    engaged as f64 / n as f64
                },
                low,
                high,
            }
        })
        .collect();
    let mut differences = Vec::new();
    let mut by_experiment: BTreeMap<&str, Vec<&ArmReadout>> = BTreeMap::new();
    for arm in &arms {
        by_experiment.entry(&arm.experiment).or_default().push(arm);
    }
    for (experiment, list) in by_experiment {
        let Some(baseline) = list
            .iter()
            .find(|a| a.arm == "control")
            .or_else(|| list.first())
        else {
            continue;
        };
        for arm in list.iter().filter(|a| a.arm != baseline.arm) {
            let (d, low, high) = difference(
                (arm.engaged, arm.exposures),
                (baseline.engaged, baseline.exposures),
            );
            differences.push(ArmDifference {
                experiment: experiment.to_string(),
                arm: arm.arm.clone(),
                baseline: baseline.arm.clone(),
                difference: d,
                low,
                high,
            });
        }
    }
    Readout {
        window_ms,
        arms,
        differences,
    }
}

#[cfg(test)]
mod tests {
    use kan_api::wire::Assignment;

    use super::*;

    #[test]
    fn wilson_matches_the_textbook_values_and_stays_inside_zero_and_one() {
        // 81 of 263: 0.3080, Wilson 95% [0.2553, 0.3662] (Newcombe 1998, table I).
        let (l, h) = wilson(81, 263);
        assert!(
            (l - 0.2553).abs() < 5e-4 && (h - 0.3662).abs() < 5e-4,
            "{l} {h}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (l, h) = wilson(0, 10);
        assert_eq!(l, 0.0);
        assert!(h > 0.0 && h < 0.35);
        assert!(wilson(10, 10).1 <= 1.0);
    }

    #[test]
    fn the_difference_interval_matches_newcombes_worked_example() {
        // 56/70 vs 48/80: difference 0.2, interval [0.0524, 0.3339] (Newcombe 1998, method 10).
        let (d, l, h) = difference((56, 70), (48, 80));
        assert!((d - 0.2).abs() < 1e-12);
        assert!(
            (l - 0.0524).abs() < 5e-4 && (h - 0.3339).abs() < 5e-4,
            "{l} {h}"
        );
    }

    fn exposure(user: &str, arm: &str, ts_ms: i64, items: &[&str]) -> ExposureRecord {
        ExposureRecord {
            ts_ms,
            user_id: user.to_string(),
            assignments: vec![Assignment {
                layer: "recall".into(),
                experiment: "exp".into(),
                arm: arm.into(),
            }],
            items: items.iter().map(|s| s.to_string()).collect(),
            degraded: false,
        }
    }

    /// A deterministic simulation: users alternate arms; the treatment's lists hold an item the
    /// user engages with 30% of the time, control's 15% (a fixed pseudo-random draw per user).
    #[test]
    fn a_simulated_experiment_with_a_better_arm_shows_it_ahead_with_the_interval_above_zero() {
        let mut exposures = Vec::new();
        let mut engagements: HashMap<String, Vec<Engaged>> = HashMap::new();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for u in 0..4000 {
            let user = format!("u{u}");
            let arm = if u % 2 == 0 { "control" } else { "treatment" };
            let p = if arm == "control" { 0.15 } else { 0.30 };
            exposures.push(exposure(&user, arm, 1_000, &["a", "b"]));
            // xorshift: reproducible, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let draw = (state >> 11) as f64 / (1u64 << 53) as f64;
            let list = engagements.entry(user).or_default();
            if draw < p {
                list.push(Engaged {
                    item_id: "b".into(),
                    ts_ms: 2_000,
                });
            }
            // Engagements outside the window or on other items never count.
            list.push(Engaged {
                item_id: "a".into(),
                ts_ms: 1_000 + 60_001,
            });
            list.push(Engaged {
                item_id: "z".into(),
                ts_ms: 1_500,
            });
        }
        let r = readout(&exposures, &engagements, 60_000);
        assert_eq!(r.arms.len(), 2);
        let (control, treatment) = (&r.arms[0], &r.arms[1]);
        assert_eq!((control.arm.as_str(), control.exposures), ("control", 2000));
        assert!(treatment.rate > control.rate);
        assert!((control.rate - 0.15).abs() < 0.03, "{}", control.rate);
        let d = &r.differences[0];
        assert_eq!(
            (d.arm.as_str(), d.baseline.as_str()),
            ("treatment", "control")
        );
        assert!(d.low > 0.0, "the interval excludes zero: {d:?}");
        assert!(d.low < d.difference && d.difference < d.high);
    }

    #[test]
    fn arms_of_equal_quality_get_an_interval_that_includes_zero() {
        let mut exposures = Vec::new();
        let mut engagements: HashMap<String, Vec<Engaged>> = HashMap::new();
        for u in 0..400 {
            let user = format!("u{u}");
            let arm = if u % 2 == 0 { "control" } else { "treatment" };
            exposures.push(exposure(&user, arm, 0, &["x"]));
            if (u / 2) % 5 == 0 {
                engagements.entry(user).or_default().push(Engaged {
                    item_id: "x".into(),
                    ts_ms: 10,
                });
            }
        }
        let r = readout(&exposures, &engagements, 1000);
        let d = &r.differences[0];
        assert_eq!(d.difference, 0.0);
        assert!(d.low < 0.0 && d.high > 0.0, "{d:?}");
    }
}
