//! ONNX user encoders through ort (`load-dynamic`): the ONNX Runtime library is loaded once per
//! process from `--ort-dylib` or `ORT_DYLIB_PATH`, sessions are checked against the encoder
//! contract at load time, and a small pool of sessions serves concurrent requests
//! (`Session::run` needs `&mut`).
//!
//! Contract: inputs `history_ids` i64[B, L] and `history_mask` f32[B, L], output
//! `user_embedding` f32[B, D] (L2-normalised). A model with other required inputs is refused.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use crate::error::{Error, Result};

/// Input names of the encoder contract.
pub const INPUT_IDS: &str = "history_ids";
pub const INPUT_MASK: &str = "history_mask";
/// Output name of the encoder contract.
pub const OUTPUT: &str = "user_embedding";
/// Environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

static RUNTIME: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// Where the ONNX Runtime library is: the flag, else `ORT_DYLIB_PATH`.
pub fn dylib_path(flag: Option<&Path>) -> Result<PathBuf> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os(DYLIB_ENV).filter(|v| !v.is_empty()).map(PathBuf::from).ok_or_else(|| {
            Error::Model(format!(
                "ONNX Runtime is not configured: set {DYLIB_ENV} or pass --ort-dylib to libonnxruntime.so (from the onnxruntime wheel: onnxruntime/capi/libonnxruntime.so.*)"
            ))
        })?,
    };
    if !path.is_file() {
        return Err(Error::Model(format!(
            "ONNX Runtime library {} does not exist: fix --ort-dylib / {DYLIB_ENV}",
            path.display()
        )));
    }
    Ok(path)
}

/// Loads ONNX Runtime once per process. Later calls return the first outcome (a process cannot
/// load a second runtime). ort panics on some load failures; they become errors here.
pub fn init_runtime(dylib: Option<&Path>) -> Result<&'static Environment> {
    if let Some(done) = RUNTIME.get() {
        return done.as_ref().map_err(|e| Error::Model(e.clone()));
    }
    let path = dylib_path(dylib)?;
    let outcome = RUNTIME.get_or_init(|| {
        let load = || -> std::result::Result<Environment, String> {
            let builder = ort::init_from(&path)
                .map_err(|e| format!("loading ONNX Runtime from {}: {e}", path.display()))?;
            builder
                .with_name("kan-worker")
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
    outcome.as_ref().map_err(|e| Error::Model(e.clone()))
}

/// The sizes a model declares beyond the contract's names and types (`None`: dynamic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    /// `L` of `history_ids` / `history_mask` when the model fixes it.
    pub history_length: Option<usize>,
    /// `D` of `user_embedding` when the model fixes it.
    pub dim: Option<usize>,
}

/// History length `pack` uses for a model with a dynamic `L` when none is asked for (the
/// RecallQueue's `historyLength` default).
pub const DEFAULT_HISTORY_LENGTH: usize = 50;

/// Checks a session's declared inputs and outputs against the encoder contract; `dim` is the
/// bundle's embedding dimension. Returns the sizes the model fixes.
pub fn check_contract(
    inputs: &[(String, ValueType)],
    outputs: &[(String, ValueType)],
    dim: usize,
) -> Result<Declared> {
    let find = |list: &[(String, ValueType)], name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    };
    let expect = |kind: &str,
                  name: &str,
                  ty: Option<ValueType>,
                  elem: TensorElementType|
     -> Result<Vec<i64>> {
        match ty {
            None => Err(Error::Model(format!(
                "model.onnx has no {kind} '{name}': the encoder contract needs {INPUT_IDS} i64[B, L], {INPUT_MASK} f32[B, L] -> {OUTPUT} f32[B, D]"
            ))),
            Some(ValueType::Tensor { ty, shape, .. }) if ty == elem && shape.len() == 2 => {
                Ok(shape.to_vec())
            }
            Some(other) => Err(Error::Model(format!(
                "model.onnx {kind} '{name}' is {other:?}, expected a rank-2 {elem:?} tensor"
            ))),
        }
    };
    let ids = expect(
        "input",
        INPUT_IDS,
        find(inputs, INPUT_IDS),
        TensorElementType::Int64,
    )?;
    let mask = expect(
        "input",
        INPUT_MASK,
        find(inputs, INPUT_MASK),
        TensorElementType::Float32,
    )?;
    let fixed = |d: i64| (d > 0).then_some(d as usize);
    if let (Some(a), Some(b)) = (fixed(ids[1]), fixed(mask[1]))
        && a != b
    {
        return Err(Error::Model(format!(
            "model.onnx declares {INPUT_IDS} of length {a} but {INPUT_MASK} of length {b}: both are [B, L]"
        )));
    }
    if let Some((extra, _)) = inputs
        .iter()
        .find(|(n, _)| n != INPUT_IDS && n != INPUT_MASK)
    {
        return Err(Error::Model(format!(
            "model.onnx has input '{extra}', which the worker cannot feed: only {INPUT_IDS} and {INPUT_MASK} are supported"
        )));
    }
    let out = expect(
        "output",
        OUTPUT,
        find(outputs, OUTPUT),
        TensorElementType::Float32,
    )?;
    if out[1] > 0 && out[1] as usize != dim {
        return Err(Error::Model(format!(
            "model.onnx outputs {OUTPUT} of dimension {}, but the bundle's item vectors have {dim}",
            out[1]
        )));
    }
    Ok(Declared {
        history_length: fixed(ids[1]).or(fixed(mask[1])),
        dim: fixed(out[1]),
    })
}

