//! `kan bench gateway`, `kan bench soak` and `kan bench platform` through the binary: a short
//! run prints its report as JSON on stdout (the gateway benchmark with and without the
//! production telemetry installed; the soak against `kan gateway` started as a child process);
//! the platform benchmark fails clearly when its directory or its queues are not there.

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

#[test]
fn a_short_soak_reports_admitted_shed_goodput_and_recovery_as_json() {
    let output = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args([
            "bench",
            "soak",
            "--queues",
            "3",
            "--candidates",
            "20",
            "--k",
            "10",
            "--capacity-s",
            "1",
            "--concurrency",
            "2",
            "--overload",
            "2",
            "--duration-s",
            "2",
            "--max-client-in-flight",
            "256",
            "--settle-s",
            "0",
        ])
        .output()
        .expect("run kan");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is the JSON report alone");
    let n = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {report}"))
    };
    assert!(n("sent") > 0, "{report}");
    assert_eq!(
        n("admitted") + n("shed") + n("errors"),
        n("sent"),
        "{report}"
    );
    assert!(n("answered_with_candidates") > 0, "{report}");
    assert_eq!(n("server_errors_other_than_shedding"), 0, "{report}");
    // `kan gateway` ran as its own process: the memory figures are its own.
    assert_eq!(report["measured"], "gateway process", "{report}");
    if cfg!(target_os = "linux") {
        assert!(n("rss_before_kib") > 0 && n("fds_after") > 0, "{report}");
    }
    for key in ["admitted_p99_ms", "capacity_rps", "recovery_ms"] {
        assert!(report[key].as_f64().is_some(), "{key}: {report}");
    }
}

#[test]
fn a_platform_benchmark_on_a_missing_directory_says_so_and_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args(["bench", "platform", "/nonexistent/kan-quickstart"])
        .output()
        .expect("run kan");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is not a directory of Kan YAML files"),
        "{stderr}"
    );
}

#[test]
fn a_platform_benchmark_whose_queues_never_get_ready_stops_at_the_ready_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args(["bench", "platform", "--ready-timeout-s", "2"])
        .arg(dir.path())
        .output()
        .expect("run kan");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did not have every queue ready") && stderr.contains("kan-up.log"),
        "{stderr}"
    );
}
