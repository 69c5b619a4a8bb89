//! Names, labels, ports and paths shared by the builders, the reconcilers and the chart.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

use crate::error::{Error, Result};

/// The one server-side-apply field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "kan-operator";
/// Field manager that holds a queue's replica count while its HPA takes over (see
/// [`crate::children::deployment::replicas_to_hand_over`]).
pub const REPLICAS_HANDOVER_MANAGER: &str = "kan-operator-handover";
/// Port of the recall API, `/healthz` and `/readyz` in worker and gateway pods.
pub const HTTP_PORT: i32 = 8080;
/// Port of the second `/metrics` listener in worker and gateway pods.
pub const METRICS_PORT: i32 = 9090;
/// Where the rendered config is mounted (a whole directory, so ConfigMap updates propagate).
pub const CONFIG_DIR: &str = "/etc/kan";
/// ConfigMap key of a worker's config.
pub const WORKER_CONFIG_KEY: &str = "worker.yaml";
/// ConfigMap key of a gateway's routing config.
pub const ROUTING_CONFIG_KEY: &str = "routing.yaml";
/// Writable directory for downloaded bundles (the root filesystem is read-only).
pub const BUNDLE_CACHE_DIR: &str = "/var/cache/kan";
/// Pod-template annotation holding the hash of the rendered worker config: a change rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "kan.dev/config-hash";
/// Annotation on every child holding the hash of what the operator last applied; a child
/// whose annotation matches the desired object needs no write.
pub const APPLIED_HASH_ANNOTATION: &str = "kan.dev/applied-hash";
/// Environment variable carrying the Qdrant API key (from a Secret, never copied).
pub const QDRANT_API_KEY_ENV: &str = "QDRANT_API_KEY";
/// Label every child carries, used to narrow the operator's watches.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kan-operator";

/// Which role a child belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Worker,
    Gateway,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Worker => "worker",
            Component::Gateway => "gateway",
        }
    }
}

/// ConfigMap of a queue's worker config.
pub fn worker_config_map_name(queue: &str) -> String {
    format!("{queue}-worker")
}

/// ConfigMap of a gateway's routing config.
pub fn routing_config_map_name(gateway: &str) -> String {
    format!("{gateway}-routing")
}

/// Deployment and Service of a gateway. Suffixed so a gateway and a queue may share a name
/// (a queue's Service is named after the queue: that name is its endpoint).
pub fn gateway_workload_name(gateway: &str) -> String {
    format!("{gateway}-gateway")
}

/// In-cluster base URL of a Service on the HTTP port.
pub fn service_url(service: &str, namespace: &str) -> String {
    format!("http://{service}.{namespace}.svc:{HTTP_PORT}")
}

/// Labels that select a component's pods. Never change these: Deployment selectors are immutable.
pub fn selector_labels(component: Component, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            format!("kan-{}", component.as_str()),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            instance.to_string(),
        ),
    ])
}

/// Labels of every child object of a component.
pub fn labels(component: Component, instance: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(component, instance);
    labels.insert(
        "app.kubernetes.io/component".to_string(),
        component.as_str().to_string(),
    );
    labels.insert("app.kubernetes.io/part-of".to_string(), "kan".to_string());
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels
}

/// The identity of a parent custom resource, as its children need it.
#[derive(Clone, Debug, PartialEq)]
pub struct Parent {
    pub name: String,
    pub namespace: String,
    /// Controller owner reference: children are garbage-collected with the parent.
    pub owner: OwnerReference,
}

impl Parent {
    /// Reads name, namespace and uid; all three are set on objects read from the API server.
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Result<Self> {
        let kind = match K::kind(&()).as_ref() {
            "RecallQueue" => "RecallQueue",
            "RecallGateway" => "RecallGateway",
            "RecallExperiment" => "RecallExperiment",
            _ => "object",
        };
        let meta = obj.meta();
        let name = meta.name.clone().ok_or(Error::MissingMetadata {
            kind,
            field: "name",
        })?;
        let namespace = meta.namespace.clone().ok_or(Error::MissingMetadata {
            kind,
            field: "namespace",
        })?;
        let mut owner = obj
            .controller_owner_ref(&())
            .ok_or(Error::MissingMetadata { kind, field: "uid" })?;
        // Foreground deletion of the parent waits for its children.
        owner.block_owner_deletion = Some(true);
        Ok(Self {
            name,
            namespace,
            owner,
        })
    }
}

/// First 16 hex digits of the sha256 of `bytes`: short enough for annotations, long enough to
/// never collide between two versions of one object.
pub fn short_hash(bytes: &[u8]) -> String {
    kan_api::bundle::sha256_hex(bytes)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::crd::{RecallQueue, RecallQueueSpec};

    fn spec() -> RecallQueueSpec {
        serde_json::from_value(
            serde_json::json!({"strategy": {"type": "popular"}, "bundle": {"uri": "/b"}}),
        )
        .expect("valid spec")
    }

    #[test]
    fn parent_carries_a_controller_owner_reference() {
        let mut q = RecallQueue::new("pop", spec());
        q.metadata.namespace = Some("ns".into());
        q.metadata.uid = Some("uid-1".into());
        let p = Parent::of(&q).expect("complete metadata");
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("pop", "ns"));
        assert_eq!(p.owner.kind, "RecallQueue");
        assert_eq!(p.owner.api_version, "kan.dev/v1alpha1");
        assert_eq!(p.owner.uid, "uid-1");
        assert_eq!(p.owner.controller, Some(true));
        assert_eq!(p.owner.block_owner_deletion, Some(true));
    }

    #[test]
    fn parent_without_uid_is_a_clear_error() {
        let mut q = RecallQueue::new("pop", spec());
        q.metadata.namespace = Some("ns".into());
        let err = Parent::of(&q).expect_err("uid missing");
        assert!(
            err.to_string()
                .contains("RecallQueue object is missing metadata.uid"),
            "{err}"
        );
    }

    #[test]
    fn selector_labels_are_a_subset_of_labels() {
        let all = labels(Component::Worker, "pop");
        for (k, v) in selector_labels(Component::Worker, "pop") {
            assert_eq!(all.get(&k), Some(&v));
        }
        assert_eq!(
            all.get(MANAGED_BY_LABEL).map(String::as_str),
            Some(MANAGED_BY)
        );
        assert_ne!(
            selector_labels(Component::Worker, "x"),
            selector_labels(Component::Gateway, "x")
        );
    }
}
