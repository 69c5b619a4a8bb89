//! Per-queue circuit breaker: a pure state machine (time is an argument) plus a small registry.
//!
//! Closed: calls flow; `failure_threshold` consecutive failures open the circuit. Open: calls
//! are skipped until `open_ms` has passed, then one probe call is let through (half-open). The
//! probe's success closes the circuit, its failure opens it again. A probe whose result never
//! arrives (its request was cancelled) is replaced by a new probe after another `open_ms`.
//!
//! The registry announces every change of [`Circuit`] (a gauge, a counter and one log line),
//! never individual calls; [`Transition::between`] decides what counts as a change.

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

/// The visible state of a circuit, without its counters and clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    HalfOpen,
    Open,
}

impl Circuit {
    pub fn label(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::HalfOpen => "half-open",
            Circuit::Open => "open",
        }
    }

    /// The value of the `kan_gateway_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Circuit::Closed => 0.0,
            Circuit::HalfOpen => 1.0,
            Circuit::Open => 2.0,
        }
    }
}

/// A change of a circuit's visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Circuit,
    pub to: Circuit,
}

impl Transition {
    /// The transition from `from` to `to`, if they differ (a failure counted while closed, or a
    /// lost probe replaced while half-open, is no transition).
    pub fn between(from: Circuit, to: Circuit) -> Option<Self> {
        (from != to).then_some(Transition { from, to })
    }
}

impl BreakerState {
    pub fn circuit(&self) -> Circuit {
        match self {
            BreakerState::Closed { .. } => Circuit::Closed,
            BreakerState::Open { .. } => Circuit::Open,
            BreakerState::HalfOpen { .. } => Circuit::HalfOpen,
        }
    }

    pub fn label(&self) -> &'static str {
        self.circuit().label()
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
        let Some(state) = states.get_mut(queue) else {
            return true;
        };
        let before = state.circuit();
        let allowed = state.allow(spec, now);
        let after = state.circuit();
        drop(states);
        if let Some(t) = Transition::between(before, after) {
            announce(queue, t, spec, None);
        }
        allowed
    }

    /// Records the result of a call that `allow` let through and whose result says something
    /// about the queue; `detail` says why a failed call failed (logged if it opens the circuit).
    pub fn record(
        &self,
        queue: &str,
        spec: &CircuitBreakerSpec,
        ok: bool,
        now: Instant,
        detail: Option<&str>,
    ) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if ok && !states.contains_key(queue) {
            return;
        }
        let state = states.entry(queue.to_string()).or_insert_with(|| {
            // First failure of this queue: its gauge starts at closed.
            metrics::gauge!(crate::metrics::CIRCUIT_STATE, "queue" => queue.to_string())
                .set(Circuit::Closed.gauge());
            BreakerState::default()
        });
        let before = state.circuit();
        state.record(spec, ok, now);
        let after = state.circuit();
        drop(states);
        if let Some(t) = Transition::between(before, after) {
            announce(queue, t, spec, detail);
        }
    }

    pub fn state(&self, queue: &str) -> BreakerState {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(queue).copied().unwrap_or_default()
    }
}

/// The side effects of a transition: the gauge, the counter and one log line (WARN when the
/// circuit opens, INFO otherwise).
fn announce(queue: &str, t: Transition, spec: &CircuitBreakerSpec, detail: Option<&str>) {
    metrics::gauge!(crate::metrics::CIRCUIT_STATE, "queue" => queue.to_string()).set(t.to.gauge());
    metrics::counter!(
        crate::metrics::CIRCUIT_TRANSITIONS,
        "queue" => queue.to_string(),
        "to" => t.to.label()
    )
    .increment(1);
    match t.to {
        Circuit::Open => tracing::warn!(
            queue,
            from = t.from.label(),
            open_ms = spec.open_ms,
            last_failure = detail.unwrap_or(""),
            "circuit opened: the queue is not called until a probe succeeds"
        ),
        Circuit::HalfOpen => tracing::info!(queue, "circuit half-open: one probe call goes out"),
        Circuit::Closed => tracing::info!(queue, "circuit closed: the queue is called again"),
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
        breakers.record("bad", &s, false, t0, Some("HTTP 500"));
        assert!(!breakers.allow("bad", &s, t0));
        assert!(breakers.allow("good", &s, t0));
        assert_eq!(breakers.state("bad").label(), "open");
    }

    #[test]
    fn only_changes_of_the_visible_state_are_transitions() {
        let (s, t0) = (spec(), Instant::now());
        let mut b = BreakerState::default();
        let mut seen = Vec::new();
        let mut step = |b: &mut BreakerState, f: &dyn Fn(&mut BreakerState)| {
            let before = b.circuit();
            f(b);
            seen.extend(Transition::between(before, b.circuit()));
        };
        for _ in 0..3 {
            step(&mut b, &|b| b.record(&s, false, t0));
        }
        let later = t0 + Duration::from_millis(1000);
        step(&mut b, &|b| {
            b.allow(&s, later);
        });
        // A lost probe replaced is still half-open: no transition.
        step(&mut b, &|b| {
            b.allow(&s, later + Duration::from_millis(1000));
        });
        step(&mut b, &|b| b.record(&s, true, later));
        use Circuit::*;
        assert_eq!(
            seen,
            [
                Transition {
                    from: Closed,
                    to: Open
                },
                Transition {
                    from: Open,
                    to: HalfOpen
                },
                Transition {
                    from: HalfOpen,
                    to: Closed
                },
            ]
        );
    }

    #[test]
    fn the_gauge_orders_closed_half_open_open() {
        assert_eq!(
            [Circuit::Closed, Circuit::HalfOpen, Circuit::Open].map(Circuit::gauge),
            [0.0, 1.0, 2.0]
        );
    }
}
