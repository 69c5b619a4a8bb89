//! RecallGateway status from its Deployment and its routing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kan_api::crd::{RecallGateway, RecallGatewayStatus, condition_type::*};

use super::conditions::{Decided, merge};
use super::queue::WorkerObservation;
use crate::names::{gateway_workload_name, service_url};
use crate::routing::GatewayRouting;

/// The status of `gateway` given its pods, the routing the operator rendered and the hash of
/// the routing its ConfigMap actually holds (`served_hash`; `None` when there is none).
pub fn gateway_status(
    gateway: &RecallGateway,
    pods: &WorkerObservation,
    routing: &GatewayRouting,
    served_hash: Option<String>,
    now: &Time,
) -> RecallGatewayStatus {
    let existing = gateway.status.clone().unwrap_or_default();
    let generation = gateway.metadata.generation;
    let namespace = gateway.metadata.namespace.as_deref().unwrap_or("default");
    let name = gateway.metadata.name.as_deref().unwrap_or_default();
    let routed = routing.config.endpoints.len() as i32;

    let ready = if let Some(invalid) = &routing.invalid {
        Decided::new(
            READY,
            false,
            "RoutingRefused",
            format!(
                "routing not updated: kan gateway would refuse it ({invalid}); {}",
                match &served_hash {
                    Some(hash) => format!("the last good routing ({hash}) keeps serving"),
                    None => "no routing was ever written".to_string(),
                }
            ),
        )
    } else if served_hash.as_deref() != Some(routing.config.content_hash().as_str()) {
        Decided::new(
            READY,
            false,
            "RoutingNotApplied",
            "the routing ConfigMap does not hold the rendered routing",
        )
    } else if pods.ready == 0 {
        Decided::new(
            READY,
            false,
            "GatewayNotReady",
            format!("no gateway pod is ready (0/{})", pods.wanted),
        )
    } else if routed == 0 {
        Decided::new(
            READY,
            false,
            "NoQueueReady",
            "no referenced RecallQueue is Ready: every request would be empty",
        )
    } else {
        Decided::new(
            READY,
            true,
            "Routing",
            format!(
                "{routed} queues routed by {}/{} gateway pods",
                pods.ready, pods.wanted
            ),
        )
    };
    let unrouted: Vec<String> = routing
        .queues
        .iter()
        .filter(|q| !q.ready)
        .map(|q| q.reason.clone().unwrap_or_else(|| q.name.clone()))
        .chain(routing.refused.iter().map(|r| {
            format!(
                "RecallExperiment '{}' refused ({}), its last accepted version (if any) keeps serving",
                r.experiment, r.reason
            )
        }))
        .collect();
    let degraded = if unrouted.is_empty() {
        Decided::new(DEGRADED, false, "AsExpected", "")
    } else {
        Decided::new(
            DEGRADED,
            true,
            "QueuesNotRouted",
            format!("not routed: {}", unrouted.join("; ")),
        )
    };
    let progressing =
        if pods.observed_latest && pods.updated >= pods.wanted && pods.total == pods.updated {
            Decided::new(PROGRESSING, false, "RolloutComplete", "")
        } else {
            Decided::new(
                PROGRESSING,
                true,
                "RollingOut",
                format!("{}/{} gateway pods updated", pods.updated, pods.wanted),
            )
        };

    RecallGatewayStatus {
        observed_generation: generation,
        conditions: merge(
            &existing.conditions,
            vec![ready, progressing, degraded],
            generation,
            now,
        ),
        ready_replicas: pods.ready,
        endpoint: Some(service_url(&gateway_workload_name(name), namespace)),
        routing_hash: served_hash,
        ready_queues: routed,
        queues: routing.queues.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::gateway_spec;
    use crate::routing::{gateway_routing, tests::queue};
    use crate::status::conditions::status_of;
    use k8s_openapi::jiff::Timestamp;

    fn gateway() -> RecallGateway {
        let mut g = RecallGateway::new("feed", gateway_spec("queues: [{name: a}, {name: b}]\n"));
        g.metadata.namespace = Some("recsys".into());
        g.metadata.generation = Some(1);
        g
    }

    fn pods(ready: i32) -> WorkerObservation {
        WorkerObservation {
            wanted: 1,
            ready,
            updated: 1,
            total: 1,
            observed_latest: true,
            stuck: None,
        }
    }

    /// The hash of `routing` as its ConfigMap would hold it once written.
    fn served(routing: &GatewayRouting) -> Option<String> {
        Some(routing.config.content_hash())
    }

    fn now() -> Time {
        Time(Timestamp::from_second(1_700_000_000).expect("valid"))
    }

    #[test]
    fn gateway_with_pods_and_all_queues_ready_is_ready() {
        let g = gateway();
        let routing = gateway_routing(
            "feed",
            "recsys",
            &g.spec,
            &[queue("a", true), queue("b", true)],
            &[],
            None,
        );
        let s = gateway_status(&g, &pods(1), &routing, served(&routing), &now());
        assert_eq!(status_of(&s.conditions, READY), Some("True"));
        assert_eq!(status_of(&s.conditions, DEGRADED), Some("False"));
        assert_eq!(s.ready_queues, 2);
        assert_eq!(
            s.endpoint.as_deref(),
            Some("http://feed-gateway.recsys.svc:8080")
        );
        assert_eq!(s.routing_hash, Some(routing.config.content_hash()));
    }

    #[test]
    fn gateway_with_an_unready_queue_is_degraded_and_says_which() {
        let g = gateway();
        let routing = gateway_routing(
            "feed",
            "recsys",
            &g.spec,
            &[queue("a", true), queue("b", false)],
            &[],
            None,
        );
        let s = gateway_status(&g, &pods(1), &routing, served(&routing), &now());
        assert_eq!(status_of(&s.conditions, READY), Some("True"));
        let degraded = s
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .expect("degraded");
        assert_eq!(degraded.status, "True");
        assert_eq!(degraded.message, "not routed: RecallQueue 'b' is not Ready");
        assert_eq!(s.ready_queues, 1);
    }

    #[test]
    fn gateway_with_no_ready_queue_or_pod_is_not_ready() {
        let g = gateway();
        let none = gateway_routing("feed", "recsys", &g.spec, &[], &[], None);
        let s = gateway_status(&g, &pods(1), &none, served(&none), &now());
        assert_eq!(s.conditions[0].reason, "NoQueueReady");
        let some = gateway_routing("feed", "recsys", &g.spec, &[queue("a", true)], &[], None);
        let s = gateway_status(&g, &pods(0), &some, served(&some), &now());
        assert_eq!(s.conditions[0].reason, "GatewayNotReady");
    }
}
