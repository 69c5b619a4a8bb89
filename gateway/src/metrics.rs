//! Metric names, recorded through the `metrics` facade; the binary installs the recorder.

/// Requests served, by outcome (`ok`, `degraded`, `invalid`, `unavailable`).
pub const REQUESTS: &str = "kan_gateway_requests_total";
/// Ingested events by outcome (stored, duplicate, invalid, unavailable).
pub const EVENTS: &str = "kan_gateway_events_total";
/// End-to-end request latency in seconds.
pub const REQUEST_SECONDS: &str = "kan_gateway_request_duration_seconds";
/// Responses with `degraded: true`.
pub const DEGRADED: &str = "kan_gateway_degraded_total";
/// Queue calls by queue and status (`ok`, `timeout`, `error`, `skipped`).
pub const QUEUE_CALLS: &str = "kan_gateway_queue_calls_total";
/// Latency of queue calls in seconds, by queue.
pub const QUEUE_SECONDS: &str = "kan_gateway_queue_duration_seconds";
/// Hedged second requests sent, by queue.
pub const HEDGES: &str = "kan_gateway_queue_hedges_total";
/// Circuit state per queue: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "kan_gateway_circuit_state";
/// Circuit transitions, by queue and the state entered (`open`, `half-open`, `closed`).
pub const CIRCUIT_TRANSITIONS: &str = "kan_gateway_circuit_transitions_total";
/// Queue calls not sent because the request's deadline was already spent (the gateway's own
/// delay, never counted against the queue), by queue.
pub const DEADLINE_SPENT: &str = "kan_gateway_deadline_spent_total";
/// Requests per experiment arm, by layer, experiment and arm.
pub const ARM_REQUESTS: &str = "kan_gateway_arm_requests_total";
/// Distinct candidates out of the merge, before filters.
pub const MERGE_SIZE: &str = "kan_gateway_merge_size";
/// Candidates removed, by filter.
pub const FILTERED: &str = "kan_gateway_filtered_total";
/// Candidates added by the fallback queue.
pub const FALLBACK_FILLED: &str = "kan_gateway_fallback_filled_total";
/// Config reloads by result (`ok`, `invalid`).
pub const RELOADS: &str = "kan_gateway_config_reloads_total";
/// 1 while the last routing config offered was refused (the previous one keeps serving), else 0.
pub const CONFIG_REJECTED: &str = "kan_gateway_config_rejected";
/// Exposure records dropped because the writer could not keep up.
pub const EXPOSURES_DROPPED: &str = "kan_gateway_exposures_dropped_total";

/// Registers descriptions, so `/metrics` explains each series.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(REQUESTS, "Gateway recall requests by outcome");
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "Gateway recall latency");
    describe_counter!(
        DEGRADED,
        "Responses where some queue failed, timed out or was skipped"
    );
    describe_counter!(QUEUE_CALLS, "Queue calls by queue and status");
    describe_histogram!(QUEUE_SECONDS, Unit::Seconds, "Queue call latency");
    describe_counter!(HEDGES, "Hedged second requests sent to slow queues");
    describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker state per queue: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        CIRCUIT_TRANSITIONS,
        "Circuit breaker transitions by queue and state entered"
    );
    describe_counter!(
        DEADLINE_SPENT,
        "Queue calls not sent because the request deadline was already spent"
    );
    describe_counter!(ARM_REQUESTS, "Requests per experiment arm");
    describe_histogram!(
        MERGE_SIZE,
        "Distinct candidates out of the merge, before filters"
    );
    describe_counter!(FILTERED, "Candidates removed by each filter");
    describe_counter!(FALLBACK_FILLED, "Candidates added by the fallback queue");
    describe_counter!(RELOADS, "Routing config reloads by result");
    describe_gauge!(
        CONFIG_REJECTED,
        "1 while the last routing config offered was refused and the previous one keeps serving"
    );
    describe_counter!(
        EXPOSURES_DROPPED,
        "Exposure records dropped because the log writer fell behind"
    );
}
