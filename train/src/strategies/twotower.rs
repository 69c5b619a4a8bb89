//! `dssm` and `gat`: a user encoder over history item embeddings, trained (hand-written
//! gradients, [`super::tower_grad`]) against item vectors by in-batch sampled softmax with logQ correction (Yi et al., RecSys 2019) plus
//! shared uniform negatives (mixed negative sampling, Yang et al., WWW 2020).
//!
//! * dssm — two towers: the user tower embeds history items with its own table, mean-pools
//!   them (masked) and applies a residual MLP; the item tower is an item embedding table.
//!   With `--param interests=K` the mean becomes K learned attention pools
//!   ([`super::interest_grad`]), one user vector each.
//! * gat — one graph-attention layer over the user–item graph: the user node attends over its
//!   neighbour items (GATv2 scoring, multi-head, GraphSAGE-style: the user has no id
//!   embedding, only its sampled neighbours, so unseen histories work). Item node embeddings
//!   are shared between the attention inputs and the item vectors.
//!
//! The user encoder is exported as ONNX meeting the contract of `bundle::files::MODEL`.

use std::collections::{BTreeMap, HashSet};

use candle_core::{D, DType, Device, Tensor, Var};
use indicatif::ProgressBar;
use kan_api::bundle::files;
use kan_api::crd::EncoderSettings;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Normal};
use serde_json::json;

use super::convergence::{
    EpochLoss, EpochModel, EpochPoint, curve_png, fit, restore_vars, snapshot_vars, valid_recall_20,
};
use super::dssm_grad::{self, DssmParams};
use super::gat_grad::{self, GatParams};
use super::interest_grad::{self, InterestParams};
use super::tower_grad::{Batch, TowerModel};
use super::{Context, HyperParams, Model, Query, Recaller, interests};
use crate::bundle::{BundleDir, BundleWriter, Tensor as BundleTensor};
use crate::error::{Error, Result};
use crate::history::History;
use crate::onnx::{Graph, attr_float, attr_int};

pub const DEFAULT_EPOCHS: usize = 10;
pub const BATCH: usize = 1024;
pub const UNIFORM_NEGATIVES: usize = 1024;
pub const TEMPERATURE: f64 = 0.1;
pub const LEARNING_RATE: f64 = 0.005;
/// `--param` keys read by the dssm and gat trainers.
pub const PARAMS: &[&str] = &[
    "learning_rate",
    "temperature",
    "weight_decay",
    "history_dropout",
    "patience",
    "interests",
    "interest_attention",
];
/// Each training history item is left out of its row's input with this probability. 0.3 was
/// chosen on validation (BENCHMARKS.md): Gowalla's best of {0, 0.3, 0.5}; on LastFM it gains
/// over 0 too, though 0.7–0.85 gains more there.
pub const HISTORY_DROPOUT: f64 = 0.3;
/// AdamW's decoupled weight decay; 0 (plain Adam) unless `--param weight_decay` says otherwise.
pub const WEIGHT_DECAY: f64 = 0.0;
pub const GAT_HEADS: usize = 4;
pub const LEAKY_SLOPE: f64 = 0.2;
/// Masked positions get this added before the attention softmax.
const MASK_BIAS: f64 = 1e9;
const NORM_EPS: f64 = 1e-12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dssm,
    Gat,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Dssm => "dssm",
            Kind::Gat => "gat",
        }
    }
}

/// The trainable weights. Matrices are stored [in, out] so `x @ W` reads the same in candle
/// and in ONNX.
pub struct Encoder {
    pub kind: Kind,
    pub n_items: usize,
    pub dim: usize,
    pub heads: usize,
    /// Item tower / item node embeddings [N, D].
    pub item: Var,
    /// Named user-encoder weights (for dssm this includes its own `history` table).
    pub vars: BTreeMap<&'static str, Var>,
}

fn init(rng: &mut StdRng, shape: &[usize], std: f64) -> Result<Var> {
    let n: usize = shape.iter().product();
    let normal = Normal::new(0.0, std).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let data: Vec<f32> = (0..n).map(|_| normal.sample(rng) as f32).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        data,
        shape,
        &Device::Cpu,
    )?)?)
}

fn zeros(shape: &[usize]) -> Result<Var> {
    Ok(Var::zeros(shape, DType::F32, &Device::Cpu)?)
}

fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(NORM_EPS)?;
    Ok(x.broadcast_div(&norm)?)
}

