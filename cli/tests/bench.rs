//! `kan bench gateway` through the binary: a short run prints its report as JSON on stdout, with
//! and without the production telemetry installed.

use std::process::Command;

fn bench_gateway(extra: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args([
            "bench",
            "gateway",
            "--queues",
            "2",
            "--candidates",
            "20",
            "--k",
            "10",
            "--concurrency",
            "2",
            "--duration-s",
            "1",
            "--warmup-s",
            "0",
        ])
        .args(extra)
        .output()
        .expect("run kan");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is the JSON report alone")
}

#[test]
fn a_short_gateway_benchmark_reports_on_stdout_with_or_without_telemetry() {
    for extra in [&[][..], &["--telemetry"], &["--json-answers"]] {
        let report = bench_gateway(extra);
        assert!(
            report["requests"].as_u64().expect("requests") > 0,
            "{extra:?}"
        );
        assert_eq!(report["errors"], 0, "{extra:?}");
        assert_eq!(report["mean_returned"], 10.0, "{extra:?}");
    }
}
