//! `kan gateway` started on a routing config it refuses: it serves `/readyz` 503 with the
//! reason and answers recalls 503 instead of exiting (a pod would crash-loop), then loads a
//! valid config when the file changes (the mounted ConfigMap is updated).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the gateway when the test ends, passed or not.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.1 exchange: (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    Some((status, response.split_once("\r\n\r\n")?.1.to_string()))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Replaces `path` in one rename, as the kubelet swaps a ConfigMap volume's content.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A queue timeout above the deadline: parses, but the gateway refuses it.
const REFUSED: &str = "gateway: feed\nqueues: [{name: popular, timeoutMs: 500}]\ndeadlineMs: 100\n";
const VALID: &str = "gateway: feed\nqueues: [{name: popular}]\ndeadlineMs: 100\n";
const RECALL: &str = r#"{"user_id": "u1", "k": 5}"#;

fn gateway(config: &Path, watch: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kan"));
    command
        .args(["gateway", "--log-format", "text", "--config"])
        .arg(config)
        .env_remove("KAN_AUTH_TOKEN_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !watch {
        command.arg("--no-watch");
    }
    command
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gateway_started_on_a_refused_config_is_not_ready_refuses_recalls_and_loads_the_next_valid_one()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("routing.yaml");
    std::fs::write(&config, REFUSED).expect("write");
    let port = free_port();
    let child = gateway(&config, true)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("kan gateway starts");
    let _gateway = Gateway(child);
    eventually("the gateway to listen", || {
        http(port, "GET", "/healthz", "").is_some()
    });

    let (status, body) = http(port, "GET", "/readyz", "").expect("readyz");
    assert_eq!(status, 503, "{body}");
    let readiness = json(&body);
    assert_eq!(readiness["ready"], false);
    assert_eq!(readiness["config_rejected"], true);
    let reason = readiness["config_error"].as_str().expect("config_error");
    assert!(reason.contains("timeoutMs"), "{reason}");

    let (status, body) = http(port, "POST", "/v1/recall", RECALL).expect("recall");
    assert_eq!(status, 503, "{body}");
    let error = json(&body);
    assert_eq!(error["error"]["code"], "unavailable");
    let message = error["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("no valid routing config") && message.contains("timeoutMs"),
        "{message}"
    );
    let (_, metrics) = http(port, "GET", "/metrics", "").expect("metrics");
    assert!(
        metrics.contains("kan_gateway_config_rejected 1"),
        "{metrics}"
    );

    replace(&config, VALID);
    eventually("the valid config to load", || {
        http(port, "GET", "/readyz", "").is_some_and(|(status, _)| status == 200)
    });
    let (_, body) = http(port, "GET", "/readyz", "").expect("readyz");
    let readiness = json(&body);
    assert_eq!(readiness["ready"], true);
    assert_eq!(readiness["config_rejected"], false);
    assert_eq!(readiness["gateway"], "feed");
    let (status, body) = http(port, "POST", "/v1/recall", RECALL).expect("recall");
    assert_eq!(status, 200, "{body}");
    // The queue has no endpoint in this config: reported, never called.
    assert_eq!(json(&body)["queues"][0]["status"], "skipped", "{body}");
    let (_, metrics) = http(port, "GET", "/metrics", "").expect("metrics");
    assert!(
        metrics.contains("kan_gateway_config_rejected 0"),
        "{metrics}"
    );
}

#[test]
fn without_a_watch_a_refused_first_config_is_an_error_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("routing.yaml");
    std::fs::write(&config, REFUSED).expect("write");
    let output = gateway(&config, false)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("kan gateway runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("timeoutMs"), "{stderr}");
}
