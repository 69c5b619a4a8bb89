//! RecallQueue status from the worker Deployment the operator observed.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kan_api::crd::{
    BundleRolloutStatus, RecallQueue, RecallQueueStatus, ServedBundle, condition_type::*,
};

use super::conditions::{Decided, merge};
use crate::children::pdb::min_replicas;
use crate::names::service_url;

/// What the operator knows about a queue's workers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerObservation {
    /// Pods wanted (the Deployment's replicas, which the HPA may have changed).
    pub wanted: i32,
    pub ready: i32,
    pub updated: i32,
    pub total: i32,
    /// The Deployment controller has seen the latest Deployment spec.
    pub observed_latest: bool,
    /// The Deployment reports `ProgressDeadlineExceeded`, with its message.
    pub stuck: Option<String>,
}

impl WorkerObservation {
    /// Reads a live Deployment; `None` (not created yet) reads as nothing ready.
    pub fn of(deployment: Option<&Deployment>, fallback_wanted: i32) -> Self {
        let Some(d) = deployment else {
            return Self {
                wanted: fallback_wanted,
                ..Self::default()
            };
        };
        let status = d.status.clone().unwrap_or_default();
        let wanted = d.spec.replicas.unwrap_or(fallback_wanted);
        let stuck = status
            .conditions
            .iter()
            .flatten()
            .find(|c| {
                c.type_.as_deref() == Some("Progressing")
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
            .map(|c| {
                c.message
                    .clone()
                    .unwrap_or_else(|| "progress deadline exceeded".to_string())
            });
        Self {
            wanted,
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            total: status.replicas.unwrap_or(0),
            observed_latest: status.observed_generation.is_some()
                && status.observed_generation >= d.metadata.generation,
            stuck,
        }
    }

    fn rollout_done(&self) -> bool {
        self.observed_latest && self.updated >= self.wanted && self.total == self.updated
    }
}

/// The status of `queue` given its workers. `invalid` carries a spec validation message: an
/// invalid queue gets no children and says why.
pub fn queue_status(
    queue: &RecallQueue,
    workers: &WorkerObservation,
    invalid: Option<&str>,
    now: &Time,
) -> RecallQueueStatus {
    let existing = queue.status.clone().unwrap_or_default();
    let generation = queue.metadata.generation;
    let namespace = queue.metadata.namespace.as_deref().unwrap_or("default");
    let name = queue.metadata.name.as_deref().unwrap_or_default();

    let decided = match invalid {
        Some(message) => vec![
            Decided::new(
                READY,
                false,
                "InvalidSpec",
                format!("the spec is invalid and was not deployed: {message}"),
            ),
            Decided::new(
                PROGRESSING,
                false,
                "InvalidSpec",
                "nothing to roll out until the spec is fixed",
            ),
            Decided::new(DEGRADED, true, "InvalidSpec", message.to_string()),
        ],
        None => decide(workers),
    };
    let desired = queue.spec.bundle.as_ref().map(|b| ServedBundle {
        uri: b.uri.clone(),
        sha256: b.sha256.clone(),
    });
    let rollout = bundle_rollout(existing.bundle.as_deref(), desired.as_ref(), workers, now);
    let decided = match (invalid, &workers.stuck) {
        (None, Some(stuck)) => blame_the_bundle(decided, rollout.as_ref(), desired.as_ref(), stuck),
        _ => decided,
    };
    RecallQueueStatus {
        observed_generation: generation,
        conditions: merge(&existing.conditions, decided, generation, now),
        ready_replicas: workers.ready,
        replicas: workers.wanted,
        endpoint: Some(service_url(name, namespace)),
        bundle_version: queue.spec.bundle.as_ref().and_then(|b| b.sha256.clone()),
        bundle: rollout.map(Box::new),
    }
}

/// The spec's bundle becomes `serving` once a rollout of the latest spec completed with ready
/// pods (a worker is ready only with its bundle verified and loaded); what served before moves
/// to `previous`. Until then nothing changes, so a bundle that never gets ready leaves the
/// record (and the old pods) as they were.
pub fn bundle_rollout(
    existing: Option<&BundleRolloutStatus>,
    desired: Option<&ServedBundle>,
    workers: &WorkerObservation,
    now: &Time,
) -> Option<BundleRolloutStatus> {
    let mut out = existing.cloned().unwrap_or_default();
    if let Some(desired) = desired
        && workers.rollout_done()
        && workers.ready > 0
        && out.serving.as_ref() != Some(desired)
    {
        out.previous = out.serving.replace(desired.clone());
        out.changed_at = Some(now.clone());
    }
    (out != BundleRolloutStatus::default()).then_some(out)
}

/// A rollout stuck on a new bundle while another still serves is the bundle's failure: Degraded
/// says which bundle did not get ready and which one keeps serving (the rollback target).
fn blame_the_bundle(
    decided: Vec<Decided>,
    rollout: Option<&BundleRolloutStatus>,
    desired: Option<&ServedBundle>,
    stuck: &str,
) -> Vec<Decided> {
    let serving = rollout.and_then(|r| r.serving.as_ref());
    let (Some(serving), Some(desired)) = (serving, desired) else {
        return decided;
    };
    if serving == desired {
        return decided;
    }
    let message = format!(
        "bundle {} did not get ready on the new worker pods ({stuck}); {} keeps serving on the old pods: see the new pods' /readyz, then fix the bundle or roll back by setting spec.bundle.uri to {}",
        desired.uri, serving.uri, serving.uri
    );
    decided
        .into_iter()
        .map(|d| {
            if d.type_ == DEGRADED {
                Decided::new(DEGRADED, true, "BundleNotReady", message.clone())
            } else {
                d
            }
        })
        .collect()
}

/// Pods wanted when no Deployment has been observed yet.
pub fn default_wanted(queue: &RecallQueue) -> i32 {
    min_replicas(&queue.spec)
}

fn decide(w: &WorkerObservation) -> Vec<Decided> {
    let ready = if w.wanted == 0 {
        Decided::new(
            READY,
            false,
            "ScaledToZero",
            "replicas is 0: the queue runs no worker and is not routed",
        )
    } else if w.ready > 0 {
        Decided::new(
            READY,
            true,
            "WorkersReady",
            format!("{}/{} worker pods ready", w.ready, w.wanted),
        )
    } else {
        Decided::new(
            READY,
            false,
            "WorkersNotReady",
            format!(
                "no worker pod is ready (0/{}): see the pods' /readyz (bundle download, index connection)",
                w.wanted
            ),
        )
    };
    let progressing = if w.rollout_done() {
        Decided::new(
            PROGRESSING,
            false,
            "RolloutComplete",
            format!("{} worker pods run the latest spec", w.updated),
        )
    } else {
        Decided::new(
            PROGRESSING,
            true,
            "RollingOut",
            format!("{}/{} worker pods updated", w.updated, w.wanted),
        )
    };
    let degraded = if let Some(message) = &w.stuck {
        Decided::new(DEGRADED, true, "RolloutStuck", message.clone())
    } else if w.rollout_done() && w.ready < w.wanted {
        Decided::new(
            DEGRADED,
            true,
            "ReplicasUnavailable",
            format!("only {}/{} worker pods ready", w.ready, w.wanted),
        )
    } else {
        Decided::new(DEGRADED, false, "AsExpected", "")
    };
    vec![ready, progressing, degraded]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::{POPULAR, queue_spec};
    use crate::status::conditions::status_of;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::jiff::Timestamp;

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).expect("valid"))
    }

    fn queue() -> RecallQueue {
        let mut q = RecallQueue::new("pop", queue_spec(POPULAR));
        q.metadata.namespace = Some("recsys".into());
        q.metadata.generation = Some(4);
        q
    }

    fn deployment(replicas: i32, ready: i32, updated: i32, total: i32) -> Deployment {
        let mut d = Deployment {
            spec: DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                replicas: Some(total),
                ..Default::default()
            }),
            ..Default::default()
        };
        d.metadata.generation = Some(2);
        d
    }

    fn conditions(s: &RecallQueueStatus) -> [Option<&str>; 3] {
        [READY, PROGRESSING, DEGRADED].map(|t| status_of(&s.conditions, t))
    }

    #[test]
    fn fully_rolled_out_queue_is_ready_and_not_degraded() {
        let w = WorkerObservation::of(Some(&deployment(3, 3, 3, 3)), 1);
        let s = queue_status(&queue(), &w, None, &now());
        assert_eq!(conditions(&s), [Some("True"), Some("False"), Some("False")]);
        assert_eq!((s.ready_replicas, s.replicas), (3, 3));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.endpoint.as_deref(), Some("http://pop.recsys.svc:8080"));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(4))
        );
    }

    #[test]
    fn queue_without_a_deployment_yet_is_not_ready_and_progressing() {
        let q = queue();
        let w = WorkerObservation::of(None, default_wanted(&q));
        let s = queue_status(&q, &w, None, &now());
        assert_eq!(conditions(&s), [Some("False"), Some("True"), Some("False")]);
        assert_eq!(s.conditions[0].reason, "WorkersNotReady");
        assert_eq!(s.replicas, 3);
    }

    #[test]
    fn rolling_queue_with_one_old_pod_ready_stays_routable() {
        let w = WorkerObservation::of(Some(&deployment(3, 2, 1, 4)), 1);
        let s = queue_status(&queue(), &w, None, &now());
        assert_eq!(conditions(&s), [Some("True"), Some("True"), Some("False")]);
    }

    #[test]
    fn finished_rollout_with_missing_pods_is_degraded() {
        let w = WorkerObservation::of(Some(&deployment(3, 1, 3, 3)), 1);
        let s = queue_status(&queue(), &w, None, &now());
        assert_eq!(conditions(&s), [Some("True"), Some("False"), Some("True")]);
        assert_eq!(s.conditions[2].reason, "ReplicasUnavailable");
        assert_eq!(s.conditions[2].message, "only 1/3 worker pods ready");
    }

    #[test]
    fn stuck_rollout_is_degraded_with_the_deployment_message() {
        let mut d = deployment(3, 0, 1, 3);
        d.status.as_mut().expect("status").conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet pop-abc has timed out progressing.".into()),
            ..Default::default()
        }]);
        let s = queue_status(&queue(), &WorkerObservation::of(Some(&d), 1), None, &now());
        assert_eq!(s.conditions[2].reason, "RolloutStuck");
        assert!(s.conditions[2].message.contains("timed out"));
        assert_eq!(s.conditions[0].reason, "WorkersNotReady");
    }

    #[test]
    fn deployment_not_yet_seen_by_its_controller_is_progressing() {
        let mut d = deployment(3, 3, 3, 3);
        d.metadata.generation = Some(3);
        let s = queue_status(&queue(), &WorkerObservation::of(Some(&d), 1), None, &now());
        assert_eq!(status_of(&s.conditions, PROGRESSING), Some("True"));
    }

    #[test]
    fn scaled_to_zero_queue_is_not_ready() {
        let s = queue_status(
            &queue(),
            &WorkerObservation::of(Some(&deployment(0, 0, 0, 0)), 1),
            None,
            &now(),
        );
        assert_eq!(s.conditions[0].reason, "ScaledToZero");
    }

    #[test]
    fn invalid_spec_is_reported_as_degraded_with_the_message() {
        let s = queue_status(
            &queue(),
            &WorkerObservation::default(),
            Some("spec.bundle: missing"),
            &now(),
        );
        assert_eq!(conditions(&s), [Some("False"), Some("False"), Some("True")]);
        assert_eq!(s.conditions[2].message, "spec.bundle: missing");
    }

    #[test]
    fn pinned_bundle_version_is_reported() {
        let mut q = queue();
        q.spec.bundle.as_mut().expect("bundle").sha256 = Some("v-123".into());
        let s = queue_status(&q, &WorkerObservation::default(), None, &now());
        assert_eq!(s.bundle_version.as_deref(), Some("v-123"));
    }

    fn with_bundle(uri: &str, status: Option<RecallQueueStatus>) -> RecallQueue {
        let mut q = queue();
        q.spec.bundle.as_mut().expect("bundle").uri = uri.into();
        q.status = status;
        q
    }

    fn served(uri: &str) -> Option<ServedBundle> {
        Some(ServedBundle {
            uri: uri.into(),
            sha256: None,
        })
    }

    #[test]
    fn a_completed_rollout_records_the_serving_bundle_the_previous_one_and_when() {
        let done = WorkerObservation::of(Some(&deployment(3, 3, 3, 3)), 1);
        let v1 = queue_status(&with_bundle("s3://b/v1", None), &done, None, &now());
        let rollout = v1.bundle.clone().expect("rollout recorded");
        assert_eq!(rollout.serving, served("s3://b/v1"));
        assert_eq!(rollout.previous, None);
        assert_eq!(rollout.changed_at, Some(now()));

        // v2 while the Deployment controller has not caught up: v1 still serves.
        let mut rolling = deployment(3, 3, 3, 3);
        rolling.metadata.generation = Some(3);
        let rolling = WorkerObservation::of(Some(&rolling), 1);
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_600).expect("valid"));
        let s = queue_status(
            &with_bundle("s3://b/v2", Some(v1.clone())),
            &rolling,
            None,
            &later,
        );
        assert_eq!(s.bundle, v1.bundle);

        let s = queue_status(&with_bundle("s3://b/v2", Some(v1)), &done, None, &later);
        let rollout = s.bundle.expect("rollout");
        assert_eq!(rollout.serving, served("s3://b/v2"));
        assert_eq!(rollout.previous, served("s3://b/v1"));
        assert_eq!(rollout.changed_at, Some(later));
    }

    #[test]
    fn a_bundle_stuck_on_new_pods_leaves_the_old_one_serving_and_degrades_naming_both() {
        let done = WorkerObservation::of(Some(&deployment(3, 3, 3, 3)), 1);
        let v1 = queue_status(&with_bundle("s3://b/v1", None), &done, None, &now());
        // Two old pods still ready, the new one never passes /readyz.
        let mut d = deployment(3, 2, 1, 4);
        d.status.as_mut().expect("status").conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".into()),
            status: Some("False".into()),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet pop-v2 has timed out progressing.".into()),
            ..Default::default()
        }]);
        let q = with_bundle("s3://b/v2", Some(v1.clone()));
        let s = queue_status(&q, &WorkerObservation::of(Some(&d), 1), None, &now());
        assert_eq!(s.bundle, v1.bundle, "v1 still serves");
        assert_eq!(conditions(&s), [Some("True"), Some("True"), Some("True")]);
        let degraded = &s.conditions[2];
        assert_eq!(degraded.reason, "BundleNotReady");
        assert!(
            degraded
                .message
                .contains("bundle s3://b/v2 did not get ready")
                && degraded.message.contains("timed out progressing")
                && degraded.message.contains("s3://b/v1 keeps serving")
                && degraded
                    .message
                    .contains("setting spec.bundle.uri to s3://b/v1"),
            "{}",
            degraded.message
        );
    }
}
