//! An Azurite blob service (Microsoft's Azure Storage emulator, from npm) for one test: started
//! on a free port with its data in a temporary directory, containers created by
//! `azurite_setup.js` (a Shared Key-signed REST call), killed on drop. Installed on first use by
//! `scripts/install-azurite.sh` when `$KAN_TOOLS/azurite` is missing; `None` (the test skips)
//! when it cannot be installed, unless `KAN_REQUIRE_AZURITE` is set.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kan_worker::bundle::RemoteOptions;

const SETUP: &str = include_str!("azurite_setup.js");
/// The emulator's well-known account and key (public, documented by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    _data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
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

impl Azurite {
    /// Starts the blob service with `containers`, or `None` when Azurite is not to be had.
    pub fn start(containers: &[&str]) -> Option<Azurite> {
        // One install at a time: tests of this binary start in parallel.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
        let bin = tools().join("azurite/node_modules/.bin/azurite-blob");
        if !bin.exists() {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-azurite.sh");
            let installed = Command::new(&script).status().is_ok_and(|s| s.success());
            if !installed || !bin.exists() {
                assert!(
                    std::env::var_os("KAN_REQUIRE_AZURITE").is_none(),
                    "azurite is required (KAN_REQUIRE_AZURITE) but could not be installed"
                );
                eprintln!("SKIPPED: azurite is not installed (scripts/install-azurite.sh)");
                return None;
            }
        }
        drop(installing);
        let data = tempfile::tempdir().expect("a data directory");
        let port = free_port();
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args(["--silent", "--skipApiVersionCheck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob starts");
        let azurite = Azurite {
            child,
            _data: data,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "azurite did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = Command::new("node")
            .args(["-e", SETUP, "--", &azurite.endpoint, ACCOUNT, KEY])
            .args(containers)
            .output()
            .expect("node runs azurite_setup.js");
        assert!(
            out.status.success(),
            "azurite setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(azurite)
    }

    /// Settings that reach this server with the account key `key`.
    pub fn options_with_key(&self, key: &str) -> RemoteOptions {
        RemoteOptions {
            endpoint: None,
            settings: vec![
                ("azure_storage_account_name".into(), ACCOUNT.into()),
                ("azure_storage_account_key".into(), key.into()),
                (
                    "azure_storage_endpoint".into(),
                    format!("{}/{ACCOUNT}", self.endpoint),
                ),
                ("allow_http".into(), "true".into()),
            ],
        }
    }

    pub fn options(&self) -> RemoteOptions {
        self.options_with_key(KEY)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
