//! The online A/B readout in RecallExperiment status: what the gateway pods answered, summed
//! and bounded to the arms of the spec, and the `ReadoutCurrent` condition saying whether it is
//! current. A poll that fails keeps the last figures and says why.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kan_api::crd::{
    ArmLift, ArmOutcome, ExperimentReadout, MAX_READOUT_ARMS, RecallExperiment,
    RecallExperimentStatus, condition_type::READOUT_CURRENT,
};
use kan_api::events::Readout;
use kan_core::readout::{ArmCounts, from_counts};

use super::conditions::{Decided, merge};

/// What the operator found when it looked at the experiment's gateway.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The gateway serves no readout (it does not exist, or has no exposure log or no signal
    /// store), with the reason.
    NotServed(String),
    /// No poll this time (the last one is recent, or polling is off): status stays as it is.
    NotDue,
    /// Every ready gateway pod answered: their readouts, one per pod.
    Read(Vec<Readout>),
    /// A poll that did not get every pod's answer.
    Failed {
        /// Condition reason (`GatewayUnreachable`, `NoReadyGatewayPod`, ...).
        reason: &'static str,
        message: String,
    },
}

/// `status` (decided by [`super::experiment::experiment_status`], which keeps the readout it
/// found) with the readout and its condition decided from `observation`.
pub fn with_readout(
    mut status: RecallExperimentStatus,
    experiment: &RecallExperiment,
    observation: &Observation,
    now: &Time,
) -> RecallExperimentStatus {
    let existing = experiment
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let previous = existing.iter().find(|c| c.type_ == READOUT_CURRENT);
    let decided = match observation {
        NotDue => {
            status.conditions.extend(previous.cloned());
            return status;
        }
        Observation::NotServed(_) if status.readout.is_none() && previous.is_none() => {
            return status;
        }
        Observation::NotServed(why) => Decided::new(
            READOUT_CURRENT,
            false,
            "ReadoutNotServed",
            format!("{why}; the last readout is kept"),
        ),
        Observation::Failed { reason, message } => Decided::new(
            READOUT_CURRENT,
            false,
            reason,
            format!("{message}; the last readout is kept"),
        ),
        Observation::Read(readouts) => {
            let name = experiment.metadata.name.as_deref().unwrap_or_default();
            let arms: Vec<&str> = experiment
                .spec
                .arms
                .iter()
                .map(|a| a.name.as_str())
                .collect();
            let fresh = summarise(name, &arms, readouts, now);
            // Same figures: keep the block as it is, so an unchanged readout writes nothing.
            let unchanged = status
                .readout
                .as_ref()
                .is_some_and(|old| same_figures(old, &fresh));
            if !unchanged {
                status.readout = Some(fresh);
            }
            let pods = readouts.len();
            Decided::new(
                READOUT_CURRENT,
                true,
                "Read",
                format!(
                    "summed over {pods} gateway pod{}",
                    if pods == 1 { "" } else { "s" }
                ),
            )
        }
    };
    let generation = experiment.metadata.generation;
    status
        .conditions
        .extend(merge(existing, vec![decided], generation, now));
    status
}

use Observation::NotDue;

fn same_figures(a: &ExperimentReadout, b: &ExperimentReadout) -> bool {
    a.window_ms == b.window_ms && a.arms == b.arms && a.differences == b.differences
}