impl Encoder {
    pub fn new(kind: Kind, n_items: usize, dim: usize, seed: u64) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let w = 1.0 / (dim as f64).sqrt();
        let item = init(&mut rng, &[n_items, dim], 0.1)?;
        let mut vars = BTreeMap::new();
        let heads = if kind == Kind::Gat { GAT_HEADS } else { 1 };
        match kind {
            Kind::Dssm => {
                vars.insert("history", init(&mut rng, &[n_items, dim], 0.1)?);
                vars.insert("w1", init(&mut rng, &[dim, dim], w)?);
                vars.insert("b1", zeros(&[dim])?);
                vars.insert("w2", init(&mut rng, &[dim, dim], w)?);
                vars.insert("b2", zeros(&[dim])?);
            }
            Kind::Gat => {
                if !dim.is_multiple_of(heads) {
                    return Err(Error::InvalidInput(format!(
                        "gat needs --dim divisible by {heads} heads, got {dim}"
                    )));
                }
                for name in ["wq", "wk", "wv", "wo"] {
                    vars.insert(name, init(&mut rng, &[dim, dim], w)?);
                }
                vars.insert("att", init(&mut rng, &[dim, heads], w)?);
                vars.insert("bo", zeros(&[dim])?);
            }
        }
        Ok(Encoder {
            kind,
            n_items,
            dim,
            heads,
            item,
            vars,
        })
    }

    fn v(&self, name: &str) -> Result<&Tensor> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor())
            .ok_or_else(|| Error::Onnx(format!("missing weight {name}")))
    }

    /// Adds learned interest extraction to a dssm encoder (ComiRec-SA, [`super::interest_grad`]):
    /// an attention projection `interest_w` [D, D] and one query per interest `interest_q`
    /// [D, K].
    pub fn with_interest_attention(mut self, k: usize, seed: u64) -> Result<Self> {
        if self.kind != Kind::Dssm {
            return Err(Error::InvalidInput(format!(
                "{} has no multi-interest encoder (--param interests is for dssm)",
                self.kind.name()
            )));
        }
        let k = interests::check_interests(k)?;
        // Its own stream: the tower's initial weights stay those of a single-vector dssm.
        let mut rng = StdRng::seed_from_u64(seed ^ 0x1f7e_2e57);
        let d = self.dim;
        self.vars.insert(
            "interest_w",
            init(&mut rng, &[d, d], 1.0 / (d as f64).sqrt())?,
        );
        // Unit-scale queries: the heads attend differently from the first step.
        self.vars
            .insert("interest_q", init(&mut rng, &[d, k], 1.0)?);
        Ok(self)
    }

    /// The number of learned interests (0: none, the encoder pools without weights).
    pub fn learned_interests(&self) -> usize {
        self.vars
            .get("interest_q")
            .map_or(0, |q| q.dims().last().copied().unwrap_or(0))
    }

    /// The K learned interests [B, K, D] of padded histories `e` [B, L, D] under `mask`
    /// [B, L]: per interest a softmax over the positions of `tanh(e W) q_k`, the weighted sum
    /// of the rows; an empty history has zero interests.
    fn attention_interests(&self, e: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let s = e.broadcast_matmul(self.v("interest_w")?)?.tanh()?;
        let bias = ((mask - 1.0)? * MASK_BIAS)?.unsqueeze(2)?;
        let logits = s
            .broadcast_matmul(self.v("interest_q")?)?
            .broadcast_add(&bias)?;
        let alpha = candle_nn::ops::softmax(&logits, 1)?.broadcast_mul(&mask.unsqueeze(2)?)?;
        Ok(alpha.transpose(1, 2)?.contiguous()?.matmul(e)?)
    }

    /// Every learned interest's user vector [B, K, D], L2-normalised.
    fn interest_vectors(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let (d, k) = (self.dim, self.learned_interests());
        let e = self
            .table()?
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        let m = self.attention_interests(&e, mask)?.reshape((b * k, d))?;
        Ok(l2_normalise(&self.dssm_tower(&m)?)?.reshape((b, k, d))?)
    }

    fn table(&self) -> Result<&Tensor> {
        match self.kind {
            Kind::Dssm => self.v("history"),
            Kind::Gat => Ok(self.item.as_tensor()),
        }
    }

    /// User embeddings [B, D], L2-normalised, for `ids` i64 [B, L] and `mask` f32 [B, L].
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let d = self.dim;
        let e = self
            .table()?
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        let m = mask.unsqueeze(2)?;
        let count = mask.sum_keepdim(1)?.maximum(1.0)?;
        let mean = e.broadcast_mul(&m)?.sum(1)?.broadcast_div(&count)?;
        let y = match self.kind {
            Kind::Dssm => self.dssm_tower(&mean)?,
            Kind::Gat => {
                let (heads, dh) = (self.heads, d / self.heads);
                let q = mean.matmul(self.v("wq")?)?.unsqueeze(1)?;
                let k = e.broadcast_matmul(self.v("wk")?)?;
                let z = candle_nn::ops::leaky_relu(&k.broadcast_add(&q)?, LEAKY_SLOPE)?;
                let bias = ((mask - 1.0)? * MASK_BIAS)?.unsqueeze(2)?;
                let logits = z.broadcast_matmul(self.v("att")?)?.broadcast_add(&bias)?;
                let alpha = candle_nn::ops::softmax(&logits, 1)?;
                let v = e
                    .broadcast_matmul(self.v("wv")?)?
                    .reshape((b, l, heads, dh))?;
                let agg = v
                    .broadcast_mul(&alpha.unsqueeze(3)?)?
                    .sum(1)?
                    .reshape((b, d))?;
                (agg.matmul(self.v("wo")?)?.broadcast_add(self.v("bo")?)? + &mean)?
            }
        };
        l2_normalise(&y)
    }

    /// dssm's residual MLP over pooled history means [R, D].
    fn dssm_tower(&self, mean: &Tensor) -> Result<Tensor> {
        let h = mean
            .matmul(self.v("w1")?)?
            .broadcast_add(self.v("b1")?)?
            .tanh()?;
        Ok((h.matmul(self.v("w2")?)?.broadcast_add(self.v("b2")?)? + mean)?)
    }

    /// dssm's K interest vectors per history (the first `l` items), L2-normalised, flattened
    /// per history as [K·D]: the learned interests, or (an encoder without them)
    /// [`interests::pooled`], through the tower. K = 1 is [`Encoder::forward`].
    pub fn forward_interests(
        &self,
        histories: &[&[u32]],
        l: usize,
        k: usize,
    ) -> Result<Vec<Vec<f32>>> {
        if k <= 1 {
            let (ids, mask) = batch_inputs(histories, l)?;
            return Ok(self.forward(&ids, &mask)?.to_vec2::<f32>()?);
        }
        if self.kind != Kind::Dssm {
            return Err(Error::InvalidInput(format!(
                "{} has no multi-interest encoder (--param interests is for dssm)",
                self.kind.name()
            )));
        }
        let d = self.dim;
        let learned = self.learned_interests();
        if learned > 0 {
            if learned != k {
                return Err(Error::InvalidInput(format!(
                    "the encoder learned {learned} interests, {k} asked for"
                )));
            }
            let (ids, mask) = batch_inputs(histories, l)?;
            let y: Vec<f32> = self
                .interest_vectors(&ids, &mask)?
                .flatten_all()?
                .to_vec1()?;
            return Ok(y.chunks(k * d).map(<[f32]>::to_vec).collect());
        }
        let table: Vec<f32> = self.table()?.flatten_all()?.to_vec1()?;
        let pooled = interests::pooled(&table, d, histories, l, k);
        let rows = pooled.len() / d.max(1);
        let y =
            l2_normalise(&self.dssm_tower(&Tensor::from_vec(pooled, (rows, d), &Device::Cpu)?)?)?;
        let flat: Vec<f32> = y.flatten_all()?.to_vec1()?;
        Ok(flat.chunks(k * d).map(<[f32]>::to_vec).collect())
    }

    /// L2-normalised item vectors, row-major [N, D].
    pub fn item_vectors(&self) -> Result<Vec<f32>> {
        Ok(l2_normalise(self.item.as_tensor())?
            .flatten_all()?
            .to_vec1()?)
    }

    /// Deep copies of every weight, for [`Encoder::restore`].
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        snapshot_vars(&self.all_vars())
    }

    /// Sets every weight back to a [`Encoder::snapshot`].
    pub fn restore(&self, weights: &[Tensor]) -> Result<()> {
        restore_vars(&self.all_vars(), weights)
    }

    fn all_vars(&self) -> Vec<Var> {
        let mut v = vec![self.item.clone()];
        v.extend(self.vars.values().cloned());
        v
    }

    fn weights(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.v(name)?;
        Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1()?))
    }

    /// The user encoder as an ONNX model: `history_ids` i64 [B, L], `history_mask` f32 [B, L]
    /// → `user_embedding` f32 [B, D]; B and L are symbolic.
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        self.to_onnx_with(1)
    }

    /// As [`Encoder::to_onnx`] with `k` interest vectors per user (dssm): `user_embedding` f32
    /// [B, K, D], the history pooled into the learned interests
    /// ([`interests::attention_onnx`]) or by [`interests::pool_onnx`] before the tower.
    pub fn to_onnx_with(&self, k: usize) -> Result<Vec<u8>> {
        if k > 1 && self.kind != Kind::Dssm {
            return Err(Error::InvalidInput(format!(
                "{} has no multi-interest encoder (--param interests is for dssm)",
                self.kind.name()
            )));
        }
        let d = self.dim as i64;
        let (mut g, ids, mask) = Graph::user_encoder_with(self.dim, k);
        let table_name = if self.kind == Kind::Dssm {
            "history"
        } else {
            "item"
        };
        let (shape, data) = match self.kind {
            Kind::Dssm => self.weights("history")?,
            Kind::Gat => (
                self.item.dims().to_vec(),
                self.item.as_tensor().flatten_all()?.to_vec1()?,
            ),
        };
        let table = g.f32_init(table_name, &shape, &data);
        let init = |g: &mut Graph, name: &str| -> Result<String> {
            let (s, v) = self.weights(name)?;
            Ok(g.f32_init(name, &s, &v))
        };
        let ax1 = g.i64_init("axis_1", &[1]);
        let ax2 = g.i64_init("axis_2", &[2]);
        let one = g.f32_init("one", &[], &[1.0]);

        let e = g.node("Gather", &[&table, &ids], vec![attr_int("axis", 0)], None);
        // The masked mean of the history rows, or K pooled interests ([B, K, D]) through which
        // the dssm tower below broadcasts.
        let mean = if k > 1 && self.learned_interests() == k {
            let (w, q) = (init(&mut g, "interest_w")?, init(&mut g, "interest_q")?);
            interests::attention_onnx(&mut g, &e, &mask, &w, &q)
        } else if k > 1 {
            interests::pool_onnx(&mut g, &e, &mask, k)
        } else {
            let m = g.node("Unsqueeze", &[&mask, &ax2], vec![], None);
            let em = g.node("Mul", &[&e, &m], vec![], None);
            let sum = g.node(
                "ReduceSum",
                &[&em, &ax1],
                vec![attr_int("keepdims", 0)],
                None,
            );
            let cnt = g.node(
                "ReduceSum",
                &[&mask, &ax1],
                vec![attr_int("keepdims", 1)],
                None,
            );
            let cnt = g.node("Max", &[&cnt, &one], vec![], None);
            g.node("Div", &[&sum, &cnt], vec![], None)
        };
        let y = match self.kind {
            Kind::Dssm => {
                let (w1, b1, w2, b2) = (
                    init(&mut g, "w1")?,
                    init(&mut g, "b1")?,
                    init(&mut g, "w2")?,
                    init(&mut g, "b2")?,
                );
                let h = g.node("MatMul", &[&mean, &w1], vec![], None);
                let h = g.node("Add", &[&h, &b1], vec![], None);
                let h = g.node("Tanh", &[&h], vec![], None);
                let o = g.node("MatMul", &[&h, &w2], vec![], None);
                let o = g.node("Add", &[&o, &b2], vec![], None);
                g.node("Add", &[&o, &mean], vec![], None)
            }
            Kind::Gat => {
                let (heads, dh) = (self.heads as i64, d / self.heads as i64);
                let (wq, wk, wv, wo) = (
                    init(&mut g, "wq")?,
                    init(&mut g, "wk")?,
                    init(&mut g, "wv")?,
                    init(&mut g, "wo")?,
                );
                let (att, bo) = (init(&mut g, "att")?, init(&mut g, "bo")?);
                let big = g.f32_init("mask_bias", &[], &[MASK_BIAS as f32]);
                let split_heads = g.i64_init("split_heads", &[0, 0, heads, dh]);
                let merge_heads = g.i64_init("merge_heads", &[0, d]);
                let q = g.node("MatMul", &[&mean, &wq], vec![], None);
                let q = g.node("Unsqueeze", &[&q, &ax1], vec![], None);
                let k = g.node("MatMul", &[&e, &wk], vec![], None);
                let z = g.node("Add", &[&k, &q], vec![], None);
                let z = g.node(
                    "LeakyRelu",
                    &[&z],
                    vec![attr_float("alpha", LEAKY_SLOPE as f32)],
                    None,
                );
                let logits = g.node("MatMul", &[&z, &att], vec![], None);
                let off = g.node("Sub", &[&mask, &one], vec![], None);
                let bias = g.node("Mul", &[&off, &big], vec![], None);
                let bias = g.node("Unsqueeze", &[&bias, &ax2], vec![], None);
                let logits = g.node("Add", &[&logits, &bias], vec![], None);
                let alpha = g.node("Softmax", &[&logits], vec![attr_int("axis", 1)], None);
                let ax3 = g.i64_init("axis_3", &[3]);
                let alpha = g.node("Unsqueeze", &[&alpha, &ax3], vec![], None);
                let v = g.node("MatMul", &[&e, &wv], vec![], None);
                let v = g.node("Reshape", &[&v, &split_heads], vec![], None);
                let av = g.node("Mul", &[&v, &alpha], vec![], None);
                let agg = g.node(
                    "ReduceSum",
                    &[&av, &ax1],
                    vec![attr_int("keepdims", 0)],
                    None,
                );
                let agg = g.node("Reshape", &[&agg, &merge_heads], vec![], None);
                let o = g.node("MatMul", &[&agg, &wo], vec![], None);
                let o = g.node("Add", &[&o, &bo], vec![], None);
                g.node("Add", &[&o, &mean], vec![], None)
            }
        };
        g.l2_normalise(&y, "output", NORM_EPS as f32, Some("user_embedding"));
        g.to_bytes(&format!("kan-{}-user-encoder", self.kind.name()))
    }
}

