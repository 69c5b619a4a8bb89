use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default reciprocal-rank-fusion constant (Cormack et al., 2009).
pub const DEFAULT_RRF_K: f64 = 60.0;
/// Default overall deadline of a gateway request.
pub const DEFAULT_DEADLINE_MS: i32 = 100;
/// Default number of merged candidates returned.
pub const DEFAULT_TOTAL: i32 = 500;

/// The merging gateway: fans a request out to queues, merges, de-duplicates and filters.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kan.dev",
    version = "v1alpha1",
    kind = "RecallGateway",
    namespaced,
    status = "RecallGatewayStatus",
    shortname = "rgw",
    category = "kan",
    cel,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Queues","type":"integer","jsonPath":".status.readyQueues"}"#,
    printcolumn = r#"{"name":"Merge","type":"string","jsonPath":".spec.merge.policy"}"#,
    printcolumn = r#"{"name":"Routing","type":"string","jsonPath":".status.routingHash","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.merge.policy != 'quota' || self.queues.all(q, has(q.quota))").message("merge policy quota needs a quota on every queue"))]
#[x_kube(validation = Rule::new("self.queues.all(q, !has(q.timeoutMs) || q.timeoutMs <= self.deadlineMs)").message("a queue's timeoutMs must not exceed the gateway's deadlineMs"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecallGatewaySpec {
    /// Queues every request fans out to (experiment arms may override this set).
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub queues: Vec<QueueRoute>,
    /// How queue results are merged.
    #[serde(default)]
    pub merge: MergeSpec,
    /// Filters applied after merging.
    #[serde(default)]
    pub filters: FilterSpec,
    /// Queue that fills the list when fewer than `k` candidates survive (usually popular).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub fallback: Option<String>,
    /// Overall deadline of one request, in milliseconds; queues still running are cut off.
    #[serde(default = "default_deadline_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub deadline_ms: i32,
    /// Stop calling a queue that keeps failing, and probe it back later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerSpec>,
    /// Write one JSON line per response (user, assignments, items) to this path for A/B analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub exposure_log: Option<String>,
    /// Gateway pods.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU and memory requests and limits of the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Container image of the gateway; the operator's default image when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub image: Option<String>,
    /// The online signal store `POST /v1/events` writes to (the one the queues' `signals`
    /// name); without it the gateway serves no `/v1/events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<super::SignalsSpec>,
}

fn one() -> i32 {
    1
}
fn default_deadline_ms() -> i32 {
    DEFAULT_DEADLINE_MS
}

/// One queue as the gateway calls it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueRoute {
    /// Name of the RecallQueue (in the gateway's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Candidates asked of this queue; most taken from it under the `quota` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub quota: Option<i32>,
    /// Weight of this queue in the merge (rrf, weighted-interleave, score).
    #[serde(default = "default_weight")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub weight: f64,
    /// Time budget of a call to this queue; the gateway deadline when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub timeout_ms: Option<i32>,
    /// When true a failure of this queue fails the request with 503 instead of degrading it.
    #[serde(default)]
    pub required: bool,
    /// Send a second (hedged) request when the first has not answered after this many ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub hedge_after_ms: Option<i32>,
}

fn default_weight() -> f64 {
    1.0
}

impl QueueRoute {
    /// A route with default settings, handy in tests and for fallback queues.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            quota: None,
            weight: 1.0,
            timeout_ms: None,
            required: false,
            hedge_after_ms: None,
        }
    }
}

/// Merge policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MergePolicy {
    /// Reciprocal rank fusion: sum over queues of weight / (rrfK + rank).
    Rrf,
    /// Round-robin over queues, each queue taking turns in proportion to its weight.
    WeightedInterleave,
    /// Each queue contributes up to its quota, in queue order; the rest is filled by rank.
    Quota,
    /// Scores normalised per queue (min-max), then summed with queue weights.
    Score,
}

impl MergePolicy {
    pub const ALL: [MergePolicy; 4] = [
        MergePolicy::Rrf,
        MergePolicy::WeightedInterleave,
        MergePolicy::Quota,
        MergePolicy::Score,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MergePolicy::Rrf => "rrf",
            MergePolicy::WeightedInterleave => "weighted-interleave",
            MergePolicy::Quota => "quota",
            MergePolicy::Score => "score",
        }
    }
}

impl std::str::FromStr for MergePolicy {
    type Err = String;

    /// A policy by its spec name (`rrf`, `weighted-interleave`, `quota`, `score`).
    fn from_str(s: &str) -> Result<Self, String> {
        MergePolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = MergePolicy::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown merge policy `{s}`: use {}", names.join(", "))
            })
    }
}

/// How the gateway merges queue results.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeSpec {
    /// rrf, weighted-interleave, quota or score.
    #[serde(default = "default_policy")]
    pub policy: MergePolicy,
    /// Candidates returned when the request does not set `k`.
    #[serde(default = "default_total")]
    #[schemars(range(min = 1, max = 10000))]
    pub total: i32,
    /// The rank constant of rrf; larger values flatten the advantage of top ranks.
    #[serde(default = "default_rrf_k")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub rrf_k: f64,
}

fn default_policy() -> MergePolicy {
    MergePolicy::Rrf
}
fn default_total() -> i32 {
    DEFAULT_TOTAL
}
fn default_rrf_k() -> f64 {
    DEFAULT_RRF_K
}

impl Default for MergeSpec {
    fn default() -> Self {
        Self {
            policy: default_policy(),
            total: default_total(),
            rrf_k: default_rrf_k(),
        }
    }
}

/// Filters applied to the merged list.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterSpec {
    /// Item ids never returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100000))]
    pub blocklist: Vec<String>,
    /// Most candidates credited to any one queue in a response (by its first source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_per_source: Option<i32>,
    /// Boost or filter candidates by the request context's audience (age band, region, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<super::PropensitySpec>,
}

/// Circuit breaker settings, per queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerSpec {
    /// Consecutive failures that open the circuit.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 10000))]
    pub failure_threshold: i32,
    /// How long an open circuit stays open before one probe request is let through.
    #[serde(default = "default_open_ms")]
    #[schemars(range(min = 1, max = 3600000))]
    pub open_ms: i32,
}

fn default_failure_threshold() -> i32 {
    5
}
fn default_open_ms() -> i32 {
    5000
}

impl Default for CircuitBreakerSpec {
    fn default() -> Self {
        Self {
            failure_threshold: default_failure_threshold(),
            open_ms: default_open_ms(),
        }
    }
}

/// Gateway status, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecallGatewayStatus {
    /// The `metadata.generation` the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded conditions with reasons and messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Gateway pods that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// In-cluster URL of the gateway's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Content hash of the routing config the gateway pods load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_hash: Option<String>,
    /// Queues currently routed (Ready).
    #[serde(default)]
    pub ready_queues: i32,
    /// Readiness of every queue the gateway or its experiments reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueReadiness>,
}

/// Whether one referenced queue is routed, and why not.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueReadiness {
    /// Queue name.
    pub name: String,
    /// True when the queue is Ready and routed.
    pub ready: bool,
    /// Why the queue is not routed (missing, not ready...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