/// Experiment `name`'s readout from one readout per gateway pod: counts summed per arm, arms
/// not in the spec (`arms`) left out, at most [`MAX_READOUT_ARMS`], rates and intervals from
/// the sums (the statistics of `kan_core::readout`, as the gateway computes them).
pub fn summarise(name: &str, arms: &[&str], readouts: &[Readout], now: &Time) -> ExperimentReadout {
    let mut counts = ArmCounts::new();
    for readout in readouts {
        for arm in &readout.arms {
            if arm.experiment != name || !arms.contains(&arm.arm.as_str()) {
                continue;
            }
            if counts.len() >= MAX_READOUT_ARMS
                && !counts.contains_key(&(name.to_string(), arm.arm.clone()))
            {
                continue;
            }
            let c = counts
                .entry((name.to_string(), arm.arm.clone()))
                .or_default();
            c.0 = c.0.saturating_add(arm.engaged);
            c.1 = c.1.saturating_add(arm.exposures);
        }
    }
    let window_ms = readouts.first().map_or(0, |r| r.window_ms);
    let summed = from_counts(window_ms, &counts);
    let arms: Vec<ArmOutcome> = summed
        .arms
        .iter()
        .map(|a| ArmOutcome {
            name: a.arm.clone(),
            exposures: i64::try_from(a.exposures).unwrap_or(i64::MAX),
            engaged: i64::try_from(a.engaged).unwrap_or(i64::MAX),
            rate: round4(a.rate),
            low: round4(a.low),
            high: round4(a.high),
        })
        .collect();
    let differences: Vec<ArmLift> = summed
        .differences
        .iter()
        .map(|d| ArmLift {
            arm: d.arm.clone(),
            baseline: d.baseline.clone(),
            difference: round4(d.difference),
            low: round4(d.low),
            high: round4(d.high),
        })
        .collect();
    let summary = summary_line(&arms, &differences);
    ExperimentReadout {
        readout_at: now.0.to_string(),
        window_ms,
        arms,
        differences,
        summary,
    }
}

/// Rounded to 4 decimals: the status shows what a reader can use, and tiny float noise never
/// makes an unchanged readout look changed.
fn round4(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e4).round() / 1e4
    } else {
        0.0
    }
}