/// Pads histories to [B, L] (padding index 0, mask 0), most recent first.
pub fn batch_inputs(histories: &[&[u32]], l: usize) -> Result<(Tensor, Tensor)> {
    let b = histories.len();
    let mut ids = vec![0i64; b * l];
    let mut mask = vec![0f32; b * l];
    for (r, h) in histories.iter().enumerate() {
        for (c, &i) in h.iter().take(l).enumerate() {
            ids[r * l + c] = i as i64;
            mask[r * l + c] = 1.0;
        }
    }
    Ok((
        Tensor::from_vec(ids, (b, l), &Device::Cpu)?,
        Tensor::from_vec(mask, (b, l), &Device::Cpu)?,
    ))
}

/// A trained dssm/gat model.
pub struct TwoTower {
    pub encoder: Encoder,
    pub vectors: Vec<f32>,
    pub history_length: usize,
    /// Epochs run (early stopping may end before the maximum).
    pub epochs: usize,
    /// The epoch whose weights were kept (the best on validation, else the last).
    pub best_epoch: usize,
    pub learning_rate: f64,
    pub temperature: f64,
    pub weight_decay: f64,
    pub history_dropout: f64,
    pub final_loss: f32,
    pub curve: Vec<EpochPoint>,
    /// User vectors per history (`--param interests`, dssm): 1, or K of a `[B, K, D]` encoder.
    pub interests: usize,
}

