//! The SASRec-style network (Kang & McAuley, ICDM 2018) in candle: item embeddings (shared by
//! the input and the output) scaled by √D plus learned positional embeddings indexed by recency,
//! `blocks` pre-LN blocks of causal multi-head self-attention and a point-wise feed-forward
//! layer with residuals, then a final layer norm.
//!
//! Histories arrive as the user-encoder contract gives them: most recent first, padded at the end
//! (older side) with mask 0. Position `r` is the r-th most recent item, so "the past" of
//! position `r` is positions `c ≥ r`: causal attention lets `r` attend to itself and to older
//! positions only, and never to padding. Position 0 has seen the whole history; its final
//! state, L2-normalised, is the user vector.

use std::collections::BTreeMap;

use candle_core::{D, DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};
use crate::strategies::convergence::{restore_vars, snapshot_vars};

/// Added (negated) to the attention logits of positions a query may not see.
pub const MASK_BIAS: f32 = 1e9;
/// Layer-norm epsilon (ONNX `LayerNormalization` gets the same).
pub const LN_EPS: f64 = 1e-6;
pub const NORM_EPS: f64 = 1e-12;

/// Shape of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub n_items: usize,
    pub dim: usize,
    pub heads: usize,
    pub blocks: usize,
    /// Longest history the positional table covers (the trained L).
    pub max_len: usize,
}

/// The weights. Matrices are [in, out] so `x @ W` reads the same in candle and ONNX.
pub struct Net {
    pub shape: Shape,
    /// Item embeddings [N, D]: inputs (scaled by √D) and, normalised, the item vectors.
    pub item: Var,
    /// Positional embeddings [max_len, D], row r for the r-th most recent item.
    pub pos: Var,
    /// Block and final-norm weights by name (`b{k}_wq`, …, `final_g`, `final_b`).
    pub vars: BTreeMap<String, Var>,
}

/// Per-block weight names, in the order [`Net::block_names`] lists them.
pub const BLOCK_WEIGHTS: [&str; 11] = [
    "ln1_g", "ln1_b", "wq", "wk", "wv", "ln2_g", "ln2_b", "w1", "b1", "w2", "b2",
];

fn normal(rng: &mut StdRng, shape: &[usize], std: f64) -> Result<Var> {
    let n: usize = shape.iter().product();
    let dist = Normal::new(0.0, std).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let data: Vec<f32> = (0..n).map(|_| dist.sample(rng) as f32).collect();
    Ok(Var::from_tensor(&Tensor::from_vec(
        data,
        shape,
        &Device::Cpu,
    )?)?)
}

fn filled(shape: &[usize], value: f64) -> Result<Var> {
    Ok(Var::from_tensor(
        &(Tensor::ones(shape, DType::F32, &Device::Cpu)? * value)?,
    )?)
}

pub fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(NORM_EPS)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Layer norm over the last axis (population variance), as ONNX `LayerNormalization`.
fn layer_norm(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xc.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
    Ok(y.broadcast_mul(g)?.broadcast_add(b)?)
}

/// The additive attention bias of queries `r` over keys `c` for histories of length `l`:
/// 0 where `c ≥ r` (the key is the query's own or an older item), −[`MASK_BIAS`] elsewhere.
pub fn causal_bias(l: usize) -> Vec<f32> {
    let mut out = vec![0f32; l * l];
    for r in 0..l {
        for c in 0..r {
            out[r * l + c] = -MASK_BIAS;
        }
    }
    out
}

/// Inverted dropout drawn from a seeded generator (candle's own dropout is not seeded, and a
/// trained bundle must be reproducible from `--seed`).
pub struct Dropout {
    pub p: f64,
    pub rng: StdRng,
}

