//! `kan up` end to end through the binary: start from a directory, recall through the gateway,
//! edit the directory live, survive an invalid edit, stop cleanly on Ctrl-C.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const QUEUE: &str = "apiVersion: kan.dev/v1alpha1
kind: RecallQueue
metadata: {name: editorial}
spec:
  strategy:
    type: operational
    operational:
      items: [{itemId: a}, {itemId: b}, {itemId: c}]
";
const GATEWAY: &str = "apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata: {name: feed}
spec:
  queues: [{name: editorial}]
";

fn experiment(traffic: i32) -> String {
    format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: exp}}\nspec:\n  gateway: feed\n  traffic: {traffic}\n  arms: [{{name: control, weight: 50}}, {{name: treatment, weight: 50}}]\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// POSTs a recall request; returns the parsed JSON body when the gateway answered 200.
fn recall(port: u16, user: &str) -> Option<serde_json::Value> {
    let body = format!(r#"{{"user_id":"{user}","k":2}}"#);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST /v1/recall HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| serde_json::from_str(body).ok())
        .flatten()
}

/// GETs `path`; returns the body when the gateway answered 200.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The `config_error` of `/readyz`, if any.
fn config_error(port: u16) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&get(port, "/readyz")?).ok()?;
    body["config_error"].as_str().map(str::to_string)
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn start(dir: &Path, port: u16) -> Up {
    Up(Command::new(env!("CARGO_BIN_EXE_kan"))
        .args([
            "up",
            &dir.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--poll-ms",
            "100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kan up starts"))
}

#[test]
fn kan_up_serves_a_directory_and_applies_edits_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    std::fs::write(dir.path().join("experiment.yaml"), experiment(100)).expect("write");
    let port = free_port();
    let mut up = start(dir.path(), port);

    // The operational queue becomes Ready, is routed, and every user is in an arm.
    let first = wait_for("a routed answer", || {
        recall(port, "u1").filter(|r| r["candidates"].as_array().is_some_and(|c| !c.is_empty()))
    });
    let ids: Vec<&str> = first["candidates"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["item_id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        first["candidates"][0]["sources"],
        serde_json::json!(["editorial"])
    );
    assert_eq!(first["assignments"][0]["experiment"], "exp");

    // Turning the experiment's traffic down takes effect without a restart.
    std::fs::write(dir.path().join("experiment.yaml"), experiment(0)).expect("write");
    wait_for("the experiment to be switched off", || {
        recall(port, "u1").filter(|r| r["assignments"].as_array().is_some_and(|a| a.is_empty()))
    });

    // An invalid edit is rejected and the platform keeps serving the last good state.
    std::fs::write(dir.path().join("experiment.yaml"), experiment(250)).expect("write");
    std::thread::sleep(Duration::from_millis(500));
    let still = recall(port, "u1").expect("still serving");
    assert_eq!(still["candidates"].as_array().map(Vec::len), Some(2));
    // ... and shown in /readyz and /stats until fixed, without "spec: spec:".
    let refused = wait_for("the refused edit in /readyz", || config_error(port));
    assert!(refused.contains("traffic"), "{refused}");
    assert!(!refused.contains("spec: spec:"), "{refused}");
    let stats: serde_json::Value =
        serde_json::from_str(&get(port, "/stats").expect("stats")).expect("json");
    assert!(
        stats["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("traffic")),
        "{stats}"
    );
    std::fs::write(dir.path().join("experiment.yaml"), experiment(0)).expect("write");
    wait_for("the fix to clear the error", || {
        config_error(port).is_none().then_some(())
    });

    // A gateway routing to a queue no file defines is refused too, naming file, field and
    // queue, and the last good state keeps serving until the reference is fixed.
    std::fs::write(
        dir.path().join("gateway.yaml"),
        GATEWAY.replace("[{name: editorial}]", "[{name: editorial}, {name: nope}]"),
    )
    .expect("write");
    let dangling = wait_for("the dangling queue in /readyz", || config_error(port));
    assert!(
        dangling.contains("gateway.yaml: RecallGateway feed: spec.queues[1].name: RecallQueue 'nope' does not exist"),
        "{dangling}"
    );
    let still = recall(port, "u1").expect("still serving");
    assert_eq!(still["degraded"], serde_json::json!(false), "{still}");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    wait_for("the fixed reference to clear the error", || {
        config_error(port).is_none().then_some(())
    });

    // A file caught mid-write (empty) is "not changed yet": the queue keeps serving, on the
    // same worker, and the file is reported until it is whole again.
    let before = get(port, "/ui/config").expect("config");
    std::fs::write(dir.path().join("queue.yaml"), "").expect("truncate");
    let waiting = wait_for("the empty file in /readyz", || config_error(port));
    assert!(waiting.contains("not changed yet"), "{waiting}");
    let still = recall(port, "u2").expect("still serving");
    assert_eq!(still["candidates"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        get(port, "/ui/config").expect("config"),
        before,
        "not a deletion"
    );
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    wait_for("the whole file to clear the report", || {
        config_error(port).is_none().then_some(())
    });

    // Ctrl-C stops it cleanly.
    let pid = up.0.id().to_string();
    Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    let status = wait_for("kan up to exit", || up.0.try_wait().ok().flatten());
    assert!(status.success(), "kan up exited with {status}");
}

#[test]
fn kan_up_refuses_an_invalid_directory_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    std::fs::write(dir.path().join("experiment.yaml"), experiment(250)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args([
            "up",
            &dir.path().display().to_string(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("traffic"), "{stderr}");
}

#[test]
fn a_queue_whose_bundle_does_not_load_is_reported_for_the_console_until_it_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let port = free_port();
    let _up = start(dir.path(), port);
    wait_for("a routed answer", || recall(port, "u1"));
    let problems = |port| -> Option<serde_json::Value> {
        let stats: serde_json::Value = serde_json::from_str(&get(port, "/stats")?).ok()?;
        Some(stats["queue_problems"].clone())
    };
    assert_eq!(problems(port), Some(serde_json::json!({})));

    let missing = dir.path().join("no-such-bundle");
    std::fs::write(
        dir.path().join("broken.yaml"),
        format!(
            "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {{name: broken}}\nspec:\n  strategy: {{type: popular}}\n  bundle: {{uri: {}}}\n",
            missing.display()
        ),
    )
    .expect("write");
    let reason = wait_for("the broken queue's problem", || {
        problems(port)?["broken"].as_str().map(str::to_string)
    });
    assert!(
        reason.contains("no-such-bundle") && reason.contains("manifest.json"),
        "{reason}"
    );
    // The rest keeps serving meanwhile.
    assert!(recall(port, "u1").is_some());

    std::fs::remove_file(dir.path().join("broken.yaml")).expect("remove");
    wait_for("no problem left", || {
        problems(port)
            .filter(|p| p.as_object().is_some_and(|o| o.is_empty()))
            .map(|_| ())
    });
}

/// The console page, rendered by a real browser (Debian's headless Chromium): the queues table
/// and the "try a user" view are filled by the page's own script from the live gateway.
#[test]
fn the_console_page_shows_queues_arms_and_a_users_candidates_in_a_browser() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) else {
        assert!(
            std::env::var_os("KAN_REQUIRE_TOOLS").is_none(),
            "chromium is required (KAN_REQUIRE_TOOLS is set): scripts/install-tools.sh installs it with apt"
        );
        eprintln!(
            "SKIPPED: chromium is not installed (scripts/install-tools.sh installs it with apt)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    std::fs::write(dir.path().join("experiment.yaml"), experiment(100)).expect("write");
    let port = free_port();
    let _up = start(dir.path(), port);
    wait_for("a routed answer", || {
        recall(port, "u1").filter(|r| r["candidates"].as_array().is_some_and(|c| !c.is_empty()))
    });

    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=5000",
            "--dump-dom",
            &format!("http://127.0.0.1:{port}/ui?user=u1"),
        ])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<td>editorial</td><td><span class=\"ok\">ready</span>"),
        "queues table:\n{dom}"
    );
    assert!(
        dom.contains("exp = control") || dom.contains("exp = treatment"),
        "arms:\n{dom}"
    );
    assert!(
        dom.contains("<td>1</td><td>a</td>"),
        "merged candidates:\n{dom}"
    );
    assert!(
        dom.contains("<th>editorial · ok</th>"),
        "per-queue list:\n{dom}"
    );
}

