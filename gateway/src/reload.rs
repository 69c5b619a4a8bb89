//! Hot reload: watch the routing file and push every new version into the gateway.
//!
//! The file's directory is watched rather than the file, because Kubernetes updates a mounted
//! ConfigMap by swapping a symlink (`..data`) and editors replace files by renaming; both make a
//! watch on the file itself go stale. Every event re-reads the file and reloads only when its
//! content changed. A file that cannot be read, parsed or validated leaves the old config
//! serving; the error is logged and shown by `/readyz` until a good version arrives.
//!
//! A write that is not atomic (truncate, then write) can be read half-done: an empty or
//! unparseable file is re-read for [`SETTLE`] before it counts as the file's content, so a
//! plain `cp` or editor save does not flash a `config_error`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::config::parse_config;
use crate::error::{Error, Result};
use crate::gateway::GatewayHandle;

/// How long an unparseable version is re-read before it is reported.
pub const SETTLE: Duration = Duration::from_millis(500);
/// Pause between re-reads while settling.
const SETTLE_STEP: Duration = Duration::from_millis(25);

/// Keeps the watch alive; dropping it stops watching.
pub struct ConfigWatcher {
    _watcher: RecommendedWatcher,
}

/// Watches `path` and updates `handle` whenever the file's content changes.
pub fn watch(handle: GatewayHandle, path: &Path) -> Result<ConfigWatcher> {
    let watch_err = |source| Error::Watch {
        path: path.display().to_string(),
        source,
    };
    let file = path.to_path_buf();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let last = Mutex::new(std::fs::read(&file).ok());
    publish_rejected(&handle);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            reload_if_changed(&handle, &file, &last);
        }
    })
    .map_err(watch_err)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    Ok(ConfigWatcher { _watcher: watcher })
}

fn reload_if_changed(handle: &GatewayHandle, file: &Path, last: &Mutex<Option<Vec<u8>>>) {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    let Some((bytes, parsed)) = read_settled(file, last.as_deref()) else {
        // Mid-swap, deleted or unchanged: the next event will tell.
        return;
    };
    *last = Some(bytes);
    match parsed {
        // `update` logs, counts and records its own rejections.
        Ok(config) => {
            let _ = handle.update(config);
        }
        Err(e) => handle.reject(&e),
    }
    publish_rejected(handle);
}

/// Sets the `kan_gateway_config_rejected` gauge from the handle's last error.
fn publish_rejected(handle: &GatewayHandle) {
    let rejected = if handle.last_error().is_some() {
        1.0
    } else {
        0.0
    };
    metrics::gauge!(crate::metrics::CONFIG_REJECTED).set(rejected);
}

/// Reads the file until it parses, changes back to `last`, or [`SETTLE`] has passed with it
/// still unparseable; `None` when it cannot be read or equals `last`.
fn read_settled(
    file: &Path,
    last: Option<&[u8]>,
) -> Option<(Vec<u8>, Result<kan_api::routing::RoutingConfig>)> {
    let started = Instant::now();
    loop {
        let bytes = std::fs::read(file).ok()?;
        if last == Some(bytes.as_slice()) {
            return None;
        }
        let parsed = parse_config(
            &String::from_utf8_lossy(&bytes),
            &file.display().to_string(),
        );
        if parsed.is_ok() || started.elapsed() >= SETTLE {
            return Some((bytes, parsed));
        }
        std::thread::sleep(SETTLE_STEP);
    }
}
