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
    Component, Parent, ROUTING_CONFIG_KEY, WORKER_CONFIG_KEY, routing_config_map_name, short_hash,
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

/// The hash that rolls a queue's workers (the pod template's config-hash annotation): its
/// worker config without the fields that only scale it (`replicas`, `autoscaling`), so a
/// scaling edit patches the replica count or the HPA and never restarts a pod.
pub fn worker_config_hash(queue: &str, spec: &RecallQueueSpec) -> Result<String> {
    let restart_relevant = RecallQueueSpec {
        replicas: None,
        autoscaling: None,
        ..spec.clone()
    };
    let rendered = render_worker_config(queue, &restart_relevant)?;
    Ok(short_hash(rendered.as_bytes()))
}

/// The routing document of a gateway, as `kan gateway --config` reads it.
pub fn render_routing_config(routing: &RoutingConfig) -> Result<String> {
    to_yaml(ROUTING_CONFIG_KEY, routing)
}

/// The routing a routing ConfigMap holds, parsed as `kan gateway` parses it; `None` when it
/// holds none or one that does not parse.
pub fn served_routing(cm: &ConfigMap) -> Option<RoutingConfig> {
    let text = cm.data.as_ref()?.get(ROUTING_CONFIG_KEY)?;
    serde_saphyr::from_str(text).ok()
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
    fn scaling_fields_do_not_change_the_worker_config_hash_but_the_bundle_does() {
        let spec = queue_spec(DSSM);
        let hash = worker_config_hash("dssm-main", &spec).expect("hash");
        let mut scaled = spec.clone();
        scaled.autoscaling = None;
        scaled.replicas = Some(7);
        assert_eq!(
            worker_config_hash("dssm-main", &scaled).expect("hash"),
            hash
        );
        let mut autoscaled = spec.clone();
        if let Some(a) = autoscaled.autoscaling.as_mut() {
            a.max_replicas += 4;
        }
        assert_eq!(
            worker_config_hash("dssm-main", &autoscaled).expect("hash"),
            hash
        );
        let mut rebundled = spec;
        rebundled.bundle.as_mut().expect("bundle").uri = "s3://bundles/dssm/v2".into();
        assert_ne!(
            worker_config_hash("dssm-main", &rebundled).expect("hash"),
            hash
        );
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
