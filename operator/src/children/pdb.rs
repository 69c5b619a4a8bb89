//! PodDisruptionBudget of a queue's workers when it runs more than one pod, so a node drain
//! never takes the whole queue down at once.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kan_api::crd::RecallQueueSpec;

use super::child_meta;
use crate::names::{Component, Parent, selector_labels};

/// The fewest worker pods a queue runs: `replicas`, `autoscaling.minReplicas`, or 1.
pub fn min_replicas(spec: &RecallQueueSpec) -> i32 {
    match (&spec.autoscaling, spec.replicas) {
        (Some(autoscaling), _) => autoscaling.min_replicas,
        (None, Some(replicas)) => replicas,
        (None, None) => 1,
    }
}

/// The PDB of a queue (at most one pod down at a time), or `None` for a single-pod queue,
/// where a budget would block node drains forever.
pub fn worker_pdb(parent: &Parent, spec: &RecallQueueSpec) -> Option<PodDisruptionBudget> {
    if min_replicas(spec) <= 1 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: child_meta(parent, Component::Worker, parent.name.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(Component::Worker, &parent.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::{DSSM, POPULAR, parent, queue_spec};

    #[test]
    fn multi_replica_queues_get_a_budget_of_one_unavailable_pod() {
        for (name, yaml) in [("pop", POPULAR), ("dssm", DSSM)] {
            let pdb = worker_pdb(&parent("RecallQueue", name), &queue_spec(yaml)).expect("pdb");
            let spec = pdb.spec.expect("spec");
            assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
            assert_eq!(spec.min_available, None);
            assert_eq!(
                spec.selector.and_then(|s| s.match_labels),
                Some(selector_labels(Component::Worker, name))
            );
        }
    }

    #[test]
    fn single_replica_queue_has_no_budget() {
        let one = queue_spec("strategy: {type: popular}\nbundle: {uri: /b}\nreplicas: 1\n");
        assert!(worker_pdb(&parent("RecallQueue", "p"), &one).is_none());
        let default = queue_spec("strategy: {type: popular}\nbundle: {uri: /b}\n");
        assert!(worker_pdb(&parent("RecallQueue", "p"), &default).is_none());
        let autoscaled_from_one = queue_spec(
            "strategy: {type: popular}\nbundle: {uri: /b}\nautoscaling: {maxReplicas: 4}\n",
        );
        assert!(worker_pdb(&parent("RecallQueue", "p"), &autoscaled_from_one).is_none());
    }
}
