//! Live in-process statistics for a console page: request counts per arm and per-queue call
//! outcomes and latency. Prometheus gets the same numbers through the `metrics` facade; this is
//! the copy that can be read without a scrape.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use kan_api::wire::{Assignment, QueueReport, QueueStatus};
use serde::Serialize;

/// Weight of the newest sample in the moving average of queue latency.
const EWMA_ALPHA: f64 = 0.1;
/// Latency percentiles are over this many of a queue's latest calls that went out.
const RECENT_CALLS: usize = 1024;

/// Calls of one queue since the gateway started.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct QueueStats {
    pub calls: u64,
    pub ok: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub skipped: u64,
    /// Exponentially weighted mean latency of calls that went out, in ms.
    pub mean_took_ms: f64,
    /// Median and 99th percentile latency of the latest calls that went out (up to 1024), in
    /// ms; `None` before the first.
    pub p50_took_ms: Option<f64>,
    pub p99_took_ms: Option<f64>,
    /// Bundle version of the latest answer.
    pub version: Option<String>,
    pub last_status: Option<QueueStatus>,
    pub last_detail: Option<String>,
    /// Circuit breaker state (`closed`, `open`, `half-open`), filled in by the snapshot.
    pub circuit: String,
}

/// Requests of one experiment arm.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct ArmStats {
    pub layer: String,
    pub experiment: String,
    pub arm: String,
    pub requests: u64,
}

/// A snapshot of [`Stats`].
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    pub gateway: String,
    pub config_hash: String,
    /// The last rejected config, while the previous one keeps serving.
    pub last_reload_error: Option<String>,
    /// Queues that cannot serve as configured (bundle not loaded, reload failed), with why.
    pub queue_problems: BTreeMap<String, String>,
    pub requests: u64,
    pub degraded: u64,
    pub queues: BTreeMap<String, QueueStats>,
    pub arms: Vec<ArmStats>,
}

#[derive(Default)]
struct Inner {
    requests: u64,
    degraded: u64,
    queues: BTreeMap<String, QueueStats>,
    /// Latencies of each queue's latest calls that went out, oldest first.
    recent: BTreeMap<String, VecDeque<f64>>,
    arms: BTreeMap<Assignment, u64>,
}

/// Counters updated once per request.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    pub fn record(&self, assignments: &[Assignment], queues: &[QueueReport], degraded: bool) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.requests += 1;
        inner.degraded += u64::from(degraded);
        for a in assignments {
            match inner.arms.get_mut(a) {
                Some(n) => *n += 1,
                None => {
                    inner.arms.insert(a.clone(), 1);
                }
            }
        }
        for q in queues {
            if !inner.queues.contains_key(&q.name) {
                inner.queues.insert(q.name.clone(), QueueStats::default());
            }
            let Some(s) = inner.queues.get_mut(&q.name) else {
                continue;
            };
            s.calls += 1;
            match q.status {
                QueueStatus::Ok => s.ok += 1,
                QueueStatus::Timeout => s.timeouts += 1,
                QueueStatus::Error => s.errors += 1,
                QueueStatus::Skipped => s.skipped += 1,
            }
            if q.status != QueueStatus::Skipped {
                s.mean_took_ms = if s.calls == 1 {
                    q.took_ms
                } else {
                    s.mean_took_ms + EWMA_ALPHA * (q.took_ms - s.mean_took_ms)
                };
            }
            if let Some(v) = &q.version
                && s.version.as_ref() != Some(v)
            {
                s.version = Some(v.clone());
            }
            s.last_status = Some(q.status);
            if q.status != QueueStatus::Ok {
                s.last_detail = q.detail.clone();
            }
            if q.status != QueueStatus::Skipped {
                let recent = match inner.recent.get_mut(&q.name) {
                    Some(recent) => recent,
                    None => inner.recent.entry(q.name.clone()).or_default(),
                };
                if recent.len() == RECENT_CALLS {
                    recent.pop_front();
                }
                recent.push_back(q.took_ms);
            }
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut queues = inner.queues.clone();
        for (name, q) in &mut queues {
            if let Some(recent) = inner.recent.get(name) {
                let mut sorted: Vec<f64> = recent.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                q.p50_took_ms = nearest_rank(&sorted, 0.50);
                q.p99_took_ms = nearest_rank(&sorted, 0.99);
            }
        }
        StatsSnapshot {
            requests: inner.requests,
            degraded: inner.degraded,
            queues,
            arms: inner
                .arms
                .iter()
                .map(|(a, n)| ArmStats {
                    layer: a.layer.clone(),
                    experiment: a.experiment.clone(),
                    arm: a.arm.clone(),
                    requests: *n,
                })
                .collect(),
            ..StatsSnapshot::default()
        }
    }
}

/// Nearest-rank percentile of sorted values; `None` for none.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, status: QueueStatus, took_ms: f64) -> QueueReport {
        QueueReport {
            name: name.into(),
            returned: 0,
            took_ms,
            status,
            detail: Some("why".into()),
            unknown_history: 0,
            version: Some("v1".into()),
            candidates: None,
        }
    }

    #[test]
    fn counts_requests_per_arm_and_outcomes_per_queue() {
        let stats = Stats::default();
        let arm = Assignment {
            layer: "l".into(),
            experiment: "e".into(),
            arm: "a".into(),
        };
        stats.record(
            std::slice::from_ref(&arm),
            &[report("q", QueueStatus::Ok, 10.0)],
            false,
        );
        stats.record(
            std::slice::from_ref(&arm),
            &[report("q", QueueStatus::Timeout, 20.0)],
            true,
        );
        let s = stats.snapshot();
        assert_eq!((s.requests, s.degraded), (2, 1));
        assert_eq!(s.arms[0].requests, 2);
        let q = &s.queues["q"];
        assert_eq!((q.calls, q.ok, q.timeouts), (2, 1, 1));
        assert!((q.mean_took_ms - 11.0).abs() < 1e-9);
        assert_eq!(q.last_detail.as_deref(), Some("why"));
        assert_eq!(q.version.as_deref(), Some("v1"));
    }

    #[test]
    fn latency_percentiles_cover_the_latest_calls_that_went_out() {
        let stats = Stats::default();
        assert_eq!(stats.snapshot().queues.get("q"), None);
        for ms in 1..=100 {
            stats.record(&[], &[report("q", QueueStatus::Ok, ms as f64)], false);
        }
        // Skipped calls took no time worth counting.
        stats.record(&[], &[report("q", QueueStatus::Skipped, 0.0)], true);
        let q = &stats.snapshot().queues["q"];
        assert_eq!((q.p50_took_ms, q.p99_took_ms), (Some(50.0), Some(99.0)));

        // Only the latest RECENT_CALLS count: old slow calls age out.
        for _ in 0..RECENT_CALLS {
            stats.record(&[], &[report("q", QueueStatus::Ok, 2.0)], false);
        }
        let q = &stats.snapshot().queues["q"];
        assert_eq!((q.p50_took_ms, q.p99_took_ms), (Some(2.0), Some(2.0)));
    }
}
