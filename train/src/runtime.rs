//! ONNX Runtime access (ort with `load-dynamic`): the library comes from `ORT_DYLIB_PATH`
//! (`source scripts/env.sh` after `./scripts/install-tools.sh`).

use std::sync::OnceLock;

use ndarray::Array2;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{Error, Result};

static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Path of the ONNX Runtime shared library, if configured and present.
pub fn dylib_path() -> Option<std::path::PathBuf> {
    let p = std::path::PathBuf::from(std::env::var_os("ORT_DYLIB_PATH")?);
    p.is_file().then_some(p)
}

/// The process's ONNX Runtime environment, created on first use. ort allows one environment
/// per process: a program that also runs workers should create sessions through this one.
pub fn environment() -> Result<&'static Environment> {
    ENV.get_or_init(|| {
        let path = dylib_path().ok_or_else(|| {
            "ONNX Runtime not found: set ORT_DYLIB_PATH to libonnxruntime.so (run ./scripts/install-tools.sh, then source scripts/env.sh)".to_string()
        })?;
        ort::init_from(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?
            .with_name("kan-train")
            .build()
            .map_err(|e| format!("cannot create the ONNX Runtime environment: {e}"))
    })
    .as_ref()
    .map_err(|e| Error::Runtime(e.clone()))
}

/// A session over an in-memory model.
pub fn session(model: &[u8]) -> Result<Session> {
    Session::builder(environment()?)
        .map_err(|e| Error::Runtime(e.to_string()))?
        .commit_from_memory(model)
        .map_err(|e| Error::Runtime(format!("cannot load the model: {e}")))
}

/// Runs a user encoder over padded histories; returns one row per history: D values for a
/// `[B, D]` output, K·D (K interest vectors, in order) for a `[B, K, D]` one.
pub fn encode(session: &mut Session, histories: &[&[u32]], l: usize) -> Result<Vec<Vec<f32>>> {
    let b = histories.len();
    let mut ids = Array2::<i64>::zeros((b, l));
    let mut mask = Array2::<f32>::zeros((b, l));
    for (r, h) in histories.iter().enumerate() {
        for (c, &i) in h.iter().take(l).enumerate() {
            ids[[r, c]] = i as i64;
            mask[[r, c]] = 1.0;
        }
    }
    let rt = |e: ort::Error| Error::Runtime(e.to_string());
    let inputs = ort::inputs![
        "history_ids" => TensorRef::from_array_view(&ids).map_err(rt)?,
        "history_mask" => TensorRef::from_array_view(&mask).map_err(rt)?,
    ];
    let outputs = session.run(inputs).map_err(rt)?;
    let out = outputs["user_embedding"]
        .try_extract_array::<f32>()
        .map_err(rt)?;
    let shape = out.shape().to_vec();
    if !(shape.len() == 2 || shape.len() == 3) || shape[0] != b {
        return Err(Error::Runtime(format!(
            "user_embedding has shape {shape:?}, expected [{b}, D] or [{b}, K, D]"
        )));
    }
    let width: usize = shape[1..].iter().product();
    let flat: Vec<f32> = out.iter().copied().collect();
    Ok(flat
        .chunks_exact(width.max(1))
        .map(<[f32]>::to_vec)
        .collect())
}
