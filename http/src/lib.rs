//! Kan's HTTP listeners, in one place so every one of them holds the same line against slow,
//! greedy or malformed clients:
//!
//! * [`serve`] — accepts connections under [`ListenerLimits`]: a cap on open connections
//!   (excess closed at once), a header read timeout that also bounds keep-alive idle time, a
//!   deadline on the request body, and a header size limit;
//! * [`Admission`] — a tower layer bounding the requests in flight on a route, shedding the
//!   excess at once with `503` + `Retry-After`;
//! * [`BearerAuth`] — an optional bearer token (`401` without it), probes left open;
//! * [`errors`] — the one JSON error body of every 4xx/5xx, and the `application/json` check;
//! * [`spawn_upkeep`] — drains the Prometheus recorder's histograms whether or not anyone
//!   scrapes `/metrics`, so recorded latencies do not pile up in memory.

mod admission;
mod auth;
mod body;
pub mod errors;
mod limits;
pub mod metrics;
mod recorder;
mod serve;

pub use admission::{Admission, default_max_in_flight};
pub use auth::{BearerAuth, TokenError};
pub use body::{BodyTimeout, DeadlineBody};
pub use errors::{error_response, json_errors, not_found, require_json, unavailable};
pub use limits::ListenerLimits;
pub use recorder::{UPKEEP_INTERVAL, spawn_upkeep};
pub use serve::serve;
