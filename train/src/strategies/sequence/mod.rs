//! `sequence`: a SASRec-style causal self-attention encoder over the user's ordered history
//! (Kang & McAuley, ICDM 2018), trained on next-item prediction at every position of every
//! training window and served as an ONNX user encoder (the dssm contract): the user vector is
//! the most recent position's final state, L2-normalised, and item vectors are the
//! L2-normalised input embeddings, so the worker's cosine ranking is the trained ranking.
//!
//! The loss is a softmax over cosine similarities at a temperature: over every item when the
//! catalogue has at most `negatives` items, else over the target and `negatives` shared uniform
//! negatives (sampled softmax; under uniform sampling the logQ correction is one constant for
//! every candidate, so it is left out). Trained with candle's autograd and AdamW; early
//! stopping on validation R@20 keeps the best epoch's weights.

mod export;
pub mod net;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use indicatif::ProgressBar;
use kan_api::bundle::files;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::convergence::{EpochLoss, EpochModel, EpochPoint, curve_png, fit, valid_recall_20};
use super::twotower::{CURVE_PNG, batch_inputs, dot_recall, write_vectors};
use super::{Context, Model, Query, Recaller};
use crate::bundle::BundleWriter;
use crate::error::{Error, Result};
use crate::history::History;
pub use net::{Dropout, Net, Shape};

/// Maximum epochs when `--epochs` is not given (early stopping usually ends sooner).
pub const DEFAULT_EPOCHS: usize = 200;
/// Chosen on ML-100K validation (BENCHMARKS.md, "Sequence recall"), as is the temperature.
pub const LEARNING_RATE: f64 = 0.006;
pub const TEMPERATURE: f64 = 0.1;
pub const DROPOUT: f64 = 0.2;
pub const HEADS: usize = 1;
pub const BLOCKS: usize = 2;
/// Training windows per step.
pub const BATCH: usize = 128;
/// Shared uniform negatives per step; a catalogue this small or smaller gets a full softmax.
pub const NEGATIVES: usize = 2048;
/// Epochs without a better validation R@20 before training stops.
pub const PATIENCE: usize = 5;
/// `--param` keys read by the sequence trainer.
pub const PARAMS: &[&str] = &[
    "learning_rate",
    "temperature",
    "dropout",
    "heads",
    "blocks",
    "batch",
    "negatives",
    "patience",
];

/// Hyper-parameters of one training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub max_epochs: usize,
    pub learning_rate: f64,
    pub temperature: f64,
    pub dropout: f64,
    pub heads: usize,
    pub blocks: usize,
    pub batch: usize,
    pub negatives: usize,
    pub patience: usize,
    /// History length L: positions of the model and length of a training window.
    pub l: usize,
}

impl Settings {
    pub fn from_context(ctx: &Context) -> Result<Self> {
        let p = &ctx.opts.params;
        let dropout = p.dropout("dropout", DROPOUT)?;
        Ok(Settings {
            max_epochs: ctx.opts.epochs.unwrap_or(DEFAULT_EPOCHS),
            learning_rate: p.positive("learning_rate", LEARNING_RATE)?,
            temperature: p.positive("temperature", TEMPERATURE)?,
            dropout,
            heads: p.count("heads", HEADS)?,
            blocks: p.count("blocks", BLOCKS)?,
            batch: p.count("batch", BATCH)?,
            negatives: p.count("negatives", NEGATIVES)?,
            patience: p.count("patience", PATIENCE)?,
            l: ctx.opts.history_length.max(1),
        })
    }
}

/// Training windows `(user, offset)`: a user's history (most recent first) cut into
/// consecutive windows of `l` inputs; the window at `offset` reads items `offset + 1 ..` and
/// predicts, at input position `r`, the item that came next, `items[offset + r]`. Every
/// transition of every history is a target once per epoch.
pub fn windows(h: &History, l: usize) -> Vec<(u32, usize)> {
    (0..h.n_users())
        .flat_map(|u| {
            let n = h.items(u).len();
            (0..n.saturating_sub(1))
                .step_by(l.max(1))
                .map(move |o| (u as u32, o))
        })
        .collect()
}

/// One step's inputs: padded windows, the flat indices (into B·L) of their real positions
/// and each such position's next item.
pub struct SeqBatch {
    pub ids: Tensor,
    pub mask: Tensor,
    pub rows: Tensor,
    pub targets: Vec<u32>,
}

pub fn make_batch(h: &History, chunk: &[(u32, usize)], l: usize) -> Result<SeqBatch> {
    let b = chunk.len();
    let mut ids = vec![0i64; b * l];
    let mut mask = vec![0f32; b * l];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (bi, &(u, o)) in chunk.iter().enumerate() {
        let items = h.items(u as usize);
        let end = (o + 1 + l).min(items.len());
        for (r, &it) in items[(o + 1).min(end)..end].iter().enumerate() {
            ids[bi * l + r] = it as i64;
            mask[bi * l + r] = 1.0;
            rows.push((bi * l + r) as u32);
            targets.push(items[o + r]);
        }
    }
    let n_rows = rows.len();
    Ok(SeqBatch {
        ids: Tensor::from_vec(ids, (b, l), &Device::Cpu)?,
        mask: Tensor::from_vec(mask, (b, l), &Device::Cpu)?,
        rows: Tensor::from_vec(rows, n_rows, &Device::Cpu)?,
        targets,
    })
}