/// Draws training batches: (user, positive) rows with a sampled history of the user's other
/// items, shared uniform negatives, and the logQ bias of every candidate.
struct Sampler<'a> {
    h: &'a History,
    rows: Vec<(u32, u32)>,
    counts: Vec<u32>,
    total: f64,
    n_items: usize,
    l: usize,
    /// Probability of leaving a history item out of a row's input.
    dropout: f64,
}

/// A drawn batch; see [`Batch`].
struct Drawn {
    hists: Vec<Vec<u32>>,
    cands: Vec<u32>,
    col_bias: Vec<f32>,
}

impl Drawn {
    fn batch(&self) -> Batch<'_> {
        Batch {
            hists: &self.hists,
            cands: &self.cands,
            col_bias: &self.col_bias,
        }
    }
}

impl<'a> Sampler<'a> {
    fn new(h: &'a History, n_items: usize, l: usize, dropout: f64) -> Self {
        // logQ: expected count of each item among a step's candidates.
        let counts = h.item_counts(n_items);
        let total: f64 = counts.iter().map(|&c| c as f64).sum::<f64>().max(1.0);
        let rows: Vec<(u32, u32)> = (0..h.n_users())
            .flat_map(|u| h.items(u).iter().map(move |&i| (u as u32, i)))
            .collect();
        Sampler {
            h,
            rows,
            counts,
            total,
            n_items,
            l,
            dropout,
        }
    }

