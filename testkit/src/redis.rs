//! A real `redis-server` for tests: on a free loopback port, its files in a temporary directory,
//! with the durability settings of production (`appendonly yes`, `appendfsync always`), killed
//! when dropped.
//!
//! When the binary is missing the tests that need it skip with a loud message, unless
//! `KAN_REQUIRE_REDIS` is set (CI sets it, after `scripts/install-redis.sh`): then a missing
//! server fails the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`; killed (SIGKILL) on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    binary: PathBuf,
}

/// The `redis-server` binary: `KAN_REDIS_SERVER`, else the first on `PATH`.
fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KAN_REDIS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisServer {
    /// Starts a server, or returns `None` (after printing why) when `redis-server` is not
    /// installed and `KAN_REQUIRE_REDIS` is unset. Panics when it is required but missing, or
    /// installed but does not start: both are broken test machines, not skips.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = find_binary() else {
            if std::env::var_os("KAN_REQUIRE_REDIS").is_some() {
                panic!(
                    "KAN_REQUIRE_REDIS is set but redis-server is not installed: run scripts/install-redis.sh"
                );
            }
            eprintln!(
                "\n!!! SKIPPED: redis-server is not installed, so this Redis test did not run. \
                 Run scripts/install-redis.sh (CI sets KAN_REQUIRE_REDIS=1 to make this a failure).\n"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        let port = free_port().expect("a free loopback port");
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            binary,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        // A fresh log per start: readiness is read from it.
        let log = self.dir.path().join("redis.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready(&log);
    }

    /// Waits until the server accepts connections (up to 10 s).
    fn wait_ready(&self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::fs::read_to_string(log)
                    .is_ok_and(|l| l.contains("Ready to accept connections"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("redis-server did not start on port {}:\n{log}", self.port);
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL: no shutdown, no final save; only what was fsynced survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (it replays its append-only
    /// file).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
