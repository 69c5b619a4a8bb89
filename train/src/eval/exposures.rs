//! `kan eval --exposures FILE --truth FILE`: recall of what the gateway actually returned, per
//! experiment arm, with a bootstrap confidence interval.
//!
//! Exposures are `kan_api::wire::ExposureRecord` JSON lines; truth is JSON lines
//! `{"user_id": "...", "items": ["...", ...]}` (what each user engaged with afterwards).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use kan_api::wire::ExposureRecord;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Arm label of responses in no experiment.
pub const NO_EXPERIMENT: &str = "(no experiment)";
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Truth {
    user_id: String,
    items: Vec<String>,
}

/// Recall of one arm.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ArmRecall {
    /// `experiment/arm`, or [`NO_EXPERIMENT`].
    pub arm: String,
    /// Exposures with a truth entry for their user.
    pub exposures: usize,
    pub recall: f64,
    /// 95% percentile-bootstrap interval of the mean.
    pub ci_low: f64,
    pub ci_high: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ExposureReport {
    pub k: usize,
    pub arms: Vec<ArmRecall>,
    /// Exposure records whose user has no truth entry (not scored).
    pub unmatched: usize,
}

impl ExposureReport {
    /// Writes `exposures.json` into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("exposures.json");
        std::fs::write(&path, serde_json::to_vec_pretty(self)?).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "Recall@{} of served lists per arm (95% bootstrap CI).\n\n| arm | exposures | recall | 95% CI |\n| --- | ---: | ---: | --- |\n",
            self.k
        );
        for a in &self.arms {
            s.push_str(&format!(
                "| {} | {} | {:.4} | [{:.4}, {:.4}] |\n",
                a.arm, a.exposures, a.recall, a.ci_low, a.ci_high
            ));
        }
        s.push_str(&format!(
            "\n{} exposures had no truth entry for their user.\n",
            self.unmatched
        ));
        s
    }
}

fn read_json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| serde_json::from_str(l).map_err(|e| Error::parse(path, n + 1, e.to_string())))
        .collect()
}

/// Mean and 95% percentile-bootstrap interval of `values` (seeded).
pub fn bootstrap_ci(values: &[f64], resamples: usize, seed: u64) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    (mean, at(0.025), at(0.975))
}

/// Scores exposures against truth, per arm.
pub fn score(
    exposures: &[ExposureRecord],
    truth: &HashMap<String, HashSet<String>>,
    k: usize,
    seed: u64,
) -> ExposureReport {
    let mut per_arm: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut unmatched = 0;
    for e in exposures {
        let Some(t) = truth.get(&e.user_id).filter(|t| !t.is_empty()) else {
            unmatched += 1;
            continue;
        };
        let hits = e.items.iter().take(k).filter(|i| t.contains(*i)).count();
        let recall = hits as f64 / t.len() as f64;
        let arms: Vec<String> = if e.assignments.is_empty() {
            vec![NO_EXPERIMENT.to_string()]
        } else {
            e.assignments
                .iter()
                .map(|a| format!("{}/{}", a.experiment, a.arm))
                .collect()
        };
        for a in arms {
            per_arm.entry(a).or_default().push(recall);
        }
    }
    let arms = per_arm
        .into_iter()
        .map(|(arm, v)| {
            let (recall, ci_low, ci_high) = bootstrap_ci(&v, BOOTSTRAP_RESAMPLES, seed);
            ArmRecall {
                arm,
                exposures: v.len(),
                recall,
                ci_low,
                ci_high,
            }
        })
        .collect();
    ExposureReport { k, arms, unmatched }
}

/// Reads both files and scores them.
pub fn evaluate(exposures: &Path, truth: &Path, k: usize, seed: u64) -> Result<ExposureReport> {
    let records: Vec<ExposureRecord> = read_json_lines(exposures)?;
    let truth: Vec<Truth> = read_json_lines(truth)?;
    let mut map: HashMap<String, HashSet<String>> = HashMap::new();
    for t in truth {
        map.entry(t.user_id).or_default().extend(t.items);
    }
    Ok(score(&records, &map, k, seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kan_api::wire::Assignment;

    fn exposure(user: &str, arm: Option<&str>, items: &[&str]) -> ExposureRecord {
        ExposureRecord {
            ts_ms: 0,
            user_id: user.into(),
            assignments: arm
                .map(|a| {
                    vec![Assignment {
                        layer: "recall".into(),
                        experiment: "exp".into(),
                        arm: a.into(),
                    }]
                })
                .unwrap_or_default(),
            items: items.iter().map(|s| s.to_string()).collect(),
            degraded: false,
        }
    }

    #[test]
    fn recall_is_computed_per_arm_and_users_without_truth_are_counted_apart() {
        let truth: HashMap<String, HashSet<String>> = [
            (
                "u1".to_string(),
                ["a", "b"].iter().map(|s| s.to_string()).collect(),
            ),
            (
                "u2".to_string(),
                ["c"].iter().map(|s| s.to_string()).collect(),
            ),
        ]
        .into_iter()
        .collect();
        let ex = [
            exposure("u1", Some("control"), &["a", "x"]),
            exposure("u2", Some("treatment"), &["c"]),
            exposure("u1", Some("treatment"), &["a", "b"]),
            exposure("u9", None, &["a"]),
            exposure("u2", None, &["z"]),
        ];
        let r = score(&ex, &truth, 10, 1);
        assert_eq!(r.unmatched, 1);
        let get = |a: &str| r.arms.iter().find(|x| x.arm == a).unwrap().clone();
        assert_eq!(get("exp/control").recall, 0.5);
        assert_eq!(get("exp/treatment").recall, 1.0);
        assert_eq!(get("exp/treatment").exposures, 2);
        assert_eq!(get(NO_EXPERIMENT).recall, 0.0);
    }

    #[test]
    fn the_bootstrap_interval_brackets_the_mean_and_collapses_for_constant_data() {
        let (m, lo, hi) = bootstrap_ci(&[0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0], 500, 3);
        assert_eq!(m, 0.5);
        assert!(
            lo < 0.5 && hi > 0.5 && lo >= 0.0 && hi <= 1.0,
            "[{lo}, {hi}]"
        );
        assert_eq!(bootstrap_ci(&[0.3; 5], 100, 1), (0.3, 0.3, 0.3));
    }

    #[test]
    fn a_malformed_truth_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let (e, t) = (dir.path().join("e.jsonl"), dir.path().join("t.jsonl"));
        std::fs::write(&e, "").unwrap();
        std::fs::write(&t, "{\"user_id\":\"u\",\"items\":[]}\n{\"user\":1}\n").unwrap();
        let err = evaluate(&e, &t, 10, 0).unwrap_err().to_string();
        assert!(err.contains("t.jsonl:2:"), "{err}");
    }
}
