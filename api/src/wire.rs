//! The recall wire types: what feed services send and what workers and the gateway answer.
//! Worker and gateway accept the same request.

pub mod compact;
pub mod items;
mod request;

pub use items::{ItemsRequest, ItemsResponse, NewItem, parse_items_request};
pub use request::parse_recall_request;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest history a request may carry.
pub const MAX_HISTORY: usize = 1000;
/// Most ids a request may exclude.
pub const MAX_EXCLUDE: usize = 10_000;
/// Largest `k` any request may ask for.
pub const MAX_K: u32 = 10_000;
/// Longest user or item id.
pub const MAX_ID_LEN: usize = 256;
/// Most keys a request `context` may have.
pub const MAX_CONTEXT_KEYS: usize = 64;
/// Longest `context` key.
pub const MAX_CONTEXT_KEY_LEN: usize = 64;
/// Longest `context` value: attributes such as a region or an age band, not documents.
pub const MAX_CONTEXT_VALUE_LEN: usize = 256;

/// `POST /v1/recall` body.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecallRequest {
    /// The user to recall for; unknown users get the cold-start path.
    pub user_id: String,
    /// Candidates wanted; the queue's or gateway's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    /// Recent interactions the caller knows, most recent first. When absent the worker uses the
    /// history stored in its bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<String>>,
    /// Items that must not be returned (already seen, already shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Request context (user attributes such as region, age band), used by segmenting strategies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// When true the gateway adds each queue's own list to the response.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
}

/// One candidate as a worker returns it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Candidate {
    pub item_id: String,
    pub score: f32,
}

/// A worker's answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WorkerResponse {
    /// The queue that answered.
    pub queue: String,
    /// Version (content hash) of the bundle that produced the candidates.
    pub version: String,
    /// Best first.
    pub candidates: Vec<Candidate>,
    /// Time spent inside the worker.
    pub took_ms: f64,
    /// How many ids of the request's `history` the queue's bundle does not know (they are
    /// ignored). Absent when zero. Not carried by the compact layout: a compact answer reports it
    /// in the `x-kan-unknown-history` header instead.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown_history: u32,
    /// True when the queue reads an online signal store that did not answer: the candidates
    /// come from the bundle alone. Absent when false. A compact answer reports it in the
    /// `x-kan-degraded` header.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One merged candidate with every queue that produced it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GatewayCandidate {
    pub item_id: String,
    /// Merge score (its meaning depends on the merge policy); higher is better.
    pub score: f64,
    /// Queues that returned this item, best position first.
    pub sources: Vec<String>,
}

/// The experiment arm a user was assigned to in one layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Assignment {
    pub layer: String,
    pub experiment: String,
    pub arm: String,
}

/// What happened to one queue call.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum QueueStatus {
    Ok,
    Timeout,
    Error,
    /// Not called: not ready, circuit open, or unknown endpoint.
    Skipped,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Ok => "ok",
            QueueStatus::Timeout => "timeout",
            QueueStatus::Error => "error",
            QueueStatus::Skipped => "skipped",
        }
    }
}

/// Per-queue outcome in a gateway response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct QueueReport {
    pub name: String,
    /// Candidates the queue returned.
    pub returned: usize,
    pub took_ms: f64,
    pub status: QueueStatus,
    /// Why a queue failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How many ids of the request's `history` the queue's bundle does not know (ignored by
    /// it). Absent when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unknown_history: u32,
    /// Version (content hash) of the bundle that answered; absent when the queue did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The queue's own list, when the request set `debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<Candidate>>,
}

/// The gateway's answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GatewayResponse {
    pub candidates: Vec<GatewayCandidate>,
    pub assignments: Vec<Assignment>,
    pub queues: Vec<QueueReport>,
    /// True when any queue failed, timed out or was skipped.
    pub degraded: bool,
    pub took_ms: f64,
}

/// Machine-readable error codes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    MethodNotAllowed,
    /// The body is over the size limit (413).
    PayloadTooLarge,
    /// The body is not `application/json` (415).
    UnsupportedMediaType,
    /// The request head is over the size limit (431).
    HeadersTooLarge,
    /// No or wrong bearer token (401).
    Unauthenticated,
    /// Overloaded or a required dependency failed (503); retry after `Retry-After`.
    Unavailable,
    DeadlineExceeded,
    /// A dependency refuses the server's own credentials or configuration (500), e.g. the
    /// vector index rejects the API key: retrying does not help until the spec or Secret is
    /// fixed.
    Misconfigured,
    Internal,
}

impl ErrorCode {
    /// The code of an HTTP error status, for answers no handler wrote (404, 405, 413, ...).
    pub fn for_status(status: u16) -> Self {
        match status {
            401 => ErrorCode::Unauthenticated,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 | 504 => ErrorCode::DeadlineExceeded,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            431 => ErrorCode::HeadersTooLarge,
            503 => ErrorCode::Unavailable,
            400..=499 => ErrorCode::InvalidArgument,
            _ => ErrorCode::Internal,
        }
    }
}

/// `{"error": {...}}`, the body of every non-2xx answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The offending request field, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>, field: Option<&str>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
                field: field.map(str::to_string),
            },
        }
    }
}

/// One line of the gateway's exposure log (JSON lines), read back by `kan eval --exposures`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ExposureRecord {
    /// Unix time in milliseconds when the response was sent.
    pub ts_ms: i64,
    pub user_id: String,
    /// The user's arms (empty when in no experiment).
    pub assignments: Vec<Assignment>,
    /// Returned item ids, best first.
    pub items: Vec<String>,
    /// True when some queue failed for this response.
    #[serde(default)]
    pub degraded: bool,
}
