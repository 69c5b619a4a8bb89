//! Metric names, recorded through the `metrics` facade; the binary installs the recorder. Every
//! name the worker records is defined here, once.

/// Recall requests, by queue and status (`ok`, `error`).
pub const REQUESTS: &str = "kan_worker_requests_total";
/// Failed recall requests, by queue and error kind (the error's metric label).
pub const ERRORS: &str = "kan_worker_errors_total";
/// End-to-end latency of a recall request in seconds, by queue.
pub const REQUEST_SECONDS: &str = "kan_worker_request_duration_seconds";
/// Candidates returned per answered request, by queue.
pub const CANDIDATES_RETURNED: &str = "kan_worker_candidates_returned";
/// Time a strategy takes to recall, in seconds, by strategy.
pub const STRATEGY_SECONDS: &str = "kan_worker_strategy_duration_seconds";
/// Time the ONNX user encoder takes, in seconds, by strategy.
pub const INFERENCE_SECONDS: &str = "kan_worker_inference_duration_seconds";
/// Time of a nearest-neighbour search, in seconds, by index backend.
pub const INDEX_SEARCH_SECONDS: &str = "kan_worker_index_search_duration_seconds";
/// Qdrant searches retried once after a failure.
pub const QDRANT_RETRIES: &str = "kan_worker_qdrant_retries_total";
/// Queue (re)loads, by queue and outcome (`ok`, `error`).
pub const RELOADS: &str = "kan_worker_reloads_total";
/// Items added through `POST /v1/items`, by queue.
pub const ITEMS_ADDED: &str = "kan_worker_items_added_total";
/// Signal store reads that failed (the bundle answered, degraded), by failure kind.
pub const SIGNAL_FAILURES: &str = "kan_worker_signal_failures_total";