    fn draw(&self, chunk: &[usize], rng: &mut StdRng) -> Drawn {
        let b = chunk.len();
        let mut hists: Vec<Vec<u32>> = Vec::with_capacity(b);
        let mut targets = Vec::with_capacity(b);
        for &r in chunk {
            let (u, target) = self.rows[r];
            hists.push(row_input(
                self.h.items(u as usize),
                target,
                self.dropout,
                self.l,
                rng,
            ));
            targets.push(target);
        }
        let negs: Vec<u32> = (0..UNIFORM_NEGATIVES)
            .map(|_| rng.random_range(0..self.n_items as u32))
            .collect();
        let cands: Vec<u32> = targets.iter().chain(&negs).copied().collect();
        let col_bias = cands
            .iter()
            .map(|&c| {
                let expected = b as f64 * self.counts[c as usize] as f64 / self.total
                    + UNIFORM_NEGATIVES as f64 / self.n_items as f64;
                -(expected.ln() as f32)
            })
            .collect();
        Drawn {
            hists,
            cands,
            col_bias,
        }
    }
}

/// A training row's input: the user's items other than its `target`, each left out with
/// probability `dropout` (history dropout, a regulariser; never all of a non-empty history),
/// then at most `l` of the rest drawn uniformly (neighbour sampling), in history order.
///
/// The number kept is drawn first (binomial) and then only that many positions, so a row costs
/// O(l), not O(history): a heavy user's rows each re-read the whole history otherwise, which
/// made batch drawing a twentieth of a gat step on Gowalla.
fn row_input(items: &[u32], target: u32, dropout: f64, l: usize, rng: &mut StdRng) -> Vec<u32> {
    let target_at: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|&(_, &i)| i == target)
        .map(|(at, _)| at)
        .collect();
    let n = items.len() - target_at.len();
    let kept = if dropout > 0.0 && n > 1 {
        // `dropout` is checked to lie in [0, 1) where it is parsed.
        Binomial::new(n as u64, 1.0 - dropout).map_or(n, |b| (b.sample(rng) as usize).max(1))
    } else {
        n
    };
    let m = kept.min(l);
    let mut picks = if m == n {
        (0..n).collect()
    } else {
        rand::seq::index::sample(rng, n, m).into_vec()
    };
    picks.sort_unstable();
    // The k-th of the other items sits past the target's positions before it.
    let mut skipped = 0;
    picks
        .into_iter()
        .map(|k| {
            while skipped < target_at.len() && target_at[skipped] <= k + skipped {
                skipped += 1;
            }
            items[k + skipped]
        })
        .collect()
}

/// The training loss of a batch through candle's autograd: the reference the hand-written
/// gradients of [`super::dssm_grad`] and [`super::gat_grad`] are checked against.
pub fn candle_loss(enc: &Encoder, batch: &Batch, l: usize, temperature: f64) -> Result<Tensor> {
    let b = batch.hists.len();
    let refs: Vec<&[u32]> = batch.hists.iter().map(|v| v.as_slice()).collect();
    let (ids, mask) = batch_inputs(&refs, l.max(1))?;
    let cand_idx = Tensor::from_slice(batch.cands, batch.cands.len(), &Device::Cpu)?;
    let v = l2_normalise(&enc.item.as_tensor().index_select(&cand_idx, 0)?)?;
    let cosines = if enc.learned_interests() > 0 {
        // Each candidate's best cosine over the K interests; on ties (a one-item history's K
        // interests are equal) the gradient goes to the first, as the hand-written head sends it
        // (`max`'s backward would send it to every tied interest).
        let y = enc.interest_vectors(&ids, &mask)?;
        let scores = y.broadcast_matmul(&v.t()?)?.contiguous()?;
        let best = scores.argmax_keepdim(1)?;
        scores.gather(&best, 1)?.squeeze(1)?
    } else {
        enc.forward(&ids, &mask)?.matmul(&v.t()?)?
    };
    let bias = Tensor::from_vec(batch.dense_bias(), (b, batch.cands.len()), &Device::Cpu)?;
    let logits = ((cosines / temperature)? + bias)?;
    let labels = Tensor::from_vec((0..b as u32).collect::<Vec<_>>(), b, &Device::Cpu)?;
    Ok(candle_nn::loss::cross_entropy(&logits, &labels)?)
}

/// How a model's weights are updated: hand-written gradients per tower.
enum Stepper {
    Dssm(Box<dssm_grad::Trainer>),
    Interests(Box<interest_grad::Trainer>),
    Gat(Box<gat_grad::Trainer>),
}

impl Stepper {
    fn new(enc: &Encoder, learning_rate: f64, weight_decay: f64) -> Result<Self> {
        Ok(match enc.kind {
            Kind::Dssm if enc.learned_interests() > 0 => {
                Stepper::Interests(Box::new(interest_grad::Trainer::new(
                    InterestParams::from_encoder(enc)?,
                    learning_rate,
                    weight_decay,
                )))
            }
            Kind::Dssm => Stepper::Dssm(Box::new(dssm_grad::Trainer::new(
                DssmParams::from_encoder(enc)?,
                learning_rate,
                weight_decay,
            ))),
            Kind::Gat => Stepper::Gat(Box::new(gat_grad::Trainer::new(
                GatParams::from_encoder(enc)?,
                learning_rate,
                weight_decay,
            ))),
        })
    }

    fn step(&mut self, batch: &Batch, temperature: f64) -> f32 {
        match self {
            Stepper::Dssm(t) => t.step(batch, temperature),
            Stepper::Interests(t) => t.step(batch, temperature),
            Stepper::Gat(t) => t.step(batch, temperature),
        }
    }

    /// Makes the encoder's weights the trained ones.
    fn sync(&self, enc: &Encoder) -> Result<()> {
        match self {
            Stepper::Dssm(t) => t.params.store(enc),
            Stepper::Interests(t) => t.params.store(enc),
            Stepper::Gat(t) => t.params.store(enc),
        }
    }
}

