//! ConfigMaps: a worker's `worker.yaml` and a gateway's `routing.yaml`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kan_api::crd::RecallQueueSpec;
use kan_api::routing::RoutingConfig;
use kan_api::worker_config::WorkerConfig;
use serde::Serialize;

use super::child_meta;
use crate::error::{Error, Result};
use crate::names::{
    Component, Parent, ROUTING_CONFIG_KEY, WORKER_CONFIG_KEY, routing_config_map_name,
    worker_config_map_name,
};

/// The worker config document of a queue, as `kan worker --config` reads it.
pub fn render_worker_config(queue: &str, spec: &RecallQueueSpec) -> Result<String> {
    to_yaml(
        WORKER_CONFIG_KEY,
        &WorkerConfig {
            name: queue.to_string(),
            spec: spec.clone(),
        },
    )
}

/// The routing document of a gateway, as `kan gateway --config` reads it.
pub fn render_routing_config(routing: &RoutingConfig) -> Result<String> {
    to_yaml(ROUTING_CONFIG_KEY, routing)
}

/// ConfigMap `<queue>-worker` holding the rendered worker config. The Secret holding a
/// Qdrant API key is referenced by the spec only; its value never lands here.
pub fn worker_config_map(parent: &Parent, rendered: &str) -> ConfigMap {
    config_map(
        parent,
        Component::Worker,
        worker_config_map_name(&parent.name),
        WORKER_CONFIG_KEY,
        rendered,
    )
}

/// ConfigMap `<gateway>-routing` holding the rendered routing config.
pub fn routing_config_map(parent: &Parent, rendered: &str) -> ConfigMap {
    config_map(
        parent,
        Component::Gateway,
        routing_config_map_name(&parent.name),
        ROUTING_CONFIG_KEY,
        rendered,
    )
}

fn config_map(
    parent: &Parent,
    component: Component,
    name: String,
    key: &str,
    value: &str,
) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(parent, component, name),
        data: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        ..ConfigMap::default()
    }
}

fn to_yaml<T: Serialize>(what: &str, value: &T) -> Result<String> {
    serde_saphyr::to_string(value).map_err(|e| Error::Render {
        what: what.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::children::fixtures::{DSSM, gateway_spec, parent, queue_spec};

    #[test]
    fn worker_config_map_round_trips_through_the_worker_config_parser() {
        let spec = queue_spec(DSSM);
        let rendered = render_worker_config("dssm-main", &spec).expect("renders");
        let cm = worker_config_map(&parent("RecallQueue", "dssm-main"), &rendered);

        assert_eq!(cm.metadata.name.as_deref(), Some("dssm-main-worker"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("recsys"));
        let owners = cm.metadata.owner_references.as_ref().expect("owned");
        assert_eq!(owners[0].kind, "RecallQueue");
        assert_eq!(owners[0].controller, Some(true));
        let data = cm.data.as_ref().expect("data");
        assert_eq!(data.keys().collect::<Vec<_>>(), ["worker.yaml"]);
        let parsed = kan_api::manifest::parse_worker_config(&data["worker.yaml"]).expect("parses");
        assert_eq!(
            parsed,
            WorkerConfig {
                name: "dssm-main".into(),
                spec
            }
        );
    }

    #[test]
    fn worker_config_map_references_the_secret_but_never_holds_a_key_value() {
        let rendered = render_worker_config("dssm-main", &queue_spec(DSSM)).expect("renders");
        assert!(rendered.contains("apiKeySecret"));
        assert!(rendered.contains("name: qdrant"));
        assert!(!rendered.to_lowercase().contains("qdrant_api_key"));
    }

    #[test]
    fn routing_config_map_round_trips() {
        let spec = gateway_spec("queues: [{name: a}, {name: b, weight: 2}]\nfallback: a\n");
        let mut routing = RoutingConfig::from_gateway_spec("feed", &spec);
        routing
            .endpoints
            .insert("a".into(), "http://a.recsys.svc:8080".into());
        let cm = routing_config_map(
            &parent("RecallGateway", "feed"),
            &render_routing_config(&routing).expect("renders"),
        );

        assert_eq!(cm.metadata.name.as_deref(), Some("feed-routing"));
        let text = &cm.data.as_ref().expect("data")["routing.yaml"];
        let back: RoutingConfig = serde_saphyr::from_str(text).expect("parses back");
        assert_eq!(back, routing);
    }
}
