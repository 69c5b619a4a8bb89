//! Kan's merging gateway.
//!
//! A request goes through a fixed template ([`Gateway::recall`]):
//! 1. **assign arms** — [`assign::route`] puts the user in at most one arm per experiment
//!    (layered, deterministic bucket hashing) and derives the queue set, merge and fallback;
//! 2. **fan out** — [`fanout::FanOut`] calls the queues concurrently under per-queue timeouts
//!    and the request deadline (hedging, circuit breaker); a failed queue adds nothing but keeps
//!    its status;
//! 3. **merge** — [`merge::merge`] (rrf, weighted-interleave, quota, score) de-duplicates and
//!    records every source;
//! 4. **propensity boost** — when the config declares `filters.propensity` and the request's
//!    `context` names an audience, merge scores are multiplied by the items' lift
//!    ([`propensity`], `kan_core::propensity`);
//! 5. **filters** — [`filter`] stages (exclude, blocklist, propensity `minLift`, max per source)
//!    each return what they kept and removed; the fallback queue fills what is missing;
//! 6. **truncate** to `k`.
//!
//! The config is swapped atomically ([`GatewayHandle::update`], [`reload::watch`]); in-flight
//! requests finish on the config they started with.

pub mod answer;
pub mod assign;
pub mod breaker;
pub mod config;
pub mod console;
pub mod error;
pub mod events;
pub mod exposure;
pub mod fanout;
pub mod filter;
mod gateway;
pub mod local;
pub mod merge;
pub mod metrics;
pub mod propensity;
pub mod reload;
pub mod response;
pub mod server;
pub mod stats;
pub mod trace;

pub use config::{load_config, parse_config};
pub use error::{Error, Result};
pub use gateway::{Gateway, GatewayHandle};
pub use reload::{ConfigWatcher, watch};
pub use stats::StatsSnapshot;
