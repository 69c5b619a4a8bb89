//! RecallExperiment status: its buckets, its arms' buckets, and whether it is live.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kan_api::assignment::split_range;
use kan_api::crd::{
    RecallExperiment, RecallExperimentSpec, RecallExperimentStatus, RecallGatewaySpec, RecallQueue,
    condition_type::*,
};

use super::conditions::{Decided, merge};
use crate::allocation::Allocation;
use crate::routing::queue_problem;

/// What serves an experiment, as observed by its reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServingPath {
    /// Ready pods of its RecallGateway; `None` when the gateway does not exist.
    pub gateway_ready_pods: Option<i32>,
    /// Why the gateway would refuse this experiment ([`crate::routing::experiment_refusal`]).
    pub refused: Option<String>,
    /// Queues of its arms that cannot be routed, one reason each.
    pub unserved: Vec<String>,
}

/// The queues each arm of `experiment` calls (its own or the gateway's, and the fallback) that
/// cannot be routed, as `arm 'name': reason` lines.
pub fn unserved_arm_queues(
    experiment: &RecallExperimentSpec,
    gateway: &RecallGatewaySpec,
    namespace: &str,
    queues: &[RecallQueue],
) -> Vec<String> {
    let mut out = Vec::new();
    for arm in &experiment.arms {
        let routes = arm.queues.as_deref().unwrap_or(&gateway.queues);
        let fallback = arm.fallback.as_ref().or(gateway.fallback.as_ref());
        let names = routes.iter().map(|q| &q.name).chain(fallback);
        for name in names {
            if let Some(problem) = queue_problem(name, namespace, queues) {
                out.push(format!("arm '{}': {problem}", arm.name));
            }
        }
    }
    out
}

