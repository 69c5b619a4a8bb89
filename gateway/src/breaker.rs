//! Per-queue circuit breaker: a pure state machine (time is an argument) plus a small registry.
//!
//! Closed: calls flow; `failure_threshold` consecutive failures open the circuit. Open: calls
//! are skipped until `open_ms` has passed, then one probe call is let through (half-open). The
//! probe's success closes the circuit, its failure opens it again. A probe whose result never
//! arrives (its request was cancelled) is replaced by a new probe after another `open_ms`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kan_api::crd::CircuitBreakerSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { since: Instant },
}

impl Default for BreakerState {
    fn default() -> Self {
        BreakerState::Closed { failures: 0 }
    }
}

impl BreakerState {
    pub fn label(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half-open",
        }
    }

    /// Whether a call may go out now; moves Open to HalfOpen when the probe is due.
    pub fn allow(&mut self, spec: &CircuitBreakerSpec, now: Instant) -> bool {
        let open_for = open_for(spec);
        match *self {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                *self = BreakerState::HalfOpen { since: now };
                true
            }
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen { since } if now.duration_since(since) >= open_for => {
                *self = BreakerState::HalfOpen { since: now };
                true
            }
            BreakerState::HalfOpen { .. } => false,
        }
    }

    /// Records the result of a call that `allow` let through.
    pub fn record(&mut self, spec: &CircuitBreakerSpec, ok: bool, now: Instant) {
        let threshold = spec.failure_threshold.max(1) as u32;
        *self = match (*self, ok) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            // A late failure of a call sent before the circuit opened changes nothing.
            (BreakerState::Open { until }, false) => BreakerState::Open { until },
            (_, false) => BreakerState::Open {
                until: now + open_for(spec),
            },
        };
    }
}

fn open_for(spec: &CircuitBreakerSpec) -> Duration {
    Duration::from_millis(spec.open_ms.max(1) as u64)
}

/// The breakers of every queue, kept across config reloads (keyed by queue name).
#[derive(Debug, Default)]
pub struct Breakers {
    states: Mutex<HashMap<String, BreakerState>>,
}

impl Breakers {
    pub fn allow(&self, queue: &str, spec: &CircuitBreakerSpec, now: Instant) -> bool {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        match states.get_mut(queue) {
            Some(state) => state.allow(spec, now),
            None => true,
        }
    }

    pub fn record(&self, queue: &str, spec: &CircuitBreakerSpec, ok: bool, now: Instant) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if ok && !states.contains_key(queue) {
            return;
        }
        states
            .entry(queue.to_string())
            .or_default()
            .record(spec, ok, now);
    }

    pub fn state(&self, queue: &str) -> BreakerState {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(queue).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CircuitBreakerSpec {
        CircuitBreakerSpec {
            failure_threshold: 3,
            open_ms: 1000,
        }
    }

    #[test]
    fn consecutive_failures_open_the_circuit_and_a_success_resets_the_count() {
        let (s, t0) = (spec(), Instant::now());
        let mut b = BreakerState::default();
        b.record(&s, false, t0);
        b.record(&s, false, t0);
        b.record(&s, true, t0);
        b.record(&s, false, t0);
        b.record(&s, false, t0);
        assert!(b.allow(&s, t0), "4 failures but never 3 in a row");
        b.record(&s, false, t0);
        assert_eq!(b.label(), "open");
        assert!(!b.allow(&s, t0 + Duration::from_millis(999)));
    }

    #[test]
    fn an_open_circuit_lets_one_probe_through_and_closes_when_it_succeeds() {
        let (s, t0) = (spec(), Instant::now());
        let mut b = BreakerState::Open { until: t0 };
        assert!(b.allow(&s, t0), "probe");
        assert!(!b.allow(&s, t0), "only one probe at a time");
        b.record(&s, true, t0);
        assert_eq!(b, BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let (s, t0) = (spec(), Instant::now());
        let mut b = BreakerState::Open { until: t0 };
        assert!(b.allow(&s, t0));
        b.record(&s, false, t0);
        assert_eq!(
            b,
            BreakerState::Open {
                until: t0 + Duration::from_millis(1000)
            }
        );
    }

    #[test]
    fn a_lost_probe_is_replaced_after_open_ms() {
        let (s, t0) = (spec(), Instant::now());
        let mut b = BreakerState::HalfOpen { since: t0 };
        assert!(!b.allow(&s, t0 + Duration::from_millis(500)));
        assert!(b.allow(&s, t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn the_registry_tracks_queues_separately() {
        let (s, t0) = (
            CircuitBreakerSpec {
                failure_threshold: 1,
                open_ms: 1000,
            },
            Instant::now(),
        );
        let breakers = Breakers::default();
        breakers.record("bad", &s, false, t0);
        assert!(!breakers.allow("bad", &s, t0));
        assert!(breakers.allow("good", &s, t0));
        assert_eq!(breakers.state("bad").label(), "open");
    }
}
