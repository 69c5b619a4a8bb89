//! `kan train` reports each epoch on stderr when its output is not a terminal (a Kubernetes
//! Job's log, CI's), where a progress bar draws nothing; `--quiet` silences it.

use std::path::Path;
use std::process::Command;

/// Users in two communities of items, in time order.
fn write_data(dir: &Path) {
    let mut csv = String::from("user_id,item_id,timestamp\n");
    for u in 0..40 {
        let base = if u % 2 == 0 { 0 } else { 10 };
        for t in 0..8 {
            csv.push_str(&format!("u{u},i{},{}\n", base + (u + t) % 10, 1000 + t));
        }
    }
    std::fs::write(dir.join("interactions.csv"), csv).expect("data written");
}

fn train(data: &Path, out: &Path, quiet: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kan"));
    cmd.args([
        "train",
        "--strategy",
        "dssm",
        "--format",
        "csv",
        "--split",
        "temporal",
    ])
    .args(["--epochs", "3", "--dim", "8", "--param", "patience=5"])
    .arg("--data")
    .arg(data)
    .arg("--out")
    .arg(out);
    if quiet {
        cmd.arg("--quiet");
    }
    let out = cmd.output().expect("kan runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn training_logs_one_line_per_epoch_with_validation_recall_and_time_left() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_data(tmp.path());
    let (ok, stderr) = train(tmp.path(), &tmp.path().join("bundle"), false);
    assert!(ok, "{stderr}");
    for epoch in 1..=3 {
        assert!(
            stderr.contains(&format!("dssm epoch {epoch}/3: train loss ")),
            "epoch {epoch} missing from:\n{stderr}"
        );
    }
    assert!(stderr.contains("valid R@20 "), "{stderr}");
    assert!(stderr.contains("at most 2 epochs left (≤ "), "{stderr}");

    let (ok, stderr) = train(tmp.path(), &tmp.path().join("quiet"), true);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("dssm epoch"), "{stderr}");
}
