//! The routing config of a gateway: its spec, the endpoints of the queues that are Ready, and
//! its live experiments. A queue that is missing or not Ready has no endpoint, so the gateway
//! reports it `skipped` and never calls it.
//!
//! Everything rendered is checked with [`kan_api::validate::routing_config`], the function
//! `kan gateway` accepts a config with, so the operator never writes a config a gateway refuses:
//! an experiment the gateway would refuse keeps its previously served route (or none), and a
//! config that is still invalid is not written at all.

use kan_api::crd::{
    QueueReadiness, RecallExperiment, RecallExperimentSpec, RecallGatewaySpec, RecallQueue,
    is_ready,
};
use kan_api::routing::{ExperimentRoute, RoutingConfig};
use kan_api::validate;

use crate::allocation::Allocation;
use crate::names::service_url;

/// The routing config and the readiness of every queue it references.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayRouting {
    pub config: RoutingConfig,
    pub queues: Vec<QueueReadiness>,
    /// Live experiments the gateway would refuse; each keeps its previously served route, if
    /// any.
    pub refused: Vec<Refused>,
    /// Why the gateway would refuse `config` as a whole; such a config is never written.
    pub invalid: Option<String>,
}

/// An experiment left out of (or kept at its old version in) the routing, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub experiment: String,
    pub reason: String,
}

/// Why gateway `gateway` would refuse experiment `name` (its fields, with the gateway named),
/// or `None` when it accepts it. Gateway and experiment reconcilers both call this, so the
/// experiment's status and the routing agree.
pub fn experiment_refusal(
    gateway: &str,
    gateway_spec: &RecallGatewaySpec,
    name: &str,
    experiment: &RecallExperimentSpec,
) -> Option<String> {
    let mut config = RoutingConfig::from_gateway_spec(gateway, gateway_spec);
    config.experiments = vec![ExperimentRoute::from_spec(name, experiment)];
    let errors = validate::routing_config(&config).err()?;
    let own: Vec<String> = errors
        .0
        .iter()
        .filter_map(|e| {
            e.field
                .strip_prefix("experiments[0].")
                .map(|field| format!("spec.{field}: {}", e.message))
        })
        .collect();
    (!own.is_empty()).then(|| {
        format!(
            "RecallGateway '{gateway}' (deadlineMs {}) would refuse this experiment: {}",
            gateway_spec.deadline_ms,
            own.join("; ")
        )
    })
}

/// Why queue `queue` cannot be routed (missing from `queues`, the RecallQueues of `namespace`,
/// or not Ready), or `None` when it can.
pub fn queue_problem(queue: &str, namespace: &str, queues: &[RecallQueue]) -> Option<String> {
    let found = queues
        .iter()
        .find(|q| q.metadata.name.as_deref() == Some(queue));
    match found {
        None => Some(format!(
            "RecallQueue '{queue}' not found in namespace '{namespace}'"
        )),
        Some(q)
            if !is_ready(
                q.status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default(),
            ) =>
        {
            Some(format!("RecallQueue '{queue}' is not Ready"))
        }
        Some(_) => None,
    }
}