/// POSTs `body` to `path`: (status line, body).
fn post(port: u16, path: &str, body: &str) -> Option<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

#[test]
fn kan_up_takes_events_into_its_in_process_store_and_refuses_a_bad_batch_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("queue.yaml"), QUEUE).expect("write");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let port = free_port();
    let _up = start(dir.path(), port);
    wait_for("the gateway", || get(port, "/healthz"));
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let good = format!(
        r#"{{"events": [{{"id": "e1", "user_id": "u1", "item_id": "a", "action": "like", "ts": {ts}}}]}}"#
    );
    let (status, body) = post(port, "/v1/events", &good).expect("answer");
    assert!(status.contains("200"), "{status} {body}");
    let ack: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ack["stored"], 1);
    let (_, body) = post(port, "/v1/events", &good).expect("answer");
    let retry: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (retry["stored"].as_u64(), retry["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let bad = good.replace(r#""action": "like""#, r#""action": "wink""#);
    let (status, body) = post(port, "/v1/events", &bad).expect("answer");
    assert!(status.contains("400"), "{status}");
    let error: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(error["error"]["field"], "events[0].action");
    let readout: serde_json::Value =
        serde_json::from_str(&get(port, "/v1/experiments/readout").expect("readout"))
            .expect("json");
    assert_eq!(
        readout["arms"],
        serde_json::json!([]),
        "no exposure log configured"
    );
}
