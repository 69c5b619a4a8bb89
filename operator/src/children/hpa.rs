//! HorizontalPodAutoscaler (autoscaling/v2) of a queue's workers, when `autoscaling` is set.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use kan_api::crd::RecallQueueSpec;

use super::child_meta;
use crate::names::{Component, Parent};

/// The HPA of a queue, or `None` when the queue has a fixed replica count.
pub fn worker_hpa(parent: &Parent, spec: &RecallQueueSpec) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = spec.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(parent, Component::Worker, parent.name.clone()),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name: parent.name.clone(),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_string(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        type_: "Utilization".to_string(),
                        average_utilization: Some(autoscaling.target_cpu_utilization),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::{DSSM, POPULAR, parent, queue_spec};

    #[test]
    fn autoscaling_queue_gets_a_cpu_hpa_on_its_deployment() {
        let hpa = worker_hpa(&parent("RecallQueue", "dssm-main"), &queue_spec(DSSM)).expect("hpa");
        assert_eq!(hpa.metadata.name.as_deref(), Some("dssm-main"));
        let spec = hpa.spec;
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "dssm-main");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 8));
        let metric = &spec.metrics.expect("metrics")[0];
        let resource = metric.resource.as_ref().expect("resource metric");
        assert_eq!(resource.name, "cpu");
        assert_eq!(resource.target.type_, "Utilization");
        assert_eq!(resource.target.average_utilization, Some(60));
    }

    #[test]
    fn fixed_replica_queue_has_no_hpa() {
        assert!(worker_hpa(&parent("RecallQueue", "pop"), &queue_spec(POPULAR)).is_none());
    }
}
