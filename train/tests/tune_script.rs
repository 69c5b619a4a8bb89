//! `train/scripts/benchmarks.sh`'s searches widen on their own when the validation winner sits
//! on the edge of the grid: `tune_itemcf` is run against a stand-in `kan` whose validation
//! recall@20 peaks outside every starting grid (α 0.2, β 0.8, top-N 800), with the script
//! sourced exactly as its header says to run one step by hand.

use std::path::Path;
use std::process::Command;

/// A stand-in `kan train`: writes a manifest whose recall@20 is a smooth function of the
/// params, and counts its trainings.
const FAKE_KAN: &str = r#"#!/usr/bin/env bash
set -euo pipefail
out="" alpha=1 beta=0.5 top_n=200
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --param) eval "${2%%=*}=${2#*=}"; shift 2 ;;
    *) shift ;;
  esac
done
mkdir -p "$out"
echo x >> "$COUNT"
r=$(awk -v a="$alpha" -v b="$beta" -v n="$top_n" 'BEGIN {
  l = log(n / 800) / log(2); printf "%.6f", 1 - (a - 0.2)^2 - (b - 0.8)^2 - 0.01 * l * l }')
printf '{"metrics": {"recall@20": %s, "ndcg@20": 0}}\n' "$r" > "$out/manifest.json"
"#;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn tune_itemcf_widens_each_parameter_past_the_grid_edge_its_winner_sits_on() {
    if !have("jq") || !have("awk") {
        eprintln!("skipping: the benchmark script needs jq and awk");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let kan = tmp.path().join("kan");
    std::fs::write(&kan, FAKE_KAN).unwrap();
    let count = tmp.path().join("count");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/benchmarks.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "chmod +x {kan} && source {script} && tune_itemcf ds /nowhere csv random",
            kan = kan.display(),
            script = script.display()
        ))
        .env("KAN", &kan)
        .env("OUT", tmp.path().join("out"))
        .env("COUNT", &count)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let flags = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        flags.trim(),
        "--param top_n=800 --param alpha=0.2 --param beta=0.8",
        "{stderr}"
    );
    // 15 grid points; α 0.4, 0.2; β at α 0.2: four grid values not yet scored, then 0.65, 0.8,
    // 0.95; top-N 100, 200, 400, 800, 1600. Candidates scored before are not trained again.
    let trainings = std::fs::read_to_string(&count).unwrap().lines().count();
    assert_eq!(trainings, 15 + 2 + 4 + 3 + 3 + 2, "{stderr}");
}
