//! Metric names, recorded through the `metrics` facade; the binary installs the recorder. Every
//! name the operator records is defined here, once (docs/operator.md and docs/events.md list
//! them).

/// Reconciles run, by kind.
pub const RECONCILIATIONS: &str = "kan_operator_reconciliations_total";
/// Time of one reconcile in seconds, by kind.
pub const RECONCILE_SECONDS: &str = "kan_operator_reconcile_duration_seconds";
/// Failed reconciles, by kind and error (a stable label such as `kube_conflict` or `render`).
pub const RECONCILE_ERRORS: &str = "kan_operator_reconcile_errors_total";
/// Errors of a controller's watch (the API server refused or dropped it).
pub const WATCH_ERRORS: &str = "kan_operator_watch_errors_total";
/// Objects skipped because this operator version cannot decode them, by kind.
pub const UNDECODABLE: &str = "kan_operator_undecodable_objects_total";
/// Polls of the gateway pods' A/B readout, by outcome (`read`, `failed`).
pub const READOUT_POLLS: &str = "kan_operator_readout_polls_total";
