//! One module per strategy. Each trains a model from a [`Context`], writes its files into a
//! bundle, reads them back, and recalls items for queries (used for validation metrics at
//! training time and by `kan eval`).

pub mod attribute;
pub mod convergence;
pub mod dssm_grad;
pub mod exploratory;
pub mod gat_grad;
pub mod hyper;
pub mod interest_grad;
pub mod interests;
pub mod item2vec;
pub mod itemcf;
pub mod popular;
pub mod sequence;
pub mod social;
pub mod spectral;
pub mod tower_grad;
pub mod twotower;

use kan_api::crd::Strategy as StrategySpec;
use rayon::prelude::*;

use crate::bundle::{BundleDir, BundleWriter};
use crate::data::Dataset;
use crate::error::Result;
use crate::history::History;
use crate::progress::Progress;
use crate::split::Split;
pub use hyper::HyperParams;

/// Training settings shared by every strategy.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Passes over the data (strategy default when None).
    pub epochs: Option<usize>,
    /// Embedding dimension.
    pub dim: usize,
    pub seed: u64,
    /// Model input length L of user encoders (most recent L history items).
    pub history_length: usize,
    /// Draw progress bars.
    pub progress: bool,
    /// Strategy-specific hyper-parameters (`--param KEY=VALUE`).
    pub params: HyperParams,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: None,
            dim: 64,
            seed: 42,
            history_length: 50,
            progress: false,
            params: HyperParams::default(),
        }
    }
}

/// What a trainer sees.
pub struct Context<'a> {
    pub ds: &'a Dataset,
    pub split: &'a Split,
    /// Training histories, most recent first.
    pub history: &'a History,
    pub opts: &'a TrainOptions,
    pub progress: &'a Progress,
}

/// One recall request: a user (index, when known to the model) and their history.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub user: Option<u32>,
    /// Most recent first.
    pub history: &'a [u32],
    /// Items that must not be returned (the user's training items in evaluation).
    pub exclude: &'a [u32],
}

/// A trained or loaded model that recalls items.
pub trait Recaller: Send + Sync {
    /// The `k` best items for each query, best first.
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>>;
}

/// A model that can write itself into a bundle.
pub trait Model: Recaller {
    fn write(&self, w: &mut BundleWriter) -> Result<()>;
    /// Settings recorded in the manifest's `params`.
    fn params(&self) -> serde_json::Value;
    fn dim(&self) -> Option<u32> {
        None
    }
}

/// Runs a core kernel for every query, in parallel, keeping the items it ranks.
pub(crate) fn recall_each<F>(queries: &[Query], kernel: F) -> Vec<Vec<u32>>
where
    F: Fn(&Query) -> Vec<kan_core::Hit> + Sync,
{
    queries
        .par_iter()
        .map(|q| kernel(q).into_iter().map(|h| h.item).collect())
        .collect()
}

/// Loads whichever model a bundle holds, to recall with the queue settings of `spec` (a
/// RecallQueue's `strategy`; None: the CRD defaults), as the worker serving it would. `now`:
/// the clock exploratory seeds its daily draws for (None: the bundle's reference time, so a
/// figure is reproducible).
pub fn load(
    b: &BundleDir,
    spec: Option<&StrategySpec>,
    now: Option<i64>,
) -> Result<Box<dyn Recaller>> {
    use kan_api::crd::StrategyType as S;
    if let Some(spec) = spec
        && spec.type_() != b.manifest.strategy
    {
        return Err(crate::error::Error::InvalidInput(format!(
            "the queue's strategy is {} but the bundle at {} holds {}",
            spec.type_(),
            b.dir.display(),
            b.manifest.strategy
        )));
    }
    Ok(match (b.manifest.strategy, spec) {
        (S::Popular, _) => Box::new(popular::Popular::load(b)?),
        (S::Itemcf, spec) => {
            let mut m = itemcf::ItemCf::load(b)?;
            if let Some(StrategySpec::Itemcf { itemcf }) = spec {
                m.settings = itemcf.clone();
            }
            Box::new(m)
        }
        (S::Item2vec, spec) => {
            let mut m = item2vec::Item2Vec::load(b)?;
            if let Some(StrategySpec::Item2vec { item2vec }) = spec {
                m.settings = item2vec.clone();
            }
            Box::new(m)
        }
        (S::Social, spec) => {
            let mut m = social::Social::load(b)?;
            if let Some(StrategySpec::Social { social }) = spec {
                m.settings = social.clone();
            }
            Box::new(m)
        }
        (S::Exploratory, spec) => {
            let mut m = exploratory::Exploratory::load(b)?;
            if let Some(StrategySpec::Exploratory { exploratory }) = spec {
                m.settings = exploratory.clone();
            }
            m.now = now;
            Box::new(m)
        }
        (S::Attribute, spec) => {
            let mut m = attribute::Attribute::load(b)?;
            if let Some(StrategySpec::Attribute { attribute }) = spec {
                m.settings = attribute.clone();
            }
            Box::new(m)
        }
        (S::Dssm | S::Gat | S::Spectral | S::Sequence, spec) => {
            let settings = match spec {
                Some(
                    StrategySpec::Dssm { dssm: s }
                    | StrategySpec::Gat { gat: s }
                    | StrategySpec::Spectral { spectral: s }
                    | StrategySpec::Sequence { sequence: s },
                ) => s.clone(),
                _ => kan_api::crd::EncoderSettings::default(),
            };
            Box::new(twotower::OnnxTwoTower::load(b, &settings)?)
        }
        (S::Operational, _) => {
            return Err(crate::error::Error::Bundle {
                dir: b.dir.clone(),
                problem: "operational queues have no trained bundle to evaluate".to_string(),
            });
        }
    })
}

