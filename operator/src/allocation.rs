//! Which experiments of one gateway go live. Experiments of a layer must own disjoint bucket
//! ranges under one salt; when two conflict, the older one (by creation time, then name) keeps
//! its traffic and the newer one is held back with a condition, so adding a bad experiment
//! never disturbs a running one. Gateway and experiment reconcilers both call this, so they
//! agree on what is routed.

use std::collections::BTreeMap;

use kan_api::assignment::layer_conflicts;
use kan_api::crd::RecallExperiment;

/// The decision for one experiment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// Routed by the gateway.
    pub live: bool,
    /// Names of the experiments it conflicts with, sorted.
    pub conflicts: Vec<String>,
    /// Why it is held back (empty when live).
    pub messages: Vec<String>,
}

/// Decides every experiment of `experiments` (all targeting one gateway), keyed by name.
pub fn allocate(experiments: &[&RecallExperiment]) -> BTreeMap<String, Allocation> {
    let mut ordered: Vec<&RecallExperiment> = experiments.to_vec();
    ordered.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref(),
            a.metadata.name.as_deref(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref(),
                b.metadata.name.as_deref(),
            ))
    });

    let mut out: BTreeMap<String, Allocation> = BTreeMap::new();
    let mut live: Vec<&RecallExperiment> = Vec::new();
    for candidate in ordered {
        let name = candidate.metadata.name.clone().unwrap_or_default();
        let mut allocation = Allocation::default();
        for accepted in &live {
            let conflicts = layer_conflicts([key(accepted), key(candidate)]);
            if let Some(conflict) = conflicts.into_iter().next() {
                let other = accepted.metadata.name.clone().unwrap_or_default();
                allocation.conflicts.push(other.clone());
                allocation.messages.push(conflict.message);
                if let Some(entry) = out.get_mut(&other) {
                    entry.conflicts.push(name.clone());
                }
            }
        }
        allocation.live = allocation.conflicts.is_empty();
        if allocation.live {
            live.push(candidate);
        }
        out.insert(name, allocation);
    }
    for allocation in out.values_mut() {
        allocation.conflicts.sort();
        allocation.conflicts.dedup();
    }
    out
}

fn key(e: &RecallExperiment) -> (&str, &str, &str, kan_api::crd::BucketRange) {
    (
        e.metadata.name.as_deref().unwrap_or_default(),
        e.spec.layer.as_str(),
        e.spec.effective_salt(),
        e.spec.bucket_range(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    /// An experiment on gateway `feed` created at `created` (seconds).
    pub fn experiment(
        name: &str,
        layer: &str,
        start: i32,
        traffic: i32,
        created: i64,
    ) -> RecallExperiment {
        let spec = serde_saphyr::from_str(&format!(
            "gateway: feed\nlayer: {layer}\nbucketStart: {start}\ntraffic: {traffic}\narms: [{{name: control, weight: 50}}, {{name: treatment, weight: 50}}]\n"
        ))
        .expect("experiment spec parses");
        let mut e = RecallExperiment::new(name, spec);
        e.metadata.namespace = Some("recsys".into());
        e.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).expect("valid")));
        e
    }

    #[test]
    fn disjoint_experiments_are_all_live() {
        let a = experiment("a", "recall", 0, 20, 1);
        let b = experiment("b", "recall", 2000, 30, 2);
        let c = experiment("c", "merge", 0, 100, 3);
        let out = allocate(&[&a, &b, &c]);
        assert!(
            out.values().all(|x| x.live && x.conflicts.is_empty()),
            "{out:?}"
        );
    }

    #[test]
    fn the_older_of_two_overlapping_experiments_keeps_its_traffic() {
        let old = experiment("old", "recall", 0, 50, 1);
        let new = experiment("new", "recall", 4000, 20, 2);
        // Input order does not matter: creation time decides.
        let out = allocate(&[&new, &old]);
        assert!(out["old"].live);
        assert_eq!(out["old"].conflicts, ["new"]);
        assert!(!out["new"].live);
        assert_eq!(out["new"].conflicts, ["old"]);
        assert!(
            out["new"].messages[0].contains("overlap in layer 'recall'"),
            "{:?}",
            out["new"].messages
        );
    }

    #[test]
    fn a_held_back_experiment_does_not_block_a_third_one() {
        let a = experiment("a", "recall", 0, 50, 1);
        let b = experiment("b", "recall", 4000, 20, 2); // overlaps a
        let c = experiment("c", "recall", 5000, 10, 3); // overlaps b only
        let out = allocate(&[&a, &b, &c]);
        assert!(out["a"].live && !out["b"].live && out["c"].live, "{out:?}");
    }

    #[test]
    fn different_salts_in_one_layer_conflict() {
        let a = experiment("a", "recall", 0, 10, 1);
        let mut b = experiment("b", "recall", 5000, 10, 2);
        b.spec.salt = Some("other".into());
        let out = allocate(&[&a, &b]);
        assert!(!out["b"].live);
        assert!(out["b"].messages[0].contains("different salts"));
    }
}