/// The bundle file holding the learning curve's chart (the numbers are in the manifest).
pub const CURVE_PNG: &str = "training_curve.png";

/// Epochs without a better validation R@20 before training stops.
pub const PATIENCE: usize = 2;

pub fn train(ctx: &Context, kind: Kind) -> Result<TwoTower> {
    let n_items = ctx.ds.n_items();
    let dim = ctx.opts.dim;
    let l = ctx.opts.history_length;
    let max_epochs = ctx.opts.epochs.unwrap_or(DEFAULT_EPOCHS);
    let learning_rate = ctx.opts.params.positive("learning_rate", LEARNING_RATE)?;
    let temperature = ctx.opts.params.positive("temperature", TEMPERATURE)?;
    let weight_decay = ctx.opts.params.non_negative("weight_decay", WEIGHT_DECAY)?;
    let history_dropout = ctx
        .opts
        .params
        .dropout("history_dropout", HISTORY_DROPOUT)?;
    let patience = ctx.opts.params.count("patience", PATIENCE)?;
    let k = interests::check_interests(ctx.opts.params.count("interests", 1)?)?;
    if k > 1 && kind != Kind::Dssm {
        return Err(Error::InvalidInput(format!(
            "--param interests={k}: only dssm has a multi-interest encoder"
        )));
    }
    let attention = interest_attention(&ctx.opts.params)?;
    let mut enc = Encoder::new(kind, n_items, dim, ctx.opts.seed)?;
    if k > 1 && attention {
        enc = enc.with_interest_attention(k, ctx.opts.seed)?;
    }
    let sampler = Sampler::new(ctx.history, n_items, l, history_dropout);
    let steps = sampler.rows.len().div_ceil(BATCH);
    let pb = ctx.progress.bar(
        (max_epochs * steps) as u64,
        &format!("{} steps", kind.name()),
    );
    let mut run = TwoTowerEpochs {
        ctx,
        stepper: Stepper::new(&enc, learning_rate, weight_decay)?,
        enc: &enc,
        rng: StdRng::seed_from_u64(ctx.opts.seed.wrapping_add(1)),
        order: (0..sampler.rows.len()).collect(),
        sampler,
        l,
        temperature,
        interests: k,
        pb: &pb,
    };
    let fitted = fit(
        &mut run,
        max_epochs,
        patience,
        &pb,
        ctx.progress,
        kind.name(),
    )?;
    let vectors = enc.item_vectors()?;
    Ok(TwoTower {
        encoder: enc,
        vectors,
        history_length: l,
        epochs: fitted.epochs,
        best_epoch: fitted.best_epoch,
        learning_rate,
        temperature,
        weight_decay,
        history_dropout,
        final_loss: fitted.final_loss,
        curve: fitted.curve,
        interests: k,
    })
}

/// `--param interest_attention`: 1 (default) learns the interests (ComiRec-SA heads), 0 trains a
/// single-vector dssm and pools its history into K interests without weights
/// ([`interests::pooled`]).
fn interest_attention(params: &HyperParams) -> Result<bool> {
    let v = params.f64("interest_attention", 1.0);
    if v == 1.0 || v == 0.0 {
        Ok(v == 1.0)
    } else {
        Err(Error::InvalidInput(format!(
            "--param interest_attention={v}: must be 1 (learned interests) or 0 (unweighted pooling)"
        )))
    }
}

/// One dssm/gat training run, epoch by epoch, for [`fit`].
struct TwoTowerEpochs<'a> {
    ctx: &'a Context<'a>,
    enc: &'a Encoder,
    stepper: Stepper,
    sampler: Sampler<'a>,
    rng: StdRng,
    order: Vec<usize>,
    l: usize,
    temperature: f64,
    interests: usize,
    pb: &'a ProgressBar,
}

impl EpochModel for TwoTowerEpochs<'_> {
    type Weights = Vec<Tensor>;

    fn train_epoch(&mut self) -> Result<EpochLoss> {
        self.order.shuffle(&mut self.rng);
        let mut sum = 0f64;
        let mut last = f32::NAN;
        for chunk in self.order.chunks(BATCH) {
            let drawn = self.sampler.draw(chunk, &mut self.rng);
            last = self.stepper.step(&drawn.batch(), self.temperature);
            sum += last as f64;
            self.pb.inc(1);
        }
        self.stepper.sync(self.enc)?;
        Ok(EpochLoss {
            mean: sum / self.order.len().div_ceil(BATCH).max(1) as f64,
            last,
        })
    }

    fn valid_recall_20(&mut self) -> Result<Option<f64>> {
        valid_recall_20(self.ctx, || {
            EncoderRecall::new(self.enc, self.l, self.interests)
        })
    }

    fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.enc.snapshot()
    }

    fn restore(&mut self, weights: &Vec<Tensor>) -> Result<()> {
        self.enc.restore(weights)
    }
}

/// Recall through an encoder's candle forward pass (training-time validation), with the
/// interests the bundle will serve.
struct EncoderRecall<'a> {
    enc: &'a Encoder,
    vectors: Vec<f32>,
    l: usize,
    interests: usize,
}

impl<'a> EncoderRecall<'a> {
    fn new(enc: &'a Encoder, l: usize, interests: usize) -> Result<Self> {
        Ok(EncoderRecall {
            enc,
            vectors: enc.item_vectors()?,
            l: l.max(1),
            interests,
        })
    }
}

