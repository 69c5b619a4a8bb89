use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MergeSpec, QueueRoute};
use crate::assignment::BUCKETS;

/// An A/B experiment on a gateway: a share of the users of one layer is split between arms,
/// each arm overriding the gateway's queues and merge settings.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kan.dev",
    version = "v1alpha1",
    kind = "RecallExperiment",
    namespaced,
    status = "RecallExperimentStatus",
    shortname = "rexp",
    category = "kan",
    cel,
    printcolumn = r#"{"name":"Gateway","type":"string","jsonPath":".spec.gateway"}"#,
    printcolumn = r#"{"name":"Layer","type":"string","jsonPath":".spec.layer"}"#,
    printcolumn = r#"{"name":"Traffic","type":"integer","jsonPath":".spec.traffic"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Readout","type":"string","jsonPath":".status.readout.summary"}"#,
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".spec.paused","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.arms.map(a, a.weight).sum() == 100").message("arm weights must sum to 100"))]
#[x_kube(validation = Rule::new("self.bucketStart + self.traffic * 100 <= 10000").message("bucketStart + traffic * 100 must not exceed 10000 buckets: lower traffic or bucketStart"))]
#[x_kube(validation = Rule::new("self.arms.all(a, !has(a.merge) || a.merge.policy != 'quota' || !has(a.queues) || a.queues.all(q, has(q.quota)))").message("an arm with merge policy quota needs a quota on every queue of the arm"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecallExperimentSpec {
    /// Name of the RecallGateway this experiment splits traffic on.
    #[schemars(length(min = 1, max = 253))]
    pub gateway: String,
    /// Layer of the experiment. Experiments in one layer get disjoint users; layers are
    /// independent of each other (a user is in at most one experiment per layer).
    #[serde(default = "default_layer")]
    #[schemars(length(min = 1, max = 63))]
    pub layer: String,
    /// Hash salt of the layer; defaults to the layer name. Every experiment of a layer must use
    /// the same salt, or their users would overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub salt: Option<String>,
    /// Percent of the layer's users in this experiment (each percent is 100 of 10000 buckets).
    #[schemars(range(min = 0, max = 100))]
    pub traffic: i32,
    /// First bucket (0-9999) of the experiment's range in its layer; give experiments of one
    /// layer non-overlapping ranges.
    #[serde(default)]
    #[schemars(range(min = 0, max = 9999))]
    pub bucket_start: i32,
    /// The arms; their weights split the experiment's buckets and sum to 100.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub arms: Vec<Arm>,
    /// A paused experiment assigns nobody: its users get the gateway's default configuration.
    #[serde(default)]
    pub paused: bool,
}

fn default_layer() -> String {
    "recall".to_string()
}

/// One arm of an experiment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arm {
    /// Arm name, reported in responses and metrics (e.g. `control`, `treatment`).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Share of the experiment's users, in percent.
    #[schemars(range(min = 0, max = 100))]
    pub weight: i32,
    /// Queue set of this arm, replacing the gateway's; the gateway's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub queues: Option<Vec<QueueRoute>>,
    /// Merge settings of this arm, replacing the gateway's; the gateway's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeSpec>,
    /// Fallback queue of this arm, replacing the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub fallback: Option<String>,
}

impl RecallExperimentSpec {
    /// The salt actually hashed: `salt`, or the layer name.
    pub fn effective_salt(&self) -> &str {
        self.salt.as_deref().unwrap_or(&self.layer)
    }

    /// The experiment's bucket range `[start, end)` in its layer.
    pub fn bucket_range(&self) -> BucketRange {
        let start = self.bucket_start.clamp(0, BUCKETS as i32);
        let end = (start + self.traffic.clamp(0, 100) * (BUCKETS as i32 / 100)).min(BUCKETS as i32);
        BucketRange { start, end }
    }
}

/// A half-open range of buckets `[start, end)`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketRange {
    /// First bucket in the range.
    #[schemars(range(min = 0, max = BUCKETS))]
    pub start: i32,
    /// One past the last bucket in the range.
    #[schemars(range(min = 0, max = BUCKETS))]
    pub end: i32,
}

impl BucketRange {
    pub fn contains(&self, bucket: u32) -> bool {
        (self.start as i64) <= bucket as i64 && (bucket as i64) < self.end as i64
    }
    pub fn len(&self) -> i32 {
        (self.end - self.start).max(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn overlaps(&self, other: &BucketRange) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The buckets of one arm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmBuckets {
    /// Arm name.
    pub arm: String,
    /// The arm's buckets.
    pub range: BucketRange,
}

/// Experiment status, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecallExperimentStatus {
    /// The `metadata.generation` the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded conditions with reasons and messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The experiment's bucket range in its layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<BucketRange>,
    /// How the range is split between arms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arm_buckets: Vec<ArmBuckets>,
    /// Experiments of the same layer whose buckets overlap this one's (or whose salt differs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// When the experiment first went live (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The online A/B readout, polled from the gateway pods (see the `ReadoutCurrent`
    /// condition for whether it is current).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readout: Option<super::ExperimentReadout>,
}
