//! A moto S3 server for one test: started on a free port, prepared by `moto_setup.py` (an access
//! key, buckets, optionally request authentication), killed on drop. Installed on first use by
//! `scripts/install-moto.sh` when `$KAN_TOOLS/moto` is missing.
//!
//! Shared by the worker's and the CLI's tests (the CLI includes this file by path).
#![allow(dead_code)] // each including test crate uses a part

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kan_worker::bundle::RemoteOptions;

const SETUP: &str = include_str!("moto_setup.py");

pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

fn tools() -> PathBuf {
    std::env::var_os("KAN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/kan-tools")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Moto {
    /// Starts moto with `buckets`; with `auth`, requests must be signed with [`Moto::options`]'s key.
    pub fn start(auth: bool, buckets: &[&str]) -> Moto {
        let venv = tools().join("moto");
        if !venv.join("bin/moto_server").exists() {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-moto.sh");
            let status = Command::new(&script)
                .status()
                .expect("runs install-moto.sh");
            assert!(
                status.success(),
                "moto is needed for the object-storage tests: run scripts/install-tools.sh"
            );
        }
        let port = free_port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Moto {
            child,
            endpoint,
            key_id: String::new(),
            secret: String::new(),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut setup = Command::new(venv.join("bin/python"));
        setup.args([
            "-c",
            SETUP,
            &moto.endpoint,
            if auth { "--auth" } else { "--no-auth" },
        ]);
        setup.args(buckets);
        let out = setup.output().expect("moto_setup.py runs");
        assert!(
            out.status.success(),
            "moto setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("setup prints JSON");
        moto.key_id = key["id"].as_str().expect("id").to_string();
        moto.secret = key["secret"].as_str().expect("secret").to_string();
        moto
    }

    /// Settings that reach this server with its valid key.
    pub fn options(&self) -> RemoteOptions {
        self.options_with_secret(&self.secret.clone())
    }

    /// Settings with the right key id and the given secret.
    pub fn options_with_secret(&self, secret: &str) -> RemoteOptions {
        RemoteOptions {
            endpoint: Some(self.endpoint.clone()),
            settings: vec![
                ("aws_access_key_id".into(), self.key_id.clone()),
                ("aws_secret_access_key".into(), secret.into()),
                ("aws_region".into(), "us-east-1".into()),
            ],
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
