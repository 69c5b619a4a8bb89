use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types written by the operator on every Kan resource.
pub mod condition_type {
    /// The object serves traffic (queue pods ready, gateway routing, experiment live).
    pub const READY: &str = "Ready";
    /// A rollout or reconfiguration is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// The object works with reduced capacity or with a conflict the user should fix.
    pub const DEGRADED: &str = "Degraded";
    /// An experiment's `status.readout` is what its gateway answered at the last poll.
    pub const READOUT_CURRENT: &str = "ReadoutCurrent";
}

/// A reference to one key of a Secret in the object's namespace. Kan only references secrets;
/// it never copies their values into ConfigMaps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret whose value is used.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A reference to a whole Secret in the object's namespace (all its keys become environment
/// variables of the pod that uses it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Finds a condition by type.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the `Ready` condition is present with status `True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find_condition(conditions, condition_type::READY).is_some_and(|c| c.status == "True")
}