/// Renders the routing of gateway `name` in `namespace`. `queues` are the RecallQueues of the
/// namespace; `experiments` those targeting this gateway, with their allocations; `previous`
/// the routing the gateway serves now (from its ConfigMap), if any.
pub fn gateway_routing(
    name: &str,
    namespace: &str,
    spec: &RecallGatewaySpec,
    queues: &[RecallQueue],
    experiments: &[(&RecallExperiment, &Allocation)],
    previous: Option<&RoutingConfig>,
) -> GatewayRouting {
    let mut config = RoutingConfig::from_gateway_spec(name, spec);
    let mut refused = Vec::new();
    let mut live: Vec<ExperimentRoute> = Vec::new();
    for (e, _) in experiments.iter().filter(|(_, allocation)| allocation.live) {
        let experiment = e.metadata.name.as_deref().unwrap_or_default();
        match experiment_refusal(name, spec, experiment, &e.spec) {
            None => live.push(ExperimentRoute::from_spec(experiment, &e.spec)),
            Some(reason) => {
                // The last version the gateway accepted keeps serving its users.
                live.extend(
                    previous
                        .into_iter()
                        .flat_map(|p| &p.experiments)
                        .find(|route| route.name == experiment)
                        .cloned(),
                );
                refused.push(Refused {
                    experiment: experiment.to_string(),
                    reason,
                });
            }
        }
    }
    // Layers in a stable order; one experiment per user per layer.
    live.sort_by(|a, b| (&a.layer, &a.name).cmp(&(&b.layer, &b.name)));
    config.experiments = live;

    let readiness: Vec<QueueReadiness> = config
        .referenced_queues()
        .into_iter()
        .map(|queue| {
            let reason = queue_problem(&queue, namespace, queues);
            QueueReadiness {
                name: queue,
                ready: reason.is_none(),
                reason,
            }
        })
        .collect();
    for q in readiness.iter().filter(|q| q.ready) {
        config
            .endpoints
            .insert(q.name.clone(), service_url(&q.name, namespace));
    }
    let invalid = validate::routing_config(&config)
        .err()
        .map(|errors| errors.to_string());
    GatewayRouting {
        config,
        queues: readiness,
        refused,
        invalid,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::allocation::{allocate, tests::experiment};
    use crate::children::fixtures::gateway_spec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;
    use kan_api::crd::RecallQueueStatus;

    /// A popular queue in `recsys`, Ready or not.
    pub fn queue(name: &str, ready: bool) -> RecallQueue {
        let spec =
            serde_saphyr::from_str("strategy: {type: popular}\nbundle: {uri: /b}\n").expect("spec");
        let mut q = RecallQueue::new(name, spec);
        q.metadata.namespace = Some("recsys".into());
        q.status = Some(RecallQueueStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                reason: "Test".into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        });
        q
    }

    const FEED: &str = "queues: [{name: dssm}, {name: itemcf, weight: 2}]\nfallback: popular\n";

    #[test]
    fn only_ready_queues_get_endpoints() {
        let queues = [queue("dssm", true), queue("itemcf", false)];
        let r = gateway_routing("feed", "recsys", &gateway_spec(FEED), &queues, &[], None);
        assert_eq!(
            r.config.endpoints.into_iter().collect::<Vec<_>>(),
            [(
                "dssm".to_string(),
                "http://dssm.recsys.svc:8080".to_string()
            )]
        );
        let status: Vec<(&str, bool, Option<&str>)> = r
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q.ready, q.reason.as_deref()))
            .collect();
        assert_eq!(
            status,
            [
                ("dssm", true, None),
                ("itemcf", false, Some("RecallQueue 'itemcf' is not Ready")),
                (
                    "popular",
                    false,
                    Some("RecallQueue 'popular' not found in namespace 'recsys'")
                ),
            ]
        );
        assert_eq!(
            r.config.queues.len(),
            2,
            "routes stay; only endpoints are withheld"
        );
    }

    #[test]
    fn live_experiments_are_routed_with_their_arm_queues_and_conflicting_ones_are_not() {
        let mut a = experiment("a", "recall", 0, 50, 1);
        a.spec.arms[1].queues = Some(vec![kan_api::crd::QueueRoute::named("gat")]);
        let b = experiment("b", "recall", 4000, 20, 2);
        let allocations = allocate(&[&a, &b]);
        let pairs = [(&a, &allocations["a"]), (&b, &allocations["b"])];
        let queues = [
            queue("dssm", true),
            queue("itemcf", true),
            queue("gat", true),
            queue("popular", true),
        ];
        let r = gateway_routing("feed", "recsys", &gateway_spec(FEED), &queues, &pairs, None);
        assert_eq!(r.config.experiments.len(), 1);
        assert_eq!(
            r.config.experiments[0],
            ExperimentRoute::from_spec("a", &a.spec)
        );
        assert!(
            r.config.endpoints.contains_key("gat"),
            "arm queues are resolved too"
        );
        assert!(r.queues.iter().all(|q| q.ready));
    }

    #[test]
    fn an_arm_queue_slower_than_the_gateway_deadline_is_refused_naming_the_field_and_the_gateway() {
        let mut e = experiment("slow", "recall", 0, 10, 1);
        e.spec.arms[1].queues = Some(vec![kan_api::crd::QueueRoute {
            timeout_ms: Some(150),
            ..kan_api::crd::QueueRoute::named("gat")
        }]);
        let refusal =
            experiment_refusal("feed", &gateway_spec(FEED), "slow", &e.spec).expect("refused");
        assert!(
            refusal.starts_with("RecallGateway 'feed' (deadlineMs 100) would refuse"),
            "{refusal}"
        );
        assert!(
            refusal.contains("spec.arms[1].queues[0].timeoutMs"),
            "{refusal}"
        );
        let ok = experiment("fine", "recall", 0, 10, 1);
        assert_eq!(
            experiment_refusal("feed", &gateway_spec(FEED), "fine", &ok.spec),
            None
        );
    }

    #[test]
    fn a_refused_experiment_keeps_its_previously_served_route_and_the_config_stays_valid() {
        let good = experiment("exp", "recall", 0, 10, 1);
        let allocations = allocate(&[&good]);
        let queues = [
            queue("dssm", true),
            queue("itemcf", true),
            queue("popular", true),
        ];
        let served = gateway_routing(
            "feed",
            "recsys",
            &gateway_spec(FEED),
            &queues,
            &[(&good, &allocations["exp"])],
            None,
        );
        let mut edited = good.clone();
        edited.spec.arms[0].merge = Some(kan_api::crd::MergeSpec {
            policy: kan_api::crd::MergePolicy::Quota,
            ..Default::default()
        });
        edited.spec.arms[0].queues = Some(vec![kan_api::crd::QueueRoute::named("dssm")]);
        let r = gateway_routing(
            "feed",
            "recsys",
            &gateway_spec(FEED),
            &queues,
            &[(&edited, &allocations["exp"])],
            Some(&served.config),
        );
        assert_eq!(r.config.experiments, served.config.experiments);
        assert_eq!(r.refused.len(), 1);
        assert!(
            r.refused[0].reason.contains("spec.arms[0].queues[0].quota"),
            "{:?}",
            r.refused
        );
        assert_eq!(r.invalid, None);
        // Without a previous routing, it is simply not routed.
        let fresh = gateway_routing(
            "feed",
            "recsys",
            &gateway_spec(FEED),
            &queues,
            &[(&edited, &allocations["exp"])],
            None,
        );
        assert!(fresh.config.experiments.is_empty());
    }

    #[test]
    fn a_gateway_spec_the_gateway_would_refuse_is_flagged_invalid() {
        let spec = gateway_spec("queues: [{name: dssm}]\nmerge: {policy: quota}\n");
        let r = gateway_routing("feed", "recsys", &spec, &[queue("dssm", true)], &[], None);
        let invalid = r.invalid.expect("invalid");
        assert!(invalid.contains("queues[0].quota"), "{invalid}");
    }

    #[test]
    fn weight_edit_changes_the_routing_hash() {
        let queues = [
            queue("dssm", true),
            queue("itemcf", true),
            queue("popular", true),
        ];
        let before = gateway_routing("feed", "recsys", &gateway_spec(FEED), &queues, &[], None);
        let edited =
            gateway_spec("queues: [{name: dssm}, {name: itemcf, weight: 3}]\nfallback: popular\n");
        let after = gateway_routing("feed", "recsys", &edited, &queues, &[], None);
        assert_ne!(before.config.content_hash(), after.config.content_hash());
        assert_eq!(after.config.queues[1].weight, 3.0);
    }
}