/// Mean cross-entropy of every real position's next item: over the whole catalogue when
/// `negatives` is None, else over the target and the shared `negatives` (a negative equal to a
/// row's target is masked out of that row).
pub fn loss(
    net: &Net,
    batch: &SeqBatch,
    temperature: f64,
    negatives: Option<&[u32]>,
    dropout: Option<&mut Dropout>,
) -> Result<Tensor> {
    let d = net.shape.dim;
    let hidden = net.hidden(&batch.ids, &batch.mask, dropout)?;
    let (b, l, _) = hidden.dims3()?;
    let u = net::l2_normalise(&hidden.reshape((b * l, d))?.index_select(&batch.rows, 0)?)?;
    let r = batch.targets.len();
    let targets = Tensor::from_slice(&batch.targets, r, &Device::Cpu)?;
    let table = net.item.as_tensor();
    match negatives {
        None => {
            let v = net::l2_normalise(table)?;
            let logits = (u.matmul(&v.t()?)? / temperature)?;
            Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
        }
        Some(negs) => {
            let vp = net::l2_normalise(&table.index_select(&targets, 0)?)?;
            let pos = (&u * vp)?.sum_keepdim(1)?;
            let neg_idx = Tensor::from_slice(negs, negs.len(), &Device::Cpu)?;
            let vn = net::l2_normalise(&table.index_select(&neg_idx, 0)?)?;
            let neg = u.matmul(&vn.t()?)?;
            let logits = (Tensor::cat(&[&pos, &neg], 1)? / temperature)?;
            let hits: Vec<f32> = batch
                .targets
                .iter()
                .flat_map(|&t| {
                    std::iter::once(0.0).chain(
                        negs.iter()
                            .map(move |&n| if n == t { -net::MASK_BIAS } else { 0.0 }),
                    )
                })
                .collect();
            let logits = (logits + Tensor::from_vec(hits, (r, negs.len() + 1), &Device::Cpu)?)?;
            let labels = Tensor::zeros(r, DType::U32, &Device::Cpu)?;
            Ok(candle_nn::loss::cross_entropy(&logits, &labels)?)
        }
    }
}

/// A trained sequence model.
pub struct Sequence {
    pub net: Net,
    pub vectors: Vec<f32>,
    pub settings: Settings,
    pub epochs: usize,
    pub best_epoch: usize,
    pub final_loss: f32,
    pub curve: Vec<EpochPoint>,
    /// True when the loss was a full softmax over the catalogue.
    pub full_softmax: bool,
}

impl Sequence {
    /// User embeddings of histories (each cut to L), most recent first.
    pub fn encode(&self, histories: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        encode(&self.net, histories, self.settings.l)
    }

    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        export::to_onnx(&self.net)
    }
}

/// User embeddings through the candle forward pass, in chunks.
pub fn encode(net: &Net, histories: &[&[u32]], l: usize) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(histories.len());
    for chunk in histories.chunks(512) {
        let (ids, mask) = batch_inputs(chunk, l)?;
        out.extend(net.forward(&ids, &mask)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Exported ONNX user encoder of a network (for tests and tools that hold only a [`Net`]).
pub fn to_onnx(net: &Net) -> Result<Vec<u8>> {
    export::to_onnx(net)
}

fn recall_with(
    net: &Net,
    vectors: &[f32],
    l: usize,
    queries: &[Query],
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    let hs: Vec<&[u32]> = queries.iter().map(|q| q.history).collect();
    let users = encode(net, &hs, l)?;
    dot_recall(vectors, net.shape.dim, &users, queries, k)
}

/// Recall through the network's current weights (validation during training).
struct NetRecall<'a> {
    net: &'a Net,
    vectors: Vec<f32>,
    l: usize,
}

impl Recaller for NetRecall<'_> {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        recall_with(self.net, &self.vectors, self.l, queries, k)
    }
}

impl Recaller for Sequence {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        recall_with(&self.net, &self.vectors, self.settings.l, queries, k)
    }
}