/// One session of `model`, or an error saying the file is not a loadable model.
fn open_session(env: &Environment, model: &Path, threads: usize) -> Result<Session> {
    let bad = |e: ort::Error| Error::Model(format!("{}: {e}", model.display()));
    Session::builder(env)
        .map_err(bad)?
        .with_intra_threads(threads.max(1))
        .map_err(|e| bad(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| bad(e.into()))?
        .commit_from_file(model)
        .map_err(|e| {
            Error::Model(format!(
                "{} is not a loadable ONNX model: {e}",
                model.display()
            ))
        })
}

fn check_session(session: &Session, dim: usize) -> Result<Declared> {
    let io = |list: &[ort::value::Outlet]| {
        list.iter()
            .map(|o| (o.name().to_string(), o.dtype().clone()))
            .collect::<Vec<_>>()
    };
    check_contract(&io(session.inputs()), &io(session.outputs()), dim)
}

/// What [`check_model`] found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelCheck {
    /// The `L` the model will be served with.
    pub history_length: usize,
    /// L2 norm of the trial user vector (the contract asks for 1).
    pub output_norm: f32,
}

/// The checks `kan bundle pack` runs on a model before writing a bundle around it: the encoder
/// contract (the same check as at load), the history length (`asked`, else the model's fixed
/// `L`, else [`DEFAULT_HISTORY_LENGTH`]; a fixed `L` that differs from `asked` is refused), and
/// a trial encoding of a history holding the last of `n_items` items, which fails when the
/// model's item table is shorter than the item list.
pub fn check_model(
    env: &Environment,
    model: &Path,
    dim: usize,
    n_items: usize,
    asked: Option<usize>,
) -> Result<ModelCheck> {
    let declared = check_session(&open_session(env, model, 1)?, dim)?;
    let history_length = match (declared.history_length, asked) {
        (Some(fixed), Some(asked)) if fixed != asked => {
            return Err(Error::Model(format!(
                "model.onnx takes histories of length {fixed}, but --history-length is {asked}: drop the flag or re-export the model"
            )));
        }
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => DEFAULT_HISTORY_LENGTH,
    };
    if history_length == 0 {
        return Err(Error::Model("the history length must be at least 1".into()));
    }
    let encoder = UserEncoder::load(env, model, history_length, dim, 1, 1)?;
    let last = n_items.saturating_sub(1);
    let user = encoder.encode(&[last as u32, 0]).map_err(|e| {
        Error::Model(format!(
            "model.onnx failed on a history holding the last listed item (index {last}): its item table must cover all {n_items} items of the item list: {e}"
        ))
    })?;
    if let Some(bad) = user.iter().find(|x| !x.is_finite()) {
        return Err(Error::Model(format!(
            "model.onnx produced a non-finite {OUTPUT} value ({bad}) on a trial history"
        )));
    }
    Ok(ModelCheck {
        history_length,
        output_norm: user.iter().map(|x| x * x).sum::<f32>().sqrt(),
    })
}

/// A pool of sessions of one encoder model.
pub struct UserEncoder {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    history_length: usize,
    dim: usize,
}

impl UserEncoder {
    /// Loads `model` into `pool` sessions of `threads` intra-op threads each.
    pub fn load(
        env: &Environment,
        model: &Path,
        history_length: usize,
        dim: usize,
        threads: usize,
        pool: usize,
    ) -> Result<Self> {
        let mut sessions = Vec::with_capacity(pool.max(1));
        for _ in 0..pool.max(1) {
            let session = open_session(env, model, threads)?;
            let declared = check_session(&session, dim)?;
            // A fixed L that differs would fail every request in ONNX Runtime; refuse at load.
            if let Some(fixed) = declared.history_length
                && fixed != history_length.max(1)
            {
                return Err(Error::Model(format!(
                    "model.onnx takes histories of length {fixed}, but the queue serves {history_length}: set the bundle's params.history_length (or the strategy's historyLength) to {fixed}"
                )));
            }
            sessions.push(Mutex::new(session));
        }
        Ok(Self {
            sessions,
            next: AtomicUsize::new(0),
            history_length: history_length.max(1),
            dim,
        })
    }

    pub fn history_length(&self) -> usize {
        self.history_length
    }

    /// The user vector for a history (internal item indices, most recent first; only the first
    /// `L` are used, the rest is padding with mask 0).
    pub fn encode(&self, history: &[u32]) -> Result<Vec<f32>> {
        let l = self.history_length;
        let mut ids = vec![0i64; l];
        let mut mask = vec![0f32; l];
        for (i, &item) in history.iter().take(l).enumerate() {
            ids[i] = item as i64;
            mask[i] = 1.0;
        }
        let fail = |e: ort::Error| Error::Inference(e.to_string());
        let ids = Tensor::from_array(([1usize, l], ids)).map_err(fail)?;
        let mask = Tensor::from_array(([1usize, l], mask)).map_err(fail)?;
        let mut session = self.session();
        let outputs = session
            .run(ort::inputs![INPUT_IDS => ids, INPUT_MASK => mask])
            .map_err(fail)?;
        let value = outputs
            .get(OUTPUT)
            .ok_or_else(|| Error::Inference(format!("model produced no {OUTPUT}")))?;
        let (shape, data) = value.try_extract_tensor::<f32>().map_err(fail)?;
        if shape.len() != 2 || shape[1] as usize != self.dim || data.len() < self.dim {
            return Err(Error::Inference(format!(
                "{OUTPUT} has shape {shape:?}, expected [1, {}]",
                self.dim
            )));
        }
        Ok(data[..self.dim].to_vec())
    }

    /// A free session if there is one, else waits on the next in turn.
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        for i in 0..n {
            if let Ok(guard) = self.sessions[(start + i) % n].try_lock() {
                return guard;
            }
        }
        // A poisoned session only means another request panicked mid-run; the session itself
        // holds no Rust state that could be inconsistent.
        self.sessions[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
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
}
