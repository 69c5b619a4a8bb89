//! Kubernetes conditions: what the status logic decides, and how it is merged into the
//! conditions already on an object (a transition time only moves when the status flips).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// One decided condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Decided {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The decided conditions as Kubernetes conditions, in decided order. A condition whose
/// status is unchanged keeps its `lastTransitionTime`, so re-reconciling writes nothing new.
pub fn merge(
    existing: &[Condition],
    decided: Vec<Decided>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    decided
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let last_transition_time = existing
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.to_string(),
                message: d.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The status of condition `type_` ("True"/"False"), if present.
pub fn status_of<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time_and_takes_the_new_message() {
        let first = merge(
            &[],
            vec![Decided::new("Ready", false, "A", "one")],
            Some(1),
            &at(10),
        );
        let second = merge(
            &first,
            vec![Decided::new("Ready", false, "B", "two")],
            Some(2),
            &at(20),
        );
        assert_eq!(second[0].last_transition_time, at(10));
        assert_eq!(
            (second[0].reason.as_str(), second[0].message.as_str()),
            ("B", "two")
        );
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_the_transition_time() {
        let first = merge(
            &[],
            vec![Decided::new("Ready", false, "A", "")],
            None,
            &at(10),
        );
        let second = merge(
            &first,
            vec![Decided::new("Ready", true, "A", "")],
            None,
            &at(20),
        );
        assert_eq!(second[0].status, "True");
        assert_eq!(second[0].last_transition_time, at(20));
        assert_eq!(status_of(&second, "Ready"), Some("True"));
        assert_eq!(status_of(&second, "Degraded"), None);
    }
}
