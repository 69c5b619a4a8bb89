//! Reads of the online signal store on the request path, bounded and forgiving: each read has
//! a budget (a quarter of the queue's `timeoutMs`); a read that fails or runs over marks the
//! answer `degraded` and the strategy carries on with the bundle's data alone. After a failure
//! the store is skipped for [`BACKOFF`], so a store that is down costs one budget per second,
//! not one per request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use kan_signals::SignalStore;

/// How long the store is skipped after a failed read.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// The store of a loaded queue and whether it has failed recently (shared by its requests).
pub struct Signals {
    pub store: Arc<dyn SignalStore>,
    started: Instant,
    /// Milliseconds since `started` until which the store is skipped.
    down_until_ms: AtomicI64,
}

impl Signals {
    pub fn new(store: Arc<dyn SignalStore>) -> Self {
        Self {
            store,
            started: Instant::now(),
            down_until_ms: AtomicI64::new(0),
        }
    }

    fn elapsed_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }
}

/// The store as one request sees it.
pub struct Fresh<'a> {
    signals: &'a Signals,
    budget: Duration,
    degraded: AtomicBool,
}

impl std::fmt::Debug for Fresh<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh")
            .field("store", &self.store().name())
            .field("degraded", &self.degraded())
            .finish()
    }
}

impl<'a> Fresh<'a> {
    pub fn new(signals: &'a Signals, queue_timeout: Duration) -> Self {
        Self {
            signals,
            budget: (queue_timeout / 4).max(Duration::from_millis(5)),
            degraded: AtomicBool::new(false),
        }
    }

    pub fn store(&self) -> &'a dyn SignalStore {
        self.signals.store.as_ref()
    }

    /// True when some read failed or was skipped: the answer came from the bundle alone.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Runs one read under the budget; `None` (and the answer degraded) when the store is in
    /// its back-off, fails or is too slow.
    pub async fn read<T>(&self, call: impl Future<Output = kan_signals::Result<T>>) -> Option<T> {
        if self.degraded()
            || self.signals.down_until_ms.load(Ordering::Relaxed) > self.signals.elapsed_ms()
        {
            self.degraded.store(true, Ordering::Relaxed);
            return None;
        }
        let failure = match tokio::time::timeout(self.budget, call).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.metric_label(),
            Err(_) => "timeout",
        };
        self.degraded.store(true, Ordering::Relaxed);
        let until = self.signals.elapsed_ms() + BACKOFF.as_millis() as i64;
        if self.signals.down_until_ms.swap(until, Ordering::Relaxed) <= self.signals.elapsed_ms() {
            // Once per back-off, not once per request.
            tracing::warn!(
                store = self.store().name(),
                kind = failure,
                "signal store read failed; answering from the bundle (degraded)"
            );
        }
        metrics::counter!(crate::metrics::SIGNAL_FAILURES, "kind" => failure).increment(1);
        None
    }
}
