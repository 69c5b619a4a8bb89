//! The gateway's routing config: everything a gateway needs to serve, in one document.
//!
//! The operator renders it into a ConfigMap from a RecallGateway, the Ready queues' Services and
//! every RecallExperiment targeting the gateway; `kan up` renders it in-process; people may also
//! write it by hand for `kan gateway --config`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::sha256_hex;
use crate::crd::{
    Arm, BucketRange, CircuitBreakerSpec, FilterSpec, MergeSpec, QueueRoute, RecallExperimentSpec,
    RecallGatewaySpec,
};

/// The routing document. Its fields carry the same schema rules as the RecallGateway's, so a
/// hand-written config is held to what the API server enforces on a gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingConfig {
    /// Name of the gateway (for metrics and logs).
    #[schemars(length(min = 1, max = 253))]
    pub gateway: String,
    /// Base URLs of the queues that may be called, by queue name. A queue referenced by a route
    /// but missing here is not ready: it is reported `skipped`, never called.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Default queue set.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub queues: Vec<QueueRoute>,
    #[serde(default)]
    pub merge: MergeSpec,
    #[serde(default)]
    pub filters: FilterSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub fallback: Option<String>,
    /// Overall deadline of a request in milliseconds.
    #[serde(default = "default_deadline_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub deadline_ms: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub exposure_log: Option<String>,
    /// Live experiments, applied layer by layer in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub experiments: Vec<ExperimentRoute>,
}

fn default_deadline_ms() -> i32 {
    crate::crd::DEFAULT_DEADLINE_MS
}

/// One experiment as the gateway applies it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentRoute {
    /// Experiment name, reported in `assignments`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 63))]
    pub layer: String,
    /// Hash salt of the layer.
    #[schemars(length(min = 1, max = 128))]
    pub salt: String,
    /// Buckets of the layer owned by the experiment.
    pub buckets: BucketRange,
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub arms: Vec<Arm>,
    #[serde(default)]
    pub paused: bool,
}

impl ExperimentRoute {
    pub fn from_spec(name: &str, spec: &RecallExperimentSpec) -> Self {
        Self {
            name: name.to_string(),
            layer: spec.layer.clone(),
            salt: spec.effective_salt().to_string(),
            buckets: spec.bucket_range(),
            arms: spec.arms.clone(),
            paused: spec.paused,
        }
    }
}

/// An experiment left out of a rendered routing config, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedExperiment {
    pub name: String,
    pub reason: String,
}

/// The result of [`RoutingConfig::render`].
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedRouting {
    pub config: RoutingConfig,
    /// Experiments not routed (conflicting with an earlier one in their layer).
    pub excluded: Vec<ExcludedExperiment>,
}

impl RoutingConfig {
    /// Renders the routing of a gateway: its spec, the endpoints of the queues that are Ready
    /// (`ready_endpoints`: name → base URL; queues missing there are never called), and the
    /// experiments that target it. Experiments are taken in the given order (callers pass them
    /// oldest first, so an established experiment keeps its users); one that conflicts with an
    /// experiment already taken in its layer is excluded with the conflict as the reason.
    /// Used by the operator and by `kan up`, so both route identically.
    pub fn render<'a>(
        gateway: &str,
        spec: &RecallGatewaySpec,
        ready_endpoints: &BTreeMap<String, String>,
        experiments: impl IntoIterator<Item = (&'a str, &'a RecallExperimentSpec)>,
    ) -> RenderedRouting {
        let mut config = Self::from_gateway_spec(gateway, spec);
        let mut excluded = Vec::new();
        for (name, exp) in experiments {
            if exp.gateway != gateway {
                continue;
            }
            let candidate = ExperimentRoute::from_spec(name, exp);
            let taken = config.experiments.iter().filter(|e| !e.paused);
            let conflict = if candidate.paused {
                None
            } else {
                crate::assignment::layer_conflicts(
                    taken
                        .map(|e| {
                            (
                                e.name.as_str(),
                                e.layer.as_str(),
                                e.salt.as_str(),
                                e.buckets,
                            )
                        })
                        .chain([(
                            name,
                            candidate.layer.as_str(),
                            candidate.salt.as_str(),
                            candidate.buckets,
                        )]),
                )
                .into_iter()
                .find(|c| c.experiments.1 == name)
            };
            match conflict {
                Some(c) => excluded.push(ExcludedExperiment {
                    name: name.to_string(),
                    reason: c.message,
                }),
                None => config.experiments.push(candidate),
            }
        }
        let referenced = config.referenced_queues();
        config.endpoints = ready_endpoints
            .iter()
            .filter(|(name, _)| referenced.contains(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        RenderedRouting { config, excluded }
    }

    /// The routing of a gateway spec, before endpoints and experiments are added.
    pub fn from_gateway_spec(name: &str, spec: &RecallGatewaySpec) -> Self {
        Self {
            gateway: name.to_string(),
            endpoints: BTreeMap::new(),
            queues: spec.queues.clone(),
            merge: spec.merge.clone(),
            filters: spec.filters.clone(),
            fallback: spec.fallback.clone(),
            deadline_ms: spec.deadline_ms,
            circuit_breaker: spec.circuit_breaker.clone(),
            exposure_log: spec.exposure_log.clone(),
            experiments: Vec::new(),
        }
    }

    /// Every queue name any route may call: default queues, arm queues and fallbacks.
    pub fn referenced_queues(&self) -> Vec<String> {
        let mut names: Vec<String> = self.queues.iter().map(|q| q.name.clone()).collect();
        names.extend(self.fallback.iter().cloned());
        for exp in &self.experiments {
            for arm in &exp.arms {
                names.extend(arm.queues.iter().flatten().map(|q| q.name.clone()));
                names.extend(arm.fallback.iter().cloned());
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Stable content hash (first 16 hex digits of sha256 over the canonical JSON).
    pub fn content_hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        sha256_hex(&json)[..16].to_string()
    }
}
