//! A user encoder: a pool of ONNX Runtime sessions of one model meeting the
//! [contract](crate::contract), each run on one history (`Session::run` needs `&mut`, so
//! concurrent callers take different sessions). The worker serves with it and `kan eval` scores
//! with it, one history per run padded to `L` in both: a batch of several users has another
//! shape, which ONNX Runtime need not reduce in the same order, so its floats need not be the
//! served ones.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use crate::contract::{
    DEFAULT_HISTORY_LENGTH, Declared, INPUT_IDS, INPUT_MASK, OUTPUT, check_contract, user_vectors,
};
use crate::error::{Error, Result};

/// Where a model comes from: a file (bundles, `kan bundle pack`) or bytes (freshly exported).
#[derive(Clone, Copy, Debug)]
pub enum Model<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

impl Model<'_> {
    fn describe(&self) -> String {
        match self {
            Model::File(p) => p.display().to_string(),
            Model::Bytes(_) => "the in-memory model".to_string(),
        }
    }
}

/// One session of `model`, or an error saying the file is not a loadable model.
fn open_session(env: &Environment, model: Model<'_>, threads: usize) -> Result<Session> {
    let name = model.describe();
    let bad = |e: ort::Error| Error::Model(format!("{name}: {e}"));
    let mut builder = Session::builder(env)
        .map_err(bad)?
        .with_intra_threads(threads.max(1))
        .map_err(|e| bad(e.into()))?
        .with_inter_threads(1)
        .map_err(|e| bad(e.into()))?;
    match model {
        Model::File(path) => builder.commit_from_file(path),
        Model::Bytes(bytes) => builder.commit_from_memory(bytes),
    }
    .map_err(|e| Error::Model(format!("{name} is not a loadable ONNX model: {e}")))
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
    let declared = check_session(&open_session(env, Model::File(model), 1)?, dim)?;
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
    let encoder = UserEncoder::load(env, Model::File(model), history_length, dim, 1, 1)?;
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
    /// Loads `model` into `pool` sessions of `threads` intra-op threads each, to encode the
    /// first `history_length` items of a history.
    pub fn load(
        env: &Environment,
        model: Model<'_>,
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

    /// The vectors a history is searched with, as the worker serves it and `kan eval` scores
    /// it: none for an empty history (cold start: no candidates), else [`UserEncoder::encode`]
    /// with each vector L2-normalised ([`kan_core::vector::normalise`]; the contract asks for
    /// unit vectors, this makes scores cosines for models that do not quite deliver) and the
    /// vectors without direction dropped (they find nothing).
    pub fn query_vectors(&self, history: &[u32]) -> Result<Vec<Vec<f32>>> {
        if history.is_empty() {
            return Ok(Vec::new());
        }
        let mut users = self.encode(history)?;
        users.retain_mut(|u| kan_core::vector::normalise(u));
        Ok(users)
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
