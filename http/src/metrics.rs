//! Metric names (Prometheus naming guide: base unit, `_total` for counters). Every series
//! carries a `listener` label naming the listener (`gateway`, `worker`, a queue name, ...).

/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "kan_http_connections_open";
/// Connections closed at accept because the listener was at its connection limit.
pub const CONNECTIONS_REFUSED: &str = "kan_http_connections_refused_total";
/// Requests whose body did not arrive within the body read timeout.
pub const BODY_TIMEOUTS: &str = "kan_http_request_body_timeouts_total";
/// Requests admitted and not yet answered, on routes under admission control.
pub const REQUESTS_IN_FLIGHT: &str = "kan_http_requests_in_flight";
/// Requests answered `503` at once because the in-flight bound was reached.
pub const REQUESTS_SHED: &str = "kan_http_requests_shed_total";