/// The status of `experiment` given what serves it (`serving`) and its share of the gateway's
/// layers (`allocation`).
pub fn experiment_status(
    experiment: &RecallExperiment,
    serving: &ServingPath,
    allocation: &Allocation,
    now: &Time,
) -> RecallExperimentStatus {
    let existing = experiment.status.clone().unwrap_or_default();
    let generation = experiment.metadata.generation;
    let spec = &experiment.spec;
    let range = spec.bucket_range();
    let arm_buckets = split_range(range, spec.arms.iter().map(|a| (a.name.as_str(), a.weight)));
    let namespace = experiment
        .metadata
        .namespace
        .as_deref()
        .unwrap_or("default");
    let not_ready = |reason: &'static str, message: String| {
        (
            Decided::new(READY, false, reason, message.clone()),
            Decided::new(DEGRADED, true, reason, message),
        )
    };

    let (ready, degraded) = if serving.gateway_ready_pods.is_none() {
        not_ready(
            "GatewayNotFound",
            format!(
                "RecallGateway '{}' does not exist in namespace '{namespace}': create it or fix spec.gateway",
                spec.gateway
            ),
        )
    } else if let Some(refused) = &serving.refused {
        not_ready(
            "RefusedByGateway",
            format!(
                "not routed as specified: {refused}; its last accepted version, if any, keeps serving"
            ),
        )
    } else if !allocation.live {
        let message = format!("not routed: {}", allocation.messages.join("; "));
        (
            Decided::new(READY, false, "LayerConflict", message.clone()),
            Decided::new(DEGRADED, true, "LayerConflict", message),
        )
    } else if spec.paused {
        (
            Decided::new(
                READY,
                false,
                "Paused",
                "paused: its users get the gateway's default configuration",
            ),
            Decided::new(DEGRADED, false, "AsExpected", ""),
        )
    } else if serving.gateway_ready_pods == Some(0) {
        not_ready(
            "GatewayNotReady",
            format!(
                "RecallGateway '{}' has no ready pod: nobody is served",
                spec.gateway
            ),
        )
    } else if !serving.unserved.is_empty() {
        not_ready(
            "ArmQueuesNotRouted",
            format!("not served as specified: {}", serving.unserved.join("; ")),
        )
    } else {
        let arms: Vec<String> = arm_buckets
            .iter()
            .map(|a| format!("{} {}..{}", a.arm, a.range.start, a.range.end))
            .collect();
        (
            Decided::new(
                READY,
                true,
                "Live",
                format!(
                    "routed by gateway '{}' in layer '{}': {}",
                    spec.gateway,
                    spec.layer,
                    arms.join(", ")
                ),
            ),
            Decided::new(DEGRADED, false, "AsExpected", ""),
        )
    };
    let live = ready.status;
    RecallExperimentStatus {
        observed_generation: generation,
        conditions: merge(&existing.conditions, vec![ready, degraded], generation, now),
        buckets: Some(range),
        arm_buckets,
        conflicts: allocation.conflicts.clone(),
        started_at: existing
            .started_at
            .or_else(|| live.then(|| now.0.to_string())),
        // Decided by [`super::readout::with_readout`], from what the gateway answers.
        readout: existing.readout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::{allocate, tests::experiment};
    use crate::status::conditions::status_of;
    use k8s_openapi::jiff::Timestamp;
    use kan_api::crd::BucketRange;

    /// A gateway with a ready pod, accepting the experiment, every arm queue routed.
    fn served() -> ServingPath {
        ServingPath {
            gateway_ready_pods: Some(1),
            ..ServingPath::default()
        }
    }

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).expect("valid"))
    }

    #[test]
    fn live_experiment_reports_its_buckets_and_start_time() {
        let e = experiment("a", "recall", 1000, 20, 1);
        let s = experiment_status(&e, &served(), &allocate(&[&e])["a"], &now());
        assert_eq!(
            s.buckets,
            Some(BucketRange {
                start: 1000,
                end: 3000
            })
        );
        let arms: Vec<(&str, i32, i32)> = s
            .arm_buckets
            .iter()
            .map(|a| (a.arm.as_str(), a.range.start, a.range.end))
            .collect();
        assert_eq!(arms, [("control", 1000, 2000), ("treatment", 2000, 3000)]);
        assert_eq!(status_of(&s.conditions, READY), Some("True"));
        assert_eq!(
            s.conditions[0].message,
            "routed by gateway 'feed' in layer 'recall': control 1000..2000, treatment 2000..3000"
        );
        assert_eq!(s.started_at.as_deref(), Some("2023-11-14T22:13:20Z"));
    }

    #[test]
    fn start_time_is_kept_once_set() {
        let mut e = experiment("a", "recall", 0, 20, 1);
        e.status = Some(RecallExperimentStatus {
            started_at: Some("earlier".into()),
            ..Default::default()
        });
        let s = experiment_status(&e, &served(), &allocate(&[&e])["a"], &now());
        assert_eq!(s.started_at.as_deref(), Some("earlier"));
    }

    #[test]
    fn overlapping_experiment_gets_a_degraded_condition_naming_the_other() {
        let old = experiment("old", "recall", 0, 50, 1);
        let new = experiment("new", "recall", 4000, 20, 2);
        let allocations = allocate(&[&old, &new]);
        let s = experiment_status(&new, &served(), &allocations["new"], &now());
        assert_eq!(s.conflicts, ["old"]);
        let degraded = s
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .expect("degraded");
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "LayerConflict")
        );
        assert!(
            degraded
                .message
                .contains("'old' (buckets 0..5000) and 'new' (buckets 4000..6000) overlap"),
            "{}",
            degraded.message
        );
        assert_eq!(status_of(&s.conditions, READY), Some("False"));
        assert_eq!(s.started_at, None);
        // The running experiment stays live but knows about the conflict.
        let s = experiment_status(&old, &served(), &allocations["old"], &now());
        assert_eq!(status_of(&s.conditions, READY), Some("True"));
        assert_eq!(s.conflicts, ["new"]);
    }

    #[test]
    fn missing_gateway_and_paused_are_reported() {
        let mut e = experiment("a", "recall", 0, 20, 1);
        let s = experiment_status(&e, &ServingPath::default(), &Allocation::default(), &now());
        assert_eq!(s.conditions[0].reason, "GatewayNotFound");
        e.spec.paused = true;
        let s = experiment_status(&e, &served(), &allocate(&[&e])["a"], &now());
        assert_eq!(s.conditions[0].reason, "Paused");
        assert_eq!(status_of(&s.conditions, DEGRADED), Some("False"));
    }
}
