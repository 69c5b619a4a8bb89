//! Experiment assignment: which arms a user is in, and the route (queues, merge, fallback) that
//! follows from them. Pure functions of the routing config and the user id.
//!
//! In each experiment the user's bucket is `kan_api::assignment::bucket(salt, layer, user_id)`;
//! a user whose bucket falls in the experiment's range is in the arm whose share of the range
//! (`kan_api::assignment::split_range`, cumulative weights in arm order) holds the bucket.
//! Paused experiments assign nobody.
//!
//! Experiments are applied in config order, starting from the gateway's defaults. An arm that
//! sets `queues`, `merge` or `fallback` replaces that field of the route as a whole; when arms of
//! two experiments (in different layers) both set the same field, the later experiment in the
//! config wins. Fields that only one arm sets compose.

use kan_api::assignment::{bucket, split_range};
use kan_api::crd::{Arm, MergeSpec, QueueRoute};
use kan_api::routing::{ExperimentRoute, RoutingConfig};
use kan_api::wire::Assignment;

/// What one user's request does.
#[derive(Debug, Clone, PartialEq)]
pub struct Route<'a> {
    /// One per experiment the user is in, in config order.
    pub assignments: Vec<Assignment>,
    pub queues: &'a [QueueRoute],
    pub merge: &'a MergeSpec,
    pub fallback: Option<&'a str>,
}

/// The arm of `experiment` that `user_id` is in, if any.
pub fn arm_of<'a>(experiment: &'a ExperimentRoute, user_id: &str) -> Option<&'a Arm> {
    if experiment.paused {
        return None;
    }
    let b = bucket(&experiment.salt, &experiment.layer, user_id);
    if !experiment.buckets.contains(b) {
        return None;
    }
    let split = split_range(
        experiment.buckets,
        experiment.arms.iter().map(|a| (a.name.as_str(), a.weight)),
    );
    let index = split.iter().position(|s| s.range.contains(b))?;
    experiment.arms.get(index)
}

