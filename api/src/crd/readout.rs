//! The online A/B readout as the operator writes it into `RecallExperiment.status.readout`:
//! read from the gateway pods that serve the experiment (`GET /v1/experiments/readout`),
//! summed over pods, bounded to the arms of the spec.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most arms a readout holds (the spec allows no more).
pub const MAX_READOUT_ARMS: usize = 16;

/// The readout of one experiment: each arm's engagement rate and each arm against the baseline.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentReadout {
    /// When the gateway returned these figures (RFC 3339). Unchanged figures are not rewritten:
    /// while the `ReadoutCurrent` condition is True they are current as of the last poll.
    pub readout_at: String,
    /// An exposure counts as engaged when its user engaged with one of its items within this
    /// many milliseconds after it.
    pub window_ms: i64,
    /// One line per arm of the spec that has exposures, in name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub arms: Vec<ArmOutcome>,
    /// Each arm against the baseline (the arm named `control`, else the first by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub differences: Vec<ArmLift>,
    /// One line for `kubectl get`: the first arms against the baseline, in percentage points
    /// with their 95% intervals.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 256))]
    pub summary: String,
}

/// One arm's exposures and engagements (signed counts, as the Kubernetes API conventions ask).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmOutcome {
    /// Arm name.
    pub name: String,
    /// Responses served to users of the arm.
    pub exposures: i64,
    /// Exposures followed, within the window, by an engagement on one of their items.
    pub engaged: i64,
    /// `engaged / exposures`, rounded to 4 decimals.
    pub rate: f64,
    /// Lower end of the rate's 95% Wilson interval.
    pub low: f64,
    /// Upper end of the rate's 95% Wilson interval.
    pub high: f64,
}

/// One arm's rate minus the baseline's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArmLift {
    /// Arm name.
    pub arm: String,
    /// The arm it is compared with.
    pub baseline: String,
    /// `rate(arm) - rate(baseline)`, rounded to 4 decimals.
    pub difference: f64,
    /// Lower end of the difference's 95% interval (Newcombe's hybrid score method).
    pub low: f64,
    /// Upper end of the difference's 95% interval; an interval that excludes zero says the
    /// arms differ at the 5% level.
    pub high: f64,
}