/// The first two arms against the baseline, in percentage points: `treatment +3.1pp [+1.0,
/// +5.2] vs control`.
fn summary_line(arms: &[ArmOutcome], differences: &[ArmLift]) -> String {
    if arms.is_empty() {
        return "no exposures yet".to_string();
    }
    if differences.is_empty() {
        return arms
            .iter()
            .map(|a| format!("{} {}/{} engaged", a.name, a.engaged, a.exposures))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let pp = |x: f64| format!("{:+.1}", x * 100.0);
    let mut line = differences
        .iter()
        .take(2)
        .map(|d| {
            format!(
                "{} {}pp [{}, {}] vs {}",
                d.arm,
                pp(d.difference),
                pp(d.low),
                pp(d.high),
                d.baseline
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if differences.len() > 2 {
        line.push_str("; ...");
    }
    line.chars().take(256).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use kan_api::crd::condition_type::READY;
    use kan_api::events::ArmReadout;

    use super::*;
    use crate::allocation::tests::experiment;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid"))
    }

    fn arm(experiment: &str, arm: &str, engaged: u64, exposures: u64) -> ArmReadout {
        ArmReadout {
            experiment: experiment.into(),
            arm: arm.into(),
            exposures,
            engaged,
            rate: 0.0,
            low: 0.0,
            high: 0.0,
        }
    }

    fn pod(arms: Vec<ArmReadout>) -> Readout {
        Readout {
            window_ms: 60_000,
            arms,
            differences: Vec::new(),
        }
    }

    #[test]
    fn counts_of_every_pod_are_summed_before_the_intervals_are_computed() {
        let pods = [
            pod(vec![
                arm("a", "control", 28, 35),
                arm("a", "treatment", 10, 40),
            ]),
            pod(vec![
                arm("a", "control", 28, 35),
                arm("a", "treatment", 38, 40),
            ]),
        ];
        let r = summarise("a", &["control", "treatment"], &pods, &at(0));
        assert_eq!(r.window_ms, 60_000);
        let control = &r.arms[0];
        assert_eq!(
            (control.name.as_str(), control.engaged, control.exposures),
            ("control", 56, 70)
        );
        assert_eq!((r.arms[1].engaged, r.arms[1].exposures), (48, 80));
        // Newcombe 1998's worked example: 56/70 vs 48/80 → 0.2 [0.0524, 0.3339], here as
        // control against treatment (control is the baseline, so the sign flips).
        let d = &r.differences[0];
        assert_eq!(
            (d.arm.as_str(), d.baseline.as_str()),
            ("treatment", "control")
        );
        assert_eq!(d.difference, -0.2);
        assert!(
            (d.low + 0.3339).abs() < 2e-4 && (d.high + 0.0524).abs() < 2e-4,
            "{d:?}"
        );
        assert_eq!(r.summary, "treatment -20.0pp [-33.4, -5.2] vs control");
    }

    #[test]
    fn arms_of_other_experiments_or_not_in_the_spec_are_left_out_and_at_most_sixteen_kept() {
        let mut arms = vec![arm("other", "control", 1, 2), arm("a", "renamed", 1, 2)];
        let names: Vec<String> = (0..40).map(|i| format!("arm{i:02}")).collect();
        arms.extend(names.iter().map(|n| arm("a", n, 1, 10)));
        let spec: Vec<&str> = names.iter().map(String::as_str).collect();
        let r = summarise("a", &spec, &[pod(arms)], &at(0));
        assert_eq!(r.arms.len(), MAX_READOUT_ARMS);
        assert!(r.arms.iter().all(|a| a.name.starts_with("arm")));
        assert_eq!(r.differences.len(), MAX_READOUT_ARMS - 1);
        assert!(r.summary.ends_with("; ..."), "{}", r.summary);
    }

    #[test]
    fn an_experiment_without_exposures_says_so() {
        let r = summarise("a", &["control"], &[pod(Vec::new())], &at(0));
        assert!(r.arms.is_empty());
        assert_eq!(r.summary, "no exposures yet");
    }

    fn read(engaged: u64) -> Observation {
        Observation::Read(vec![pod(vec![
            arm("a", "control", 10, 100),
            arm("a", "treatment", engaged, 100),
        ])])
    }

    fn decide(e: &RecallExperiment, observation: &Observation, now: i64) -> RecallExperimentStatus {
        let base = RecallExperimentStatus {
            readout: e.status.as_ref().and_then(|s| s.readout.clone()),
            ..Default::default()
        };
        with_readout(base, e, observation, &at(now))
    }

    fn readout_condition(s: &RecallExperimentStatus) -> (&str, &str) {
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == READOUT_CURRENT)
            .expect("ReadoutCurrent condition");
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn an_unchanged_readout_keeps_its_time_so_nothing_is_rewritten() {
        let mut e = experiment("a", "recall", 0, 20, 1);
        let first = decide(&e, &read(20), 100);
        assert_eq!(readout_condition(&first), ("True", "Read"));
        e.status = Some(first.clone());
        let again = decide(&e, &read(20), 200);
        assert_eq!(again, first);
        let changed = decide(&e, &read(21), 300);
        let r = changed.readout.expect("readout");
        assert_eq!(r.readout_at, at(300).0.to_string());
        assert_eq!(r.arms[1].engaged, 21);
    }

    #[test]
    fn a_failed_poll_keeps_the_last_readout_and_says_why() {
        let mut e = experiment("a", "recall", 0, 20, 1);
        e.status = Some(decide(&e, &read(20), 100));
        let failed = Observation::Failed {
            reason: "GatewayUnreachable",
            message: "http://10.0.0.1:8080: refused the connection".into(),
        };
        let s = decide(&e, &failed, 200);
        assert_eq!(s.readout, e.status.as_ref().and_then(|s| s.readout.clone()));
        assert_eq!(readout_condition(&s), ("False", "GatewayUnreachable"));
        let message = &s.conditions[0].message;
        assert!(message.ends_with("; the last readout is kept"), "{message}");
    }

    #[test]
    fn no_poll_keeps_the_condition_and_a_gateway_without_readout_adds_nothing() {
        let mut e = experiment("a", "recall", 0, 20, 1);
        let s = decide(&e, &Observation::NotServed("no exposure log".into()), 0);
        assert_eq!(s, RecallExperimentStatus::default());
        e.status = Some(decide(&e, &read(20), 100));
        let s = decide(&e, &NotDue, 200);
        assert_eq!(s.conditions, e.status.as_ref().expect("status").conditions);
        assert!(s.conditions.iter().all(|c| c.type_ != READY));
        let s = decide(&e, &Observation::NotServed("no exposure log".into()), 300);
        assert_eq!(readout_condition(&s), ("False", "ReadoutNotServed"));
        assert!(s.readout.is_some());
    }
}