impl Dropout {
    pub fn new(p: f64, seed: u64) -> Self {
        Dropout {
            p,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let scale = (1.0 / keep) as f32;
        let n = x.elem_count();
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if self.rng.random::<f64>() < keep {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        Ok((x * Tensor::from_vec(mask, x.dims(), x.device())?)?)
    }
}

fn maybe_dropout(d: &mut Option<&mut Dropout>, x: &Tensor) -> Result<Tensor> {
    match d {
        Some(d) => d.apply(x),
        None => Ok(x.clone()),
    }
}

impl Net {
    pub fn new(shape: Shape, seed: u64) -> Result<Self> {
        let Shape {
            n_items,
            dim,
            heads,
            blocks,
            max_len,
        } = shape;
        if dim == 0 || heads == 0 || !dim.is_multiple_of(heads) {
            return Err(Error::InvalidInput(format!(
                "sequence needs --dim divisible by its {heads} heads, got {dim}"
            )));
        }
        if max_len == 0 || blocks == 0 {
            return Err(Error::InvalidInput(
                "sequence needs a history length and blocks ≥ 1".into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let w = 1.0 / (dim as f64).sqrt();
        // Item rows start at std 1/√D so that √D-scaled inputs are of unit scale.
        let item = normal(&mut rng, &[n_items, dim], w)?;
        let pos = normal(&mut rng, &[max_len, dim], 0.1)?;
        let mut vars = BTreeMap::new();
        for k in 0..blocks {
            for name in BLOCK_WEIGHTS {
                let v = match name {
                    "ln1_g" | "ln2_g" => filled(&[dim], 1.0)?,
                    "ln1_b" | "ln2_b" | "b1" | "b2" => filled(&[dim], 0.0)?,
                    _ => normal(&mut rng, &[dim, dim], w)?,
                };
                vars.insert(format!("b{k}_{name}"), v);
            }
        }
        vars.insert("final_g".into(), filled(&[dim], 1.0)?);
        vars.insert("final_b".into(), filled(&[dim], 0.0)?);
        Ok(Net {
            shape,
            item,
            pos,
            vars,
        })
    }

    pub fn v(&self, name: &str) -> Result<&Tensor> {
        self.vars
            .get(name)
            .map(Var::as_tensor)
            .ok_or_else(|| Error::Onnx(format!("sequence network has no weight {name}")))
    }

    /// Every trainable weight (the optimiser's list, snapshots).
    pub fn all_vars(&self) -> Vec<Var> {
        let mut v = vec![self.item.clone(), self.pos.clone()];
        v.extend(self.vars.values().cloned());
        v
    }

    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        snapshot_vars(&self.all_vars())
    }

    pub fn restore(&self, weights: &[Tensor]) -> Result<()> {
        restore_vars(&self.all_vars(), weights)
    }

    /// Final hidden states [B, L, D] of `ids` i64 [B, L] and `mask` f32 [B, L] (L ≤ max_len);
    /// `dropout` only while training.
    pub fn hidden(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let Shape {
            dim: d,
            heads,
            blocks,
            max_len,
            ..
        } = self.shape;
        if l > max_len {
            return Err(Error::InvalidInput(format!(
                "history length {l} exceeds the {max_len} positions the sequence model was trained with"
            )));
        }
        let dh = d / heads;
        let m = mask.unsqueeze(2)?;
        let e = self
            .item
            .as_tensor()
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        let x = (e * (d as f64).sqrt())?.broadcast_add(&self.pos.as_tensor().narrow(0, 0, l)?)?;
        let mut x = maybe_dropout(&mut dropout, &x)?.broadcast_mul(&m)?;
        // [B, 1, L, L]: causal order plus key padding.
        let causal = Tensor::from_vec(causal_bias(l), (l, l), &Device::Cpu)?;
        let pad = ((mask - 1.0)? * MASK_BIAS as f64)?.reshape((b, 1, 1, l))?;
        let bias = pad.broadcast_add(&causal)?;
        // Projections as one [B·L, D] × [D, D] product each (a batched product of B small
        // ones costs several times more).
        let lin = |t: &Tensor, w: &Tensor| -> Result<Tensor> {
            Ok(t.reshape((b * l, d))?.matmul(w)?.reshape((b, l, d))?)
        };
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, l, heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        for k in 0..blocks {
            let w = |n: &str| self.v(&format!("b{k}_{n}"));
            let h = layer_norm(&x, w("ln1_g")?, w("ln1_b")?)?;
            let q = split(lin(&h, w("wq")?)?)?;
            let kk = split(lin(&h, w("wk")?)?)?;
            let v = split(lin(&h, w("wv")?)?)?;
            let scores =
                (q.matmul(&kk.t()?.contiguous()?)? / (dh as f64).sqrt())?.broadcast_add(&bias)?;
            let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let att = maybe_dropout(&mut dropout, &att)?;
            let o = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, l, d))?;
            x = (x + maybe_dropout(&mut dropout, &o)?)?;
            let h = layer_norm(&x, w("ln2_g")?, w("ln2_b")?)?;
            let f = lin(&h, w("w1")?)?.broadcast_add(w("b1")?)?.relu()?;
            let f = lin(&f, w("w2")?)?.broadcast_add(w("b2")?)?;
            x = (x + maybe_dropout(&mut dropout, &f)?)?.broadcast_mul(&m)?;
        }
        layer_norm(&x, self.v("final_g")?, self.v("final_b")?)
    }

    /// User embeddings [B, D], L2-normalised: the most recent position's final state.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = self.hidden(ids, mask, None)?;
        l2_normalise(&h.narrow(1, 0, 1)?.squeeze(1)?)
    }

    /// L2-normalised item vectors, row-major [N, D].
    pub fn item_vectors(&self) -> Result<Vec<f32>> {
        Ok(l2_normalise(self.item.as_tensor())?
            .flatten_all()?
            .to_vec1()?)
    }

    /// A weight's shape and values, for export.
    pub fn weights(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = match name {
            "item" => self.item.as_tensor(),
            "pos" => self.pos.as_tensor(),
            other => self.v(other)?,
        };
        Ok((t.dims().to_vec(), t.flatten_all()?.to_vec1()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::twotower::batch_inputs;

    fn net() -> Net {
        Net::new(
            Shape {
                n_items: 20,
                dim: 8,
                heads: 2,
                blocks: 2,
                max_len: 6,
            },
            5,
        )
        .unwrap()
    }

    fn hidden_rows(n: &Net, h: &[u32], l: usize) -> Vec<Vec<f32>> {
        let (ids, mask) = batch_inputs(&[h], l).unwrap();
        n.hidden(&ids, &mask, None)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap()
    }

    fn diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_position_sees_only_itself_and_older_items() {
        // Most recent first: position 2 is older than positions 0 and 1.
        let n = net();
        let base = [1u32, 2, 3, 4, 5];
        let mut changed = base;
        changed[2] = 9;
        let a = hidden_rows(&n, &base, 6);
        let b = hidden_rows(&n, &changed, 6);
        for r in 3..5 {
            assert!(
                diff(&a[r], &b[r]) < 1e-6,
                "position {r} is older than the changed item and must not see it"
            );
        }
        for r in 0..=2 {
            assert!(
                diff(&a[r], &b[r]) > 1e-4,
                "position {r} is as recent or newer and must see the change"
            );
        }
    }

    #[test]
    fn padding_does_not_reach_real_positions_and_the_user_vector_ignores_the_padded_length() {
        let n = net();
        let h = [4u32, 7, 1];
        let short = hidden_rows(&n, &h, 3);
        let long = hidden_rows(&n, &h, 6);
        for r in 0..3 {
            assert!(diff(&short[r], &long[r]) < 1e-5, "position {r}");
        }
        let (ids, mask) = batch_inputs(&[&h[..], &[][..]], 6).unwrap();
        let u = n.forward(&ids, &mask).unwrap().to_vec2::<f32>().unwrap();
        let norm: f32 = u[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
        // An empty history is the final norm's bias (zero at initialisation), never NaN.
        assert!(u[1].iter().all(|x| x.is_finite()));
    }

    #[test]
    fn a_history_longer_than_the_trained_positions_is_refused() {
        let n = net();
        let (ids, mask) = batch_inputs(&[&[1u32, 2, 3][..]], 7).unwrap();
        assert!(n.forward(&ids, &mask).is_err());
    }
}
