//! ONNX Runtime for the whole process, and the user-encoder contract, written once for the
//! worker (serving) and `kan train` / `kan eval` (scoring). ort allows one environment per
//! process: a process that both evaluates and serves (`kan up` beside `kan eval`, the CLI's
//! parity tests) must create every session through [`runtime::environment`].
//!
//! * [`runtime`] — where the library is (`--ort-dylib` or `ORT_DYLIB_PATH`) and the
//!   process-wide environment;
//! * [`contract`] — the encoder contract's names and shapes, checked against a model;
//! * [`encoder`] — a pool of sessions of one user encoder: a history in, the user vectors
//!   searched for it out (one, or K interest vectors), as the worker serves and `kan eval`
//!   scores them;
//! * [`error`] — the crate's error type.

pub mod contract;
pub mod encoder;
pub mod error;
pub mod runtime;

pub use contract::{
    DEFAULT_HISTORY_LENGTH, Declared, INPUT_IDS, INPUT_MASK, OUTPUT, check_contract,
};
pub use encoder::{Model, ModelCheck, UserEncoder, check_model};
pub use error::{Error, Result};
pub use runtime::{DYLIB_ENV, dylib_path, environment};
