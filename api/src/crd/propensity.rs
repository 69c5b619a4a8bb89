//! The gateway's propensity stage: boost or filter merged candidates by how much the audience
//! the request's `context` describes over-engages with each item (a lift table `kan train`
//! writes into bundles of data with user attributes).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Context keys a propensity stage may read, one per dimension of the lift table:
/// `age_band` (`0-17`, `18-24`, `25-34`, `35-44`, `45-54`, `55+`; a plain age is banded),
/// `gender`, `occupation`, and `region` (the first digit of a US zip code, the national zip
/// zone `0`–`9`; a two-letter US state code is mapped to its zone).
pub const PROPENSITY_KEYS: [&str; 4] = ["age_band", "gender", "occupation", "region"];

/// Largest `boost` exponent.
pub const MAX_PROPENSITY_BOOST: f64 = 10.0;

/// Boost (and optionally filter) merged candidates by their lift for the request's audience.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PropensitySpec {
    /// A bundle directory holding `propensity.safetensors` (every bundle `kan train` writes from
    /// data with user attributes has one), read by the gateway when the config loads. A local
    /// path; `kan up` and `kan eval` resolve it against the YAML file's directory.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"\S"))]
    pub table: String,
    /// Request context keys used (`age_band`, `gender`, `occupation`, `region`); a request
    /// without any of them is left as merged. An item's lift is the product of its lifts for
    /// the keys the request carries.
    #[schemars(schema_with = "propensity_keys")]
    pub keys: Vec<String>,
    /// Each candidate's merge score is multiplied by `lift ^ boost`, then the list is re-sorted;
    /// 0 leaves the order alone.
    #[serde(default = "default_boost")]
    #[schemars(range(min = 0.0, max = MAX_PROPENSITY_BOOST))]
    pub boost: f64,
    /// Candidates whose lift is below this are dropped (fallback fill included); unset keeps
    /// every candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0), extend("exclusiveMinimum" = true))]
    pub min_lift: Option<f64>,
}

/// `keys`: 1 to all of [`PROPENSITY_KEYS`], each at most once.
fn propensity_keys(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": PROPENSITY_KEYS.len(),
        "items": {"type": "string", "enum": PROPENSITY_KEYS},
        "x-kubernetes-list-type": "set",
    })
}

fn default_boost() -> f64 {
    1.0
}
