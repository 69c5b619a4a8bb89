//! Desired state as pure functions: a parent's spec (plus what the operator observed) in,
//! Kubernetes objects out. One module per child kind; no client anywhere in here.

pub mod config_map;
pub mod deployment;
pub mod hpa;
pub mod pdb;
pub mod service;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names::{Component, Parent, labels};

/// Operator-wide settings the builders need.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildConfig {
    /// Image of worker and gateway pods when the spec does not name one.
    pub default_image: String,
    /// `imagePullPolicy` of worker and gateway containers; the cluster default when unset.
    pub image_pull_policy: Option<String>,
    /// OTLP endpoint passed to workers and gateways as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
}

impl Default for BuildConfig {
    fn default() -> Self {
        Self {
            default_image: format!("ghcr.io/kan-dev/kan:{}", env!("CARGO_PKG_VERSION")),
            image_pull_policy: None,
            otlp_endpoint: None,
        }
    }
}

/// Metadata of a child: its name, the parent's namespace, labels and the owner reference.
pub(crate) fn child_meta(parent: &Parent, component: Component, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(parent.namespace.clone()),
        labels: Some(labels(component, &parent.name)),
        owner_references: Some(vec![parent.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// `BTreeMap` from pairs, for terse annotations in builders.
pub(crate) fn string_map<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builders of test parents.
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kan_api::crd::{RecallGatewaySpec, RecallQueueSpec};

    use crate::names::Parent;

    pub fn parent(kind: &str, name: &str) -> Parent {
        Parent {
            name: name.to_string(),
            namespace: "recsys".to_string(),
            owner: OwnerReference {
                api_version: "kan.dev/v1alpha1".into(),
                kind: kind.into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        }
    }

    pub fn queue_spec(yaml: &str) -> RecallQueueSpec {
        serde_saphyr::from_str(yaml).expect("test queue spec parses")
    }

    pub fn gateway_spec(yaml: &str) -> RecallGatewaySpec {
        serde_saphyr::from_str(yaml).expect("test gateway spec parses")
    }

    /// A dssm queue on Qdrant with an API-key Secret, autoscaling and resources.
    pub const DSSM: &str = r#"
strategy: {type: dssm, dssm: {historyLength: 20}}
bundle: {uri: "s3://bundles/dssm/"}
index:
  type: qdrant
  qdrant:
    url: http://qdrant:6334
    collection: dssm
    apiKeySecret: {name: qdrant, key: api-key}
autoscaling: {minReplicas: 2, maxReplicas: 8, targetCpuUtilization: 60}
resources:
  requests: {cpu: 500m, memory: 512Mi}
  limits: {memory: 1Gi}
"#;

    /// A popular queue with three fixed replicas and an image of its own.
    pub const POPULAR: &str = r#"
strategy: {type: popular}
bundle: {uri: "file:///bundles/popular"}
replicas: 3
image: registry.local/kan:dev
"#;
}