impl Recaller for EncoderRecall<'_> {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let l = self.l;
        let users = embed_queries(queries, l, |hs| {
            self.enc.forward_interests(hs, l, self.interests)
        })?;
        dot_recall(&self.vectors, self.enc.dim, &users, queries, k)
    }
}

/// User embeddings for queries through a batched encoder function (training-time recall;
/// served bundles are scored one history at a time by [`OnnxTwoTower`]).
fn embed_queries<F>(queries: &[Query], l: usize, mut encode: F) -> Result<Vec<Vec<f32>>>
where
    F: FnMut(&[&[u32]]) -> Result<Vec<Vec<f32>>>,
{
    let mut out = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(BATCH) {
        let hs: Vec<&[u32]> = chunk
            .iter()
            .map(|q| &q.history[..q.history.len().min(l)])
            .collect();
        out.extend(encode(&hs)?);
    }
    Ok(out)
}

impl Recaller for TwoTower {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let l = self.history_length.max(1);
        let users = embed_queries(queries, l, |hs| {
            self.encoder.forward_interests(hs, l, self.interests)
        })?;
        dot_recall(&self.vectors, self.encoder.dim, &users, queries, k)
    }
}

impl Model for TwoTower {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        write_vectors(w, &self.vectors, self.encoder.dim)?;
        if !self.curve.is_empty() {
            let title = format!("{} learning curve", self.encoder.kind.name());
            w.bytes(CURVE_PNG, &curve_png(&self.curve, &title)?)?;
        }
        w.bytes(files::MODEL, &self.encoder.to_onnx_with(self.interests)?)?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        let mut p = json!({
            kan_api::bundle::params::HISTORY_LENGTH: self.history_length,
            "epochs": self.epochs, "batch": BATCH, "uniform_negatives": UNIFORM_NEGATIVES,
            "temperature": self.temperature, "learning_rate": self.learning_rate, "weight_decay": self.weight_decay, "history_dropout": self.history_dropout, "loss": "sampled softmax, logQ-corrected, in-batch + uniform negatives",
            "final_loss": self.final_loss, "best_epoch": self.best_epoch,
            "curve": self.curve,
        });
        if self.encoder.learned_interests() > 0 {
            p["interests"] = json!(self.interests);
            p["interest_pooling"] = json!(
                "learned: ComiRec-SA attention heads over the history, each through the tower; trained on the interest closest to the positive"
            );
        } else if self.interests > 1 {
            p["interests"] = json!(self.interests);
            p["interest_pooling"] = json!(format!(
                "farthest-point seeds, one soft assignment at scale {}, weighted means through the tower",
                kan_core::interests::ASSIGN_SCALE
            ));
        }
        if self.encoder.kind == Kind::Gat {
            p["heads"] = json!(self.encoder.heads);
            p["attention"] = json!("GATv2 over sampled neighbour items, residual mean aggregator");
        }
        p
    }

    fn dim(&self) -> Option<u32> {
        Some(self.encoder.dim as u32)
    }
}

/// A dssm, gat, spectral or sequence bundle (any model meeting the encoder contract) scored as the
/// worker serves it for a catalogue it scans exactly: the bundle's user encoder
/// ([`kan_onnx::UserEncoder::query_vectors`]: the history length the worker uses, padding to
/// it, normalisation), then [`kan_core::interests::exact_recall`] over the item vectors with
/// the queue's `scoreThreshold`. One history per ONNX Runtime run padded to `L`, as the worker
/// runs it, although batches would be faster: a batch pads to another shape, and ONNX Runtime
/// need not reduce it in the same order, so its floats (and the order of near-tied items) need
/// not be the served ones. The scan is the worker's too (a dot product per item, not a matrix
/// product).
pub struct OnnxTwoTower {
    encoder: kan_onnx::UserEncoder,
    vectors: Vec<f32>,
    dim: usize,
    score_threshold: Option<f32>,
}

impl OnnxTwoTower {
    /// Loads the bundle's encoder for a queue with `settings` (the CRD defaults when the queue
    /// gives none): one session per rayon thread, each with the queue's `inferenceThreads`.
    pub fn load(b: &BundleDir, settings: &EncoderSettings) -> Result<Self> {
        let (vectors, dim) = read_vectors(b)?;
        let env = kan_onnx::environment(None)?;
        let encoder = kan_onnx::UserEncoder::load(
            env,
            kan_onnx::Model::Bytes(&b.read(files::MODEL)?),
            b.manifest.encoder_history_length(settings),
            dim,
            settings.inference_threads.max(1) as usize,
            rayon::current_num_threads(),
        )?;
        Ok(OnnxTwoTower {
            encoder,
            vectors,
            dim,
            score_threshold: settings.score_threshold.map(|t| t as f32),
        })
    }

    /// The history length the encoder reads.
    pub fn history_length(&self) -> usize {
        self.encoder.history_length()
    }
}

impl Recaller for OnnxTwoTower {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        use rayon::prelude::*;
        queries
            .par_iter()
            .map(|q| {
                let users = self.encoder.query_vectors(q.history)?;
                let excluded: HashSet<u32> = q.exclude.iter().copied().collect();
                let hits = kan_core::interests::exact_recall(
                    &self.vectors,
                    self.dim,
                    &users,
                    self.score_threshold,
                    |i| excluded.contains(&i),
                    k,
                );
                Ok(hits.into_iter().map(|h| h.item).collect())
            })
            .collect()
    }
}

