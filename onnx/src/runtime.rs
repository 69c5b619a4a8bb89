//! ONNX Runtime through ort (`load-dynamic`): the library is loaded once per process from
//! `--ort-dylib` or `ORT_DYLIB_PATH`, and every session of the process is built on the one
//! environment made here (ort allows one per process).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// Environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Where the ONNX Runtime library is: the flag, else `ORT_DYLIB_PATH`; an error saying how to
/// configure it when neither names an existing file.
pub fn dylib_path(flag: Option<&Path>) -> Result<PathBuf> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os(DYLIB_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                Error::Runtime(format!(
                    "ONNX Runtime is not configured: set {DYLIB_ENV} or pass --ort-dylib to libonnxruntime.so (./scripts/install-tools.sh then `source scripts/env.sh`, or the onnxruntime wheel's onnxruntime/capi/libonnxruntime.so.*)"
                ))
            })?,
    };
    if !path.is_file() {
        return Err(Error::Runtime(format!(
            "ONNX Runtime library {} does not exist: fix --ort-dylib / {DYLIB_ENV}",
            path.display()
        )));
    }
    Ok(path)
}

/// The process's ONNX Runtime environment, loading the library on first use (`dylib`: the
/// `--ort-dylib` flag, else `ORT_DYLIB_PATH`). Later calls return the first outcome: a process
/// cannot load a second runtime. ort panics on some load failures; they become errors here.
pub fn environment(dylib: Option<&Path>) -> Result<&'static Environment> {
    if let Some(done) = ENVIRONMENT.get() {
        return done.as_ref().map_err(|e| Error::Runtime(e.clone()));
    }
    // A bad path is refused before the one-time load, so it cannot poison the process.
    let path = dylib_path(dylib)?;
    let outcome = ENVIRONMENT.get_or_init(|| {
        let load = || -> std::result::Result<Environment, String> {
            ort::init_from(&path)
                .map_err(|e| format!("loading ONNX Runtime from {}: {e}", path.display()))?
                .with_name("kan")
                .build()
                .map_err(|e| format!("starting ONNX Runtime: {e}"))
        };
        std::panic::catch_unwind(AssertUnwindSafe(load)).unwrap_or_else(|_| {
            Err(format!(
                "loading ONNX Runtime from {} panicked",
                path.display()
            ))
        })
    });
    outcome.as_ref().map_err(|e| Error::Runtime(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runtime_library_is_a_clear_error() {
        let e = dylib_path(Some(Path::new("/nonexistent/libonnxruntime.so")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not exist") && e.contains("--ort-dylib"),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_runtime_library_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so");
        std::fs::write(&fake, b"not a shared library").unwrap();
        // No unit test loads the real library (tests/ does, in its own process), so this is
        // the first load of this process.
        let e = environment(Some(&fake))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("libonnxruntime.so"), "{e}");
        // The failure is remembered: a process does not retry a load that failed.
        assert!(environment(None).is_err());
    }
}