/// True for strategies whose bundles are scored through an ONNX user encoder.
pub fn needs_onnx_runtime(s: kan_api::crd::StrategyType) -> bool {
    use kan_api::crd::StrategyType as S;
    matches!(s, S::Dssm | S::Gat | S::Spectral | S::Sequence)
}

/// Writes training histories as `files::USER_HISTORY`.
pub fn write_history(w: &mut BundleWriter, h: &History) -> Result<()> {
    use crate::bundle::Tensor;
    w.tensors(
        kan_api::bundle::files::USER_HISTORY,
        &[
            (
                "offsets".to_string(),
                Tensor::i64(h.offsets.iter().map(|&o| o as i64).collect()),
            ),
            (
                "items".to_string(),
                Tensor::i64(h.items.iter().map(|&i| i as i64).collect()),
            ),
            ("timestamps".to_string(), Tensor::i64(h.ts.clone())),
        ],
    )?;
    Ok(())
}

/// Reads `files::USER_HISTORY` back for a bundle of `users` users and `items` items, through
/// the core codec the worker reads it with.
pub fn read_history(b: &BundleDir, users: usize, items: usize) -> Result<History> {
    let t = b.tensors(kan_api::bundle::files::USER_HISTORY)?;
    let (csr, ts) = kan_core::bundle::user_history(&t, users, items)?;
    let (offsets, items) = csr.into_parts();
    Ok(History { offsets, items, ts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle of `items.txt` (a, b), `users.txt` (u1, u2) and a history of `offsets`/`items`.
    fn history_bundle(offsets: Vec<i64>, items: Vec<i64>) -> (tempfile::TempDir, BundleDir) {
        use crate::bundle::{ManifestInfo, Tensor};
        use kan_api::bundle::{DatasetInfo, files};
        let dir = tempfile::tempdir().unwrap();
        let mut w = BundleWriter::create(dir.path()).unwrap();
        w.lines(files::ITEMS, &["a", "b"]).unwrap();
        w.lines(files::USERS, &["u1", "u2"]).unwrap();
        let ts = vec![1; items.len()];
        w.tensors(
            files::USER_HISTORY,
            &[
                ("offsets", Tensor::i64(offsets)),
                ("items", Tensor::i64(items)),
                ("timestamps", Tensor::i64(ts)),
            ],
        )
        .unwrap();
        w.finish(ManifestInfo {
            strategy: kan_api::crd::StrategyType::Social,
            dataset: DatasetInfo {
                name: "toy".into(),
                fingerprint: String::new(),
                users: 2,
                items: 2,
                interactions: 0,
            },
            params: serde_json::json!({}),
            metrics: Default::default(),
            dim: None,
            created_at: "2026-12-03T00:00:00Z".into(),
        })
        .unwrap();
        let b = BundleDir::open(dir.path()).unwrap();
        (dir, b)
    }

    #[test]
    fn a_history_is_read_back_and_a_broken_one_is_refused_naming_the_tensor() {
        let (_dir, b) = history_bundle(vec![0, 2, 3], vec![1, 0, 1]);
        let h = read_history(&b, 2, 2).unwrap();
        assert_eq!((h.items(0), h.items(1)), (&[1, 0][..], &[1][..]));
        // An item index past items.txt: refused here, not a panic in a kernel later.
        let (_dir, b) = history_bundle(vec![0, 2, 3], vec![1, 0, 2]);
        let err = read_history(&b, 2, 2).unwrap_err().to_string();
        assert!(
            err.contains("items") && err.contains("out of range"),
            "{err}"
        );
        // Offsets for three users where users.txt lists two.
        let (_dir, b) = history_bundle(vec![0, 1, 2, 3], vec![1, 0, 1]);
        let err = read_history(&b, 2, 2).unwrap_err().to_string();
        assert!(err.contains("offsets has 4 entries"), "{err}");
    }

    #[test]
    fn encoder_strategies_and_only_they_need_onnx_runtime() {
        use kan_api::crd::StrategyType as S;
        let needing: Vec<S> = S::ALL
            .into_iter()
            .filter(|&s| needs_onnx_runtime(s))
            .collect();
        assert_eq!(needing, vec![S::Dssm, S::Gat, S::Spectral, S::Sequence]);
    }
}