/// Scores every item by dot product with each query's user vectors (blocks of matrix
/// products): rows of `dim` values are one vector, rows of K·`dim` are K interest vectors whose
/// exact lists are merged by [`kan_core::interests::merge`], as the worker merges its searches.
pub fn dot_recall(
    vectors: &[f32],
    dim: usize,
    users: &[Vec<f32>],
    queries: &[Query],
    k: usize,
) -> Result<Vec<Vec<u32>>> {
    let width = users.first().map_or(dim, Vec::len);
    let n_interests = width / dim.max(1);
    if dim == 0
        || !width.is_multiple_of(dim)
        || n_interests == 0
        || users.iter().any(|u| u.len() != width)
    {
        return Err(Error::Runtime(format!(
            "the user encoder outputs {width} values per user, not a whole number of the item vectors' {dim}"
        )));
    }
    if n_interests > kan_core::interests::MAX_INTERESTS {
        return Err(Error::Runtime(format!(
            "the user encoder outputs {n_interests} interest vectors per user; at most {} are searched",
            kan_core::interests::MAX_INTERESTS
        )));
    }
    let flat: Vec<f32> = users.concat();
    Ok(if n_interests == 1 {
        super::spectral::recall_vectors(&flat, vectors, dim, queries, k)
    } else {
        interests::recall(&flat, n_interests, vectors, dim, queries, k)
    })
}

pub fn normalise_rows(v: &mut [f32], dim: usize) {
    for row in v.chunks_exact_mut(dim) {
        let n = row
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(NORM_EPS as f32);
        row.iter_mut().for_each(|x| *x /= n);
    }
}

pub fn write_vectors(w: &mut BundleWriter, vectors: &[f32], dim: usize) -> Result<()> {
    let rows = vectors.len() / dim.max(1);
    w.tensors(
        files::ITEM_VECTORS,
        &[(
            "vectors".to_string(),
            BundleTensor::matrix(rows, dim, vectors.to_vec()),
        )],
    )?;
    Ok(())
}

pub fn read_vectors(b: &BundleDir) -> Result<(Vec<f32>, usize)> {
    let t = b.tensors(files::ITEM_VECTORS)?;
    let (shape, data) = t.f32("vectors")?;
    let n_items = b.lines(files::ITEMS)?.len();
    match shape[..] {
        [n, d] if n == n_items => Ok((data, d)),
        _ => Err(Error::Bundle {
            dir: b.dir.clone(),
            problem: format!(
                "item vectors have shape {shape:?}, expected [{n_items}, D] to match items.txt"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Interaction;

    /// One user holding items 0..n.
    fn one_user(n: u32) -> History {
        let rows: Vec<Interaction> = (0..n)
            .map(|i| Interaction {
                user: 0,
                item: i,
                ts: i as i64,
                weight: 1.0,
                seq: i,
            })
            .collect();
        History::build(&rows, 1)
    }

    #[test]
    fn interest_attention_is_on_by_default_and_takes_only_0_or_1() {
        let parse = |p: &[&str]| interest_attention(&HyperParams::parse(p).unwrap());
        assert!(parse(&[]).unwrap());
        assert!(!parse(&["interest_attention=0"]).unwrap());
        let e = parse(&["interest_attention=0.5"]).unwrap_err().to_string();
        assert!(e.contains("interest_attention=0.5: must be 1"), "{e}");
    }

    #[test]
    fn a_row_input_skips_every_copy_of_its_target_and_keeps_history_order() {
        let mut rng = StdRng::seed_from_u64(5);
        let items = [7, 3, 7, 9, 1, 7];
        assert_eq!(row_input(&items, 7, 0.0, 10, &mut rng), vec![3, 9, 1]);
        assert_eq!(row_input(&items, 4, 0.0, 10, &mut rng), items.to_vec());
        assert_eq!(row_input(&[7, 7], 7, 0.5, 10, &mut rng), Vec::<u32>::new());
        for _ in 0..200 {
            let two = row_input(&items, 7, 0.0, 2, &mut rng);
            assert_eq!(two.len(), 2);
            let at = |x| [3, 9, 1].iter().position(|&i| i == x).unwrap();
            assert!(at(two[0]) < at(two[1]), "{two:?} out of history order");
        }
    }

    #[test]
    fn neighbour_sampling_draws_every_item_about_equally_often() {
        let items: Vec<u32> = (0..20).collect();
        let mut rng = StdRng::seed_from_u64(9);
        let mut seen = [0usize; 20];
        for _ in 0..4000 {
            for i in row_input(&items, 5, 0.3, 4, &mut rng) {
                seen[i as usize] += 1;
            }
        }
        assert_eq!(seen[5], 0, "the target");
        // 4,000 rows × 4 picks over 19 items: about 842 each.
        for (i, &c) in seen.iter().enumerate().filter(|&(i, _)| i != 5) {
            assert!((740..950).contains(&c), "item {i} drawn {c} times");
        }
    }

    #[test]
    fn history_dropout_leaves_out_about_its_share_and_never_the_whole_history() {
        let h = one_user(41);
        let mut rng = StdRng::seed_from_u64(3);
        let full = Sampler::new(&h, 41, 100, 0.0).draw(&[0; 50], &mut rng);
        assert!(full.hists.iter().all(|r| r.len() == 40));
        let dropped = Sampler::new(&h, 41, 100, 0.5).draw(&[0; 200], &mut rng);
        let mean = dropped.hists.iter().map(Vec::len).sum::<usize>() as f64 / 200.0;
        assert!((16.0..24.0).contains(&mean), "mean kept {mean}");
        // The row's own target (the most recent item) is never in its input.
        assert!(dropped.hists.iter().all(|r| r.iter().all(|&i| i != 40)));
        let most = Sampler::new(&h, 41, 100, 0.999).draw(&[0; 200], &mut rng);
        assert!(most.hists.iter().all(|r| !r.is_empty() && r.len() < 5));
    }
}
