//! The three custom resources (group `kan.dev`, version `v1alpha1`) and the pieces they share.
//!
//! Doc comments on every field become `kubectl explain` text. Per-field bounds are schema
//! attributes (`#[schemars(range(...))]`, `length(...)`), which [`crate::validate::schema`]
//! reads back from the generated schema for code paths without an API server (`kan up`, config
//! files); never restate one elsewhere. Cross-field rules are CEL `x-kubernetes-validations` so
//! the API server rejects bad specs with a message, mirrored by hand in [`crate::validate`].

mod common;
mod experiment;
mod gateway;
mod propensity;
mod queue;
mod readout;

pub use common::*;
pub use experiment::*;
pub use gateway::*;
pub use propensity::*;
pub use queue::*;
pub use readout::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// All CRDs Kan installs, in a stable order.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        RecallQueue::crd(),
        RecallGateway::crd(),
        RecallExperiment::crd(),
    ]
}

/// Error rendering CRDs as YAML.
#[derive(Debug, thiserror::Error)]
#[error("rendering CRD {name} as YAML: {message}")]
pub struct RenderError {
    pub name: String,
    pub message: String,
}

/// Each CRD as `(file name, YAML)`, e.g. `recallqueues.kan.dev.yaml`.
pub fn crd_files() -> Result<Vec<(String, String)>, RenderError> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let yaml = serde_saphyr::to_string(&crd).map_err(|e| RenderError {
                name: name.clone(),
                message: e.to_string(),
            })?;
            Ok((format!("{name}.yaml"), yaml))
        })
        .collect()
}

/// All CRDs as one multi-document YAML stream.
pub fn crds_yaml() -> Result<String, RenderError> {
    let docs: Vec<String> = crd_files()?.into_iter().map(|(_, yaml)| yaml).collect();
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect())
}