/// The route of `user_id` under `config`.
pub fn route<'a>(config: &'a RoutingConfig, user_id: &str) -> Route<'a> {
    let mut route = Route {
        assignments: Vec::new(),
        queues: &config.queues,
        merge: &config.merge,
        fallback: config.fallback.as_deref(),
    };
    for experiment in &config.experiments {
        let Some(arm) = arm_of(experiment, user_id) else {
            continue;
        };
        route.assignments.push(Assignment {
            layer: experiment.layer.clone(),
            experiment: experiment.name.clone(),
            arm: arm.name.clone(),
        });
        if let Some(queues) = &arm.queues {
            route.queues = queues;
        }
        if let Some(merge) = &arm.merge {
            route.merge = merge;
        }
        if let Some(fallback) = &arm.fallback {
            route.fallback = Some(fallback);
        }
    }
    route
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kan_api::crd::{BucketRange, MergePolicy};

    use super::*;

    fn arm(name: &str, weight: i32) -> Arm {
        Arm {
            name: name.into(),
            weight,
            queues: None,
            merge: None,
            fallback: None,
        }
    }

    fn experiment(name: &str, layer: &str, range: (i32, i32), arms: Vec<Arm>) -> ExperimentRoute {
        ExperimentRoute {
            name: name.into(),
            layer: layer.into(),
            salt: layer.into(),
            buckets: BucketRange {
                start: range.0,
                end: range.1,
            },
            arms,
            paused: false,
        }
    }

    fn config(experiments: Vec<ExperimentRoute>) -> RoutingConfig {
        RoutingConfig {
            gateway: "gw".into(),
            endpoints: BTreeMap::new(),
            queues: vec![QueueRoute::named("default")],
            merge: MergeSpec::default(),
            filters: Default::default(),
            fallback: Some("popular".into()),
            deadline_ms: 100,
            circuit_breaker: None,
            exposure_log: None,
            experiments,
        }
    }

    fn users(n: usize) -> impl Iterator<Item = String> {
        (0..n).map(|i| format!("user-{i}"))
    }

    #[test]
    fn assignment_is_deterministic() {
        let c = config(vec![experiment(
            "e",
            "recall",
            (0, 10000),
            vec![arm("a", 50), arm("b", 50)],
        )]);
        for u in users(1000) {
            assert_eq!(route(&c, &u).assignments, route(&c, &u).assignments);
        }
    }

    #[test]
    fn the_split_matches_the_weights_within_statistical_tolerance_over_100k_users() {
        let e = experiment(
            "e",
            "recall",
            (0, 10000),
            vec![arm("a", 20), arm("b", 30), arm("c", 50)],
        );
        let n = 100_000;
        let mut counts = BTreeMap::new();
        for u in users(n) {
            *counts
                .entry(arm_of(&e, &u).map(|a| a.name.clone()))
                .or_insert(0usize) += 1;
        }
        for (name, p) in [("a", 0.2), ("b", 0.3), ("c", 0.5)] {
            let got = counts[&Some(name.to_string())] as f64;
            let expected = n as f64 * p;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            // 5 standard deviations: a false alarm about once in 3.5 million runs.
            assert!(
                (got - expected).abs() < 5.0 * sd,
                "arm {name}: {got} users, expected {expected} ± {sd}"
            );
        }
    }

    #[test]
    fn traffic_share_limits_who_is_in_the_experiment() {
        let e = experiment("e", "recall", (2000, 3000), vec![arm("a", 100)]);
        let n = 100_000;
        let inside = users(n).filter(|u| arm_of(&e, u).is_some()).count() as f64;
        let sd = (n as f64 * 0.1 * 0.9).sqrt();
        assert!(
            (inside - 10_000.0).abs() < 5.0 * sd,
            "{inside} users in a 10% experiment"
        );
    }

    #[test]
    fn layers_are_independent_by_chi_square() {
        let first = experiment(
            "e1",
            "layer-one",
            (0, 10000),
            vec![arm("a", 50), arm("b", 50)],
        );
        let second = experiment(
            "e2",
            "layer-two",
            (0, 10000),
            vec![arm("x", 30), arm("y", 70)],
        );
        let mut table = [[0f64; 2]; 2];
        for u in users(100_000) {
            let i = usize::from(arm_of(&first, &u).is_some_and(|a| a.name == "b"));
            let j = usize::from(arm_of(&second, &u).is_some_and(|a| a.name == "y"));
            table[i][j] += 1.0;
        }
        let total: f64 = table.iter().flatten().sum();
        let mut chi2 = 0.0;
        for i in 0..2 {
            for j in 0..2 {
                let row: f64 = table[i].iter().sum();
                let col: f64 = table[0][j] + table[1][j];
                let expected = row * col / total;
                chi2 += (table[i][j] - expected).powi(2) / expected;
            }
        }
        // 1 degree of freedom; 15.14 is the 0.9999 quantile.
        assert!(
            chi2 < 15.14,
            "chi-square {chi2} says the layers are correlated: {table:?}"
        );
    }

    #[test]
    fn changing_weights_moves_only_the_users_it_must() {
        let before = experiment(
            "e",
            "recall",
            (0, 10000),
            vec![arm("control", 50), arm("treatment", 50)],
        );
        let after = experiment(
            "e",
            "recall",
            (0, 10000),
            vec![arm("control", 60), arm("treatment", 40)],
        );
        let n = 100_000;
        let mut moved = 0;
        for u in users(n) {
            let (b, a) = (
                arm_of(&before, &u).map(|a| &a.name),
                arm_of(&after, &u).map(|a| &a.name),
            );
            if b != a {
                // Growing control can only pull users out of treatment, never the other way.
                assert_eq!(
                    (b.map(String::as_str), a.map(String::as_str)),
                    (Some("treatment"), Some("control"))
                );
                moved += 1;
            }
        }
        let sd = (n as f64 * 0.1 * 0.9).sqrt();
        assert!(
            (moved as f64 - 10_000.0).abs() < 5.0 * sd,
            "{moved} users moved, expected about 10%"
        );
    }

    #[test]
    fn paused_experiments_assign_nobody() {
        let mut e = experiment("e", "recall", (0, 10000), vec![arm("a", 100)]);
        e.paused = true;
        let c = config(vec![e]);
        assert!(users(100).all(|u| route(&c, &u).assignments.is_empty()));
        assert_eq!(route(&c, "u").queues[0].name, "default");
    }

    #[test]
    fn an_arm_overrides_queues_merge_and_fallback_and_the_later_layer_wins_a_clash() {
        let mut q1 = arm("q1", 100);
        q1.queues = Some(vec![QueueRoute::named("gat")]);
        q1.fallback = Some("editorial".into());
        let mut q2 = arm("q2", 100);
        q2.queues = Some(vec![QueueRoute::named("dssm")]);
        q2.merge = Some(MergeSpec {
            policy: MergePolicy::Score,
            ..MergeSpec::default()
        });
        let c = config(vec![
            experiment("e1", "one", (0, 10000), vec![q1]),
            experiment("e2", "two", (0, 10000), vec![q2]),
        ]);
        let r = route(&c, "u1");
        assert_eq!(r.assignments.len(), 2);
        assert_eq!(r.assignments[0].arm, "q1");
        assert_eq!(
            r.queues[0].name, "dssm",
            "later layer wins the queues clash"
        );
        assert_eq!(r.merge.policy, MergePolicy::Score);
        assert_eq!(
            r.fallback,
            Some("editorial"),
            "fields only one arm sets compose"
        );
    }

    #[test]
    fn users_outside_every_experiment_get_the_defaults() {
        let c = config(vec![experiment("e", "recall", (0, 0), vec![arm("a", 100)])]);
        let r = route(&c, "u1");
        assert!(r.assignments.is_empty());
        assert_eq!(r.queues, c.queues.as_slice());
        assert_eq!(r.fallback, Some("popular"));
    }
}