pub fn train(ctx: &Context) -> Result<Sequence> {
    let s = Settings::from_context(ctx)?;
    let n_items = ctx.ds.n_items();
    let net = Net::new(
        Shape {
            n_items,
            dim: ctx.opts.dim,
            heads: s.heads,
            blocks: s.blocks,
            max_len: s.l,
        },
        ctx.opts.seed,
    )?;
    let opt = AdamW::new(
        net.all_vars(),
        ParamsAdamW {
            lr: s.learning_rate,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let rng = StdRng::seed_from_u64(ctx.opts.seed.wrapping_add(1));
    let dropout = Dropout::new(s.dropout, ctx.opts.seed.wrapping_add(2));
    let order = windows(ctx.history, s.l);
    if order.is_empty() {
        return Err(Error::InvalidInput(
            "sequence needs users with at least two training interactions".into(),
        ));
    }
    let full_softmax = n_items <= s.negatives;
    let steps = order.len().div_ceil(s.batch);
    let pb = ctx
        .progress
        .bar((s.max_epochs * steps) as u64, "sequence steps");
    let mut run = SequenceEpochs {
        ctx,
        net: &net,
        opt,
        rng,
        dropout,
        order,
        settings: &s,
        full_softmax,
        pb: &pb,
    };
    let fitted = fit(
        &mut run,
        s.max_epochs,
        s.patience,
        &pb,
        ctx.progress,
        "sequence",
    )?;
    let vectors = net.item_vectors()?;
    Ok(Sequence {
        net,
        vectors,
        settings: s,
        epochs: fitted.epochs,
        best_epoch: fitted.best_epoch,
        final_loss: fitted.final_loss,
        curve: fitted.curve,
        full_softmax,
    })
}

/// One sequence training run, epoch by epoch, for [`fit`].
struct SequenceEpochs<'a> {
    ctx: &'a Context<'a>,
    net: &'a Net,
    opt: AdamW,
    rng: StdRng,
    dropout: Dropout,
    /// Training windows (user, end), shuffled each epoch.
    order: Vec<(u32, usize)>,
    settings: &'a Settings,
    full_softmax: bool,
    pb: &'a ProgressBar,
}

impl EpochModel for SequenceEpochs<'_> {
    type Weights = Vec<Tensor>;

    fn train_epoch(&mut self) -> Result<EpochLoss> {
        let s = self.settings;
        let n_items = self.ctx.ds.n_items() as u32;
        self.order.shuffle(&mut self.rng);
        let mut sum = 0f64;
        let mut last = f32::NAN;
        for chunk in self.order.chunks(s.batch) {
            let batch = make_batch(self.ctx.history, chunk, s.l)?;
            let negs: Vec<u32> = if self.full_softmax {
                Vec::new()
            } else {
                (0..s.negatives)
                    .map(|_| self.rng.random_range(0..n_items))
                    .collect()
            };
            let negs = (!self.full_softmax).then_some(negs.as_slice());
            let l = loss(
                self.net,
                &batch,
                s.temperature,
                negs,
                Some(&mut self.dropout),
            )?;
            self.opt.backward_step(&l)?;
            last = l.to_scalar::<f32>()?;
            sum += last as f64;
            self.pb.inc(1);
        }
        Ok(EpochLoss {
            mean: sum / self.order.len().div_ceil(s.batch).max(1) as f64,
            last,
        })
    }

    fn valid_recall_20(&mut self) -> Result<Option<f64>> {
        valid_recall_20(self.ctx, || {
            Ok(NetRecall {
                net: self.net,
                vectors: self.net.item_vectors()?,
                l: self.settings.l,
            })
        })
    }

    fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.net.snapshot()
    }

    fn restore(&mut self, weights: &Vec<Tensor>) -> Result<()> {
        self.net.restore(weights)
    }
}

impl Model for Sequence {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        write_vectors(w, &self.vectors, self.net.shape.dim)?;
        if !self.curve.is_empty() {
            w.bytes(
                CURVE_PNG,
                &curve_png(&self.curve, "sequence learning curve")?,
            )?;
        }
        w.bytes(files::MODEL, &self.to_onnx()?)?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        let s = &self.settings;
        let loss = if self.full_softmax {
            "softmax over all items of cosine / temperature, next item at every position"
                .to_string()
        } else {
            format!(
                "sampled softmax of cosine / temperature over the target and {} shared uniform negatives, next item at every position",
                s.negatives
            )
        };
        let negatives = if self.full_softmax {
            serde_json::Value::Null
        } else {
            s.negatives.into()
        };
        json!({
            kan_api::bundle::params::HISTORY_LENGTH: s.l,
            "epochs": self.epochs, "best_epoch": self.best_epoch, "batch": s.batch,
            "heads": s.heads, "blocks": s.blocks, "dropout": s.dropout,
            "learning_rate": s.learning_rate, "temperature": s.temperature,
            "negatives": negatives,
            "loss": loss,
            "architecture": "SASRec: shared item embeddings x sqrt(D) + recency positions, pre-LN causal self-attention + ReLU FFN blocks, final LN; user = most recent position",
            "final_loss": self.final_loss,
            "curve": self.curve,
        })
    }

    fn dim(&self) -> Option<u32> {
        Some(self.net.shape.dim as u32)
    }
}

#[cfg(test)]
mod tests;
