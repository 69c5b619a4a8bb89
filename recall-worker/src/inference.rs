//! ONNX user encoders through ort (`load-dynamic`): the ONNX Runtime library is loaded once per
//! process from `--ort-dylib` or `ORT_DYLIB_PATH`, sessions are checked against the encoder
//! contract at load time, and a small pool of sessions serves concurrent requests
//! (`Session::run` needs `&mut`).
//!
//! Contract: inputs `history_ids` i64[B, L] and `history_mask` f32[B, L], output
//! `user_embedding` f32[B, D] (L2-normalised), or f32[B, K, D] for a multi-interest model (K
//! vectors per user, each L2-normalised; the worker searches each and merges the lists with
//! [`kan_core::interests::merge`]). A model with other required inputs is refused.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, TensorElementType, ValueType};

use kan_core::interests::MAX_INTERESTS;

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
    /// True when `user_embedding` is `[B, K, D]` (K interest vectors per user).
    pub multi_interest: bool,
    /// `K` of a `[B, K, D]` output when the model fixes it.
    pub interests: Option<usize>,
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
                  elem: TensorElementType,
                  ranks: &[usize]|
     -> Result<Vec<i64>> {
        match ty {
            None => Err(Error::Model(format!(
                "model.onnx has no {kind} '{name}': the encoder contract needs {INPUT_IDS} i64[B, L], {INPUT_MASK} f32[B, L] -> {OUTPUT} f32[B, D] (or f32[B, K, D] for K interest vectors)"
            ))),
            Some(ValueType::Tensor { ty, shape, .. })
                if ty == elem && ranks.contains(&shape.len()) =>
            {
                Ok(shape.to_vec())
            }
            Some(other) => Err(Error::Model(format!(
                "model.onnx {kind} '{name}' is {other:?}, expected a {} {elem:?} tensor",
                if ranks.len() == 1 {
                    "rank-2"
                } else {
                    "[B, D] or [B, K, D]"
                }
            ))),
        }
    };
    let ids = expect(
        "input",
        INPUT_IDS,
        find(inputs, INPUT_IDS),
        TensorElementType::Int64,
        &[2],
    )?;
    let mask = expect(
        "input",
        INPUT_MASK,
        find(inputs, INPUT_MASK),
        TensorElementType::Float32,
        &[2],
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
        &[2, 3],
    )?;
    let out_dim = out[out.len() - 1];
    if out_dim > 0 && out_dim as usize != dim {
        return Err(Error::Model(format!(
            "model.onnx outputs {OUTPUT} of dimension {out_dim}, but the bundle's item vectors have {dim}"
        )));
    }
    let multi_interest = out.len() == 3;
    let interests = if multi_interest { fixed(out[1]) } else { None };
    if let Some(k) = interests
        && k > MAX_INTERESTS
    {
        return Err(Error::Model(format!(
            "model.onnx outputs {k} interest vectors per user ({OUTPUT} [B, {k}, D]); the worker searches at most {MAX_INTERESTS}"
        )));
    }
    Ok(Declared {
        history_length: fixed(ids[1]).or(fixed(mask[1])),
        dim: fixed(out_dim),
        multi_interest,
        interests,
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
    /// L2 norm of the trial user vector (the contract asks for 1); for a multi-interest model
    /// the one farthest from 1.
    pub output_norm: f32,
    /// User vectors per history (1, or K of a `[B, K, D]` model).
    pub interests: usize,
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
    let users = encoder.encode(&[last as u32, 0]).map_err(|e| {
        Error::Model(format!(
            "model.onnx failed on a history holding the last listed item (index {last}): its item table must cover all {n_items} items of the item list: {e}"
        ))
    })?;
    if let Some(bad) = users.iter().flatten().find(|x| !x.is_finite()) {
        return Err(Error::Model(format!(
            "model.onnx produced a non-finite {OUTPUT} value ({bad}) on a trial history"
        )));
    }
    // The norm farthest from 1 among the interest vectors.
    let output_norm = users
        .iter()
        .map(|u| u.iter().map(|x| x * x).sum::<f32>().sqrt())
        .max_by(|a, b| (a - 1.0).abs().total_cmp(&(b - 1.0).abs()))
        .unwrap_or(0.0);
    Ok(ModelCheck {
        history_length,
        output_norm,
        interests: users.len(),
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

    /// The user vectors for a history (internal item indices, most recent first; only the first
    /// `L` are used, the rest is padding with mask 0): one for a `[B, D]` model, K for a
    /// `[B, K, D]` one.
    pub fn encode(&self, history: &[u32]) -> Result<Vec<Vec<f32>>> {
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
        user_vectors(shape, data, self.dim)
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

/// The user vectors in one history's `user_embedding` output (`[1, D]` or `[1, K, D]`), or an
/// inference error naming the shape that does not fit.
pub fn user_vectors(shape: &[i64], data: &[f32], dim: usize) -> Result<Vec<Vec<f32>>> {
    let k = match shape {
        [1, d] if *d as usize == dim => 1,
        [1, k, d] if *d as usize == dim && (1..=MAX_INTERESTS as i64).contains(k) => *k as usize,
        _ => {
            return Err(Error::Inference(format!(
                "{OUTPUT} has shape {shape:?}, expected [1, {dim}] or [1, K, {dim}] with 1 <= K <= {MAX_INTERESTS}"
            )));
        }
    };
    if dim == 0 || data.len() != k * dim {
        return Err(Error::Inference(format!(
            "{OUTPUT} holds {} values for shape {shape:?}",
            data.len()
        )));
    }
    Ok(data.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(ty: TensorElementType, shape: &[i64]) -> ValueType {
        ValueType::Tensor {
            ty,
            shape: ort::value::Shape::new(shape.iter().copied()),
            dimension_symbols: ort::value::SymbolicDimensions::empty(shape.len()),
        }
    }

    type Io = Vec<(String, ValueType)>;

    fn io(output: &[i64]) -> (Io, Io) {
        let inputs = vec![
            (
                INPUT_IDS.to_string(),
                tensor(TensorElementType::Int64, &[-1, 20]),
            ),
            (
                INPUT_MASK.to_string(),
                tensor(TensorElementType::Float32, &[-1, 20]),
            ),
        ];
        let outputs = vec![(
            OUTPUT.to_string(),
            tensor(TensorElementType::Float32, output),
        )];
        (inputs, outputs)
    }

    #[test]
    fn the_contract_takes_one_vector_or_k_interest_vectors_per_user() {
        let (i, o) = io(&[-1, 8]);
        let one = check_contract(&i, &o, 8).unwrap();
        assert!(!one.multi_interest);
        assert_eq!(
            (one.history_length, one.dim, one.interests),
            (Some(20), Some(8), None)
        );
        let (i, o) = io(&[-1, 3, 8]);
        let three = check_contract(&i, &o, 8).unwrap();
        assert!(three.multi_interest);
        assert_eq!((three.dim, three.interests), (Some(8), Some(3)));
        let (i, o) = io(&[-1, -1, 8]);
        let dynamic = check_contract(&i, &o, 8).unwrap();
        assert!(dynamic.multi_interest && dynamic.interests.is_none());
    }

    #[test]
    fn interest_outputs_of_the_wrong_width_rank_or_count_are_refused_with_the_reason() {
        let (i, o) = io(&[-1, 2, 16]);
        let e = check_contract(&i, &o, 8).unwrap_err().to_string();
        assert!(e.contains("dimension 16") && e.contains("have 8"), "{e}");
        let (i, o) = io(&[-1, 2, 2, 8]);
        let e = check_contract(&i, &o, 8).unwrap_err().to_string();
        assert!(e.contains("[B, D] or [B, K, D]"), "{e}");
        let (i, o) = io(&[-1, 40, 8]);
        let e = check_contract(&i, &o, 8).unwrap_err().to_string();
        assert!(
            e.contains("40 interest vectors") && e.contains("at most 16"),
            "{e}"
        );
    }

    #[test]
    fn an_encoder_answer_splits_into_one_vector_per_interest() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
        assert_eq!(
            user_vectors(&[1, 3, 2], &data, 2).unwrap(),
            vec![vec![0.0, 1.0], vec![2.0, 3.0], vec![4.0, 5.0]]
        );
        assert_eq!(
            user_vectors(&[1, 2], &data[..2], 2).unwrap(),
            vec![vec![0.0, 1.0]]
        );
        for bad in [&[1i64, 3, 3][..], &[2, 3, 2], &[1, 0, 2], &[1, 6]] {
            let e = user_vectors(bad, &data, 2).unwrap_err().to_string();
            assert!(e.contains("expected [1, 2] or [1, K, 2]"), "{bad:?}: {e}");
        }
        let e = user_vectors(&[1, 3, 2], &data[..4], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds 4 values"), "{e}");
    }

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
