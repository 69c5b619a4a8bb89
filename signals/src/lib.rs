//! The online store of fresh signals: what happened since the bundle was trained.
//!
//! * [`SignalStore`] — the one trait the gateway writes events to and the workers read from:
//!   per-user recent history (a bounded list), per-user recent engagements (read by friends),
//!   follow edges, decayed item counts per segment and minute, and idempotence keys;
//! * [`MemoryStore`] — in-process, the embedded default of `kan up`;
//! * [`RedisStore`] — Redis, for clusters (the store of record there; see `docs/events.md`
//!   for the layout and the durability settings).
//!
//! Decisions (windows, decay, ranking) are kan-core's [`kan_core::fresh`]; this crate only moves
//! data.

mod memory;
mod redis_store;

use std::time::Duration;

use futures::future::BoxFuture;
use kan_api::events::Event;

pub use memory::MemoryStore;
pub use redis_store::{RedisOptions, RedisStore};

/// Most recent items kept per user for history-based strategies.
pub const HISTORY_MAX: usize = 200;
/// Most recent engagements kept per user for their friends' social recall.
pub const ENGAGEMENTS_MAX: usize = 200;
/// How long an applied event id is remembered: longer than an event may be late
/// ([`kan_api::events::MAX_AGE_MS`] plus the future skew), so no retry the parser accepts can
/// apply twice.
pub const IDEMPOTENCE_TTL: Duration = Duration::from_millis(
    (kan_api::events::MAX_AGE_MS + kan_api::events::MAX_FUTURE_SKEW_MS) as u64,
);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("signal store unavailable: {0}")]
    Unavailable(String),
    #[error("signal store timed out after {0} ms")]
    Timeout(u64),
    #[error("signal store answered something unexpected: {0}")]
    Protocol(String),
    #[error("signal store config: {0}")]
    Config(String),
}

impl Error {
    /// One stable label per kind, for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unavailable(_) => "unavailable",
            Error::Timeout(_) => "timeout",
            Error::Protocol(_) => "protocol",
            Error::Config(_) => "config",
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// What a batch did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    /// Events applied now.
    pub stored: usize,
    /// Events whose id had been applied before (not applied again).
    pub duplicates: usize,
}

/// One stored engagement of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Engagement {
    pub item_id: String,
    /// Unix milliseconds.
    pub ts_ms: i64,
    pub weight: f32,
}

/// A trending window: counts of the last `window_ms`, each minute weighted
/// `0.5^(age / half_life_ms)` (see [`kan_core::fresh::window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub window_ms: i64,
    pub half_life_ms: i64,
}

/// The online store. Writes are all-or-nothing per batch and acknowledged only once the store
/// has them (for Redis: once `appendfsync always` has written them to disk).
pub trait SignalStore: Send + Sync {
    /// `memory` or `redis`.
    fn name(&self) -> &'static str;

    /// Applies a validated batch; events whose id was applied before are skipped.
    fn append<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Appended>>;

    /// The user's most recent items, most recent first (at most `limit`).
    fn history<'a>(&'a self, user: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<String>>>;

    /// The users `user` follows (order unspecified).
    fn following<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Each user's most recent engagements, most recent first (at most `limit` each), in the
    /// order of `users`.
    fn engagements<'a>(
        &'a self,
        users: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<Engagement>>>>;

    /// The `k` most engaged items of `segment` over `window` ending at `now_ms`, best first.
    fn trending<'a>(
        &'a self,
        segment: &'a str,
        now_ms: i64,
        window: Window,
        k: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>>>;
}

impl std::fmt::Debug for dyn SignalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignalStore({})", self.name())
    }
}

/// A batch in time order, the order stores apply it in (pushing each item to the head of its
/// list leaves the newest first). The sort is stable: a follow then an unfollow at the same
/// time ends unfollowed.
pub(crate) fn in_time_order(events: &[Event]) -> Vec<&Event> {
    let mut out: Vec<&Event> = events.iter().collect();
    out.sort_by_key(|e| e.ts);
    out
}
