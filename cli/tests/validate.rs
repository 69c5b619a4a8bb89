//! `kan validate` through the binary: each file on its own, then the references across files.

use std::path::Path;
use std::process::Command;

const QUEUE: &str = "apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: editorial}
spec:
  strategy:
    type: operational
    operational:
      items: [{itemId: a}]
";

fn gateway(queue: &str) -> String {
    format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {{name: feed}}\nspec:\n  queues: [{{name: {queue}}}]\n"
    )
}

fn experiment(gateway: &str, traffic: i32) -> String {
    format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: exp}}\nspec:\n  gateway: {gateway}\n  traffic: {traffic}\n  arms: [{{name: control, weight: 50}}, {{name: treatment, weight: 50}}]\n"
    )
}

/// Runs `kan validate` on `paths`; returns success, stdout and stderr.
fn validate(paths: &[&Path]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kan"))
        .arg("validate")
        .args(paths)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_examples_and_the_quickstart_validate_with_their_references() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["examples", "examples/quickstart"] {
        let (ok, stdout, stderr) = validate(&[&root.join(dir)]);
        assert!(ok, "{dir}: {stdout}{stderr}");
    }
}

#[test]
fn a_gateway_naming_a_missing_queue_is_refused_with_file_field_and_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, gateway("nope")).expect("write");
    let (ok, _, stderr) = validate(&[dir.path()]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{}: RecallGateway feed: spec.queues[0].name: RecallQueue 'nope' does not exist: define it or remove the reference",
            file.display()
        )),
        "{stderr}"
    );
    std::fs::write(&file, gateway("editorial")).expect("fix");
    let (ok, _, stderr) = validate(&[dir.path()]);
    assert!(ok, "{stderr}");
}

#[test]
fn an_experiment_naming_a_missing_gateway_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), gateway("editorial")).expect("write");
    let file = dir.path().join("experiment.yaml");
    std::fs::write(&file, experiment("other", 10)).expect("write");
    let (ok, _, stderr) = validate(&[dir.path()]);
    assert!(!ok);
    assert!(
        stderr.contains("RecallExperiment exp: spec.gateway: RecallGateway 'other' does not exist"),
        "{stderr}"
    );
    // Given alone, the experiment is checked on its own: no gateway was given to resolve against.
    let (ok, _, stderr) = validate(&[&file]);
    assert!(ok, "{stderr}");
}

#[test]
fn each_broken_rule_is_reported_once_with_its_path_and_no_doubled_spec_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("experiment.yaml");
    std::fs::write(&file, experiment("feed", 250)).expect("write");
    let (ok, _, stderr) = validate(&[&file]);
    assert!(!ok);
    let first = stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "{}: RecallExperiment exp: spec.traffic: must be between 0 and 100, got 250; \
             spec.bucketStart: bucketStart + traffic * 100 must not exceed 10000 buckets: \
             lower traffic or bucketStart",
            file.display()
        )
    );
}
