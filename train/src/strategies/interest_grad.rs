//! dssm with learned interests (ComiRec-SA's extractor, Cen et al., KDD 2020) and hand-written
//! gradients: K attention heads over the history replace the mean, and each head's weighted
//! sum of history rows goes through dssm's residual MLP. A candidate's logit is its best cosine
//! over the K user vectors ([`super::tower_grad::Head`]) — the score the worker ranks by when
//! it merges the K searches — so the positive trains the interest closest to it (ComiRec's and
//! MIND's hard selection) and every negative is pushed away from whichever interest it is
//! closest to, which a loss on the positive's interest alone never does. The same model and
//! loss as [`Encoder`]'s candle forward pass ([`super::twotower::candle_loss`]).
//!
//! Per history position `i` with row `e_i`: `s_i = tanh(e_i W)`, logits `s_i Q` (one column per
//! interest), `α` their softmax over the history per interest, interest `m_k = Σ α_ik e_i`, and
//! the user vector of interest k is the tower of `m_k`. An empty history has zero interests.

use rayon::prelude::*;

use super::dssm_grad::{DssmParams, DssmWork};
use super::tower_grad::{Batch, Head, TowerModel, encoder_weight, row, row_mut, scratch, sized};
use super::twotower::{Encoder, Kind};
use crate::error::{Error, Result};
use crate::linalg::{View, matmul};
use crate::vector::{self, simd};

/// The weights: dssm's, and the interest extractor's.
#[derive(Clone, Debug)]
pub struct InterestParams {
    pub tower: DssmParams,
    /// Attention projection [D, A].
    pub interest_w: Vec<f32>,
    /// One attention query per interest, as columns [A, K].
    pub interest_q: Vec<f32>,
    pub attention_dim: usize,
    pub interests: usize,
}

/// Forward-pass values kept for the backward pass; reused from step to step. A *position* is
/// one (row, history item) pair, positions numbered row by row.
#[derive(Default)]
pub struct InterestWork {
    /// Row `r`'s positions are `starts[r]..starts[r + 1]`; `items` holds each one's item.
    starts: Vec<usize>,
    items: Vec<u32>,
    /// Per position: its history row [P, D], `tanh(e W)` [P, A], and the attention logits,
    /// then weights [P, K].
    e: Vec<f32>,
    s: Vec<f32>,
    alpha: Vec<f32>,
    /// Per row and interest: the pooled rows and the tower's hidden layer [B·K, D].
    m: Vec<f32>,
    h: Vec<f32>,
    dh: Vec<f32>,
    dm: Vec<f32>,
    dlogits: Vec<f32>,
    ds: Vec<f32>,
    de: Vec<f32>,
}

/// The learned-interest dssm training run.
pub type Trainer = super::tower_grad::Trainer<InterestParams>;

/// `data` cut into consecutive mutable pieces of `width` × each run length in `starts`.
fn ragged_mut<'a>(mut data: &'a mut [f32], starts: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(starts.len().saturating_sub(1));
    for w in starts.windows(2) {
        let (piece, rest) = data.split_at_mut((w[1] - w[0]) * width);
        out.push(piece);
        data = rest;
    }
    out
}

/// Softmax over the positions (rows of the [n, K] block `logits`) of each interest (column),
/// in place.
fn softmax_columns(logits: &mut [f32], k: usize) {
    if logits.is_empty() {
        return;
    }
    for c in 0..k {
        let max = logits[c..]
            .iter()
            .step_by(k)
            .fold(f32::NEG_INFINITY, |a, &x| a.max(x));
        let mut sum = 0.0;
        for x in logits[c..].iter_mut().step_by(k) {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in logits[c..].iter_mut().step_by(k) {
            *x /= sum;
        }
    }
}

impl InterestParams {
    /// Rows, `tanh(e W)`, attention weights and pooled interests of every history.
    fn pool(&self, batch: &Batch, w: &mut InterestWork) {
        let (d, a, k) = (self.tower.dim, self.attention_dim, self.interests);
        w.starts.clear();
        w.starts.push(0);
        w.items.clear();
        for h in batch.hists {
            w.items.extend_from_slice(h);
            w.starts.push(w.items.len());
        }
        let p = w.items.len();
        let e = scratch(&mut w.e, p * d);
        e.par_chunks_mut(d)
            .zip(w.items.par_iter())
            .for_each(|(r, &i)| r.copy_from_slice(row(&self.tower.history, i, d)));
        let s = scratch(&mut w.s, p * a);
        matmul(
            s,
            View::new(&w.e, p, d),
            View::new(&self.interest_w, d, a),
            1.0,
            0.0,
        );
        s.par_chunks_mut(a)
            .for_each(|r| r.iter_mut().for_each(|x| *x = x.tanh()));
        let alpha = scratch(&mut w.alpha, p * k);
        matmul(
            alpha,
            View::new(&w.s, p, a),
            View::new(&self.interest_q, a, k),
            1.0,
            0.0,
        );
        let m = sized(&mut w.m, batch.hists.len() * k * d);
        let e = &w.e;
        let starts = &w.starts;
        ragged_mut(&mut w.alpha, starts, k)
            .into_par_iter()
            .zip(m.par_chunks_mut(k * d))
            .enumerate()
            .for_each(|(r, (alpha, m))| {
                softmax_columns(alpha, k);
                let rows = &e[starts[r] * d..starts[r + 1] * d];
                simd(
                    #[inline(always)]
                    || {
                        for (weights, x) in alpha.chunks_exact(k).zip(rows.chunks_exact(d)) {
                            for (&wk, mk) in weights.iter().zip(m.chunks_exact_mut(d)) {
                                vector::axpy(wk, x, mk);
                            }
                        }
                    },
                );
            });
    }

    /// The attention's backward pass from dL/dm [B·K, D]: gradients of W, Q and (scattered)
    /// the history table.
    fn pool_backward(&self, g: &mut Self, w: &mut InterestWork) {
        let (d, a, k) = (self.tower.dim, self.attention_dim, self.interests);
        let p = w.items.len();
        let de = scratch(&mut w.de, p * d);
        let dlogits = scratch(&mut w.dlogits, p * k);
        let (e, alpha, starts, dm) = (&w.e, &w.alpha, &w.starts, &w.dm);
        ragged_mut(de, starts, d)
            .into_par_iter()
            .zip(ragged_mut(dlogits, starts, k))
            .enumerate()
            .for_each(|(r, (de, dlogits))| {
                let dm = &dm[r * k * d..(r + 1) * k * d];
                let rows = &e[starts[r] * d..starts[r + 1] * d];
                let weights = &alpha[starts[r] * k..starts[r + 1] * k];
                simd(
                    #[inline(always)]
                    || {
                        // dα_ic = e_i · dm_c, and de_i = Σ_c α_ic dm_c.
                        for (((x, wk), dl), out) in rows
                            .chunks_exact(d)
                            .zip(weights.chunks_exact(k))
                            .zip(dlogits.chunks_exact_mut(k))
                            .zip(de.chunks_exact_mut(d))
                        {
                            out.fill(0.0);
                            for ((o, &a), dmc) in dl.iter_mut().zip(wk).zip(dm.chunks_exact(d)) {
                                *o = vector::dot(x, dmc);
                                vector::axpy(a, dmc, out);
                            }
                        }
                    },
                );
                // The softmax over the positions, per interest: dlogit = α (dα − Σ α dα).
                for c in 0..k {
                    let mean: f32 = weights
                        .iter()
                        .skip(c)
                        .step_by(k)
                        .zip(dlogits.iter().skip(c).step_by(k))
                        .map(|(a, g)| a * g)
                        .sum();
                    for (a, g) in weights
                        .iter()
                        .skip(c)
                        .step_by(k)
                        .zip(dlogits.iter_mut().skip(c).step_by(k))
                    {
                        *g = a * (*g - mean);
                    }
                }
            });
        matmul(
            &mut g.interest_q,
            View::new(&w.s, p, a).t(),
            View::new(&w.dlogits, p, k),
            1.0,
            1.0,
        );
        // dS through tanh, then into W and the rows.
        let ds = scratch(&mut w.ds, p * a);
        matmul(
            ds,
            View::new(&w.dlogits, p, k),
            View::new(&self.interest_q, a, k).t(),
            1.0,
            0.0,
        );
        ds.par_chunks_mut(a)
            .zip(w.s.par_chunks(a))
            .for_each(|(dr, sr)| {
                dr.iter_mut()
                    .zip(sr)
                    .for_each(|(x, &sv)| *x *= 1.0 - sv * sv)
            });
        matmul(
            &mut g.interest_w,
            View::new(&w.e, p, d).t(),
            View::new(&w.ds, p, a),
            1.0,
            1.0,
        );
        matmul(
            &mut w.de,
            View::new(&w.ds, p, a),
            View::new(&self.interest_w, d, a).t(),
            1.0,
            1.0,
        );
        simd(
            #[inline(always)]
            || {
                for (&i, gr) in w.items.iter().zip(w.de.chunks_exact(d)) {
                    vector::add(gr, row_mut(&mut g.tower.history, i, d));
                }
            },
        );
    }
}

impl TowerModel for InterestParams {
    type Work = InterestWork;

    fn from_encoder(e: &Encoder) -> Result<Self> {
        let k = e.learned_interests();
        if e.kind != Kind::Dssm || k == 0 {
            return Err(Error::InvalidInput(format!(
                "learned-interest weights asked of a {:?} encoder without them",
                e.kind
            )));
        }
        let interest_q = encoder_weight(e, "interest_q")?;
        Ok(InterestParams {
            tower: DssmParams::from_encoder(e)?,
            interest_w: encoder_weight(e, "interest_w")?,
            attention_dim: interest_q.len() / k,
            interest_q,
            interests: k,
        })
    }

    fn named(&self) -> Vec<(&'static str, &Vec<f32>)> {
        let mut v = self.tower.named();
        v.push(("interest_w", &self.interest_w));
        v.push(("interest_q", &self.interest_q));
        v
    }

    fn buffers_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut v = self.tower.buffers_mut();
        v.push(&mut self.interest_w);
        v.push(&mut self.interest_q);
        v
    }

    fn forward_backward(
        &self,
        batch: &Batch,
        temperature: f64,
        g: &mut Self,
        w: &mut InterestWork,
        head: &mut Head,
    ) -> f32 {
        let (d, k) = (self.tower.dim, self.interests);
        let b = batch.hists.len();
        self.pool(batch, w);
        let h = scratch(&mut w.h, b * k * d);
        let y = head.user_buffer(b * k, d);
        self.tower.tower_forward(&w.m, h, y);
        let loss = head.loss_and_grads(&self.tower.item, d, batch, temperature, &mut g.tower.item);
        let dm = scratch(&mut w.dm, b * k * d);
        self.tower
            .tower_backward(&w.m, &w.h, &head.dy, &mut g.tower, &mut w.dh, dm);
        self.pool_backward(g, w);
        loss
    }

    fn clear_grads(g: &mut Self, batch: &Batch, _: &InterestWork) {
        DssmParams::clear_grads(&mut g.tower, batch, &DssmWork::default());
        g.interest_w.fill(0.0);
        g.interest_q.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::tower_grad::testing;

    /// A dssm encoder with 3 learned interests and non-zero tower biases.
    fn encoder() -> Encoder {
        let enc = Encoder::new(Kind::Dssm, 12, 8, 7)
            .unwrap()
            .with_interest_attention(3, 7)
            .unwrap();
        let mut p = InterestParams::from_encoder(&enc).unwrap();
        p.tower
            .b1
            .iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = 0.05 * i as f32);
        p.store(&enc).unwrap();
        enc
    }

    #[test]
    fn hand_written_gradients_equal_candle_autograd_of_the_same_loss() {
        testing::assert_gradients_match_candle::<InterestParams>(&encoder());
    }

    #[test]
    fn gradients_hold_on_a_batch_spanning_several_parallel_tasks() {
        let enc = Encoder::new(Kind::Dssm, 50, 8, 3)
            .unwrap()
            .with_interest_attention(4, 3)
            .unwrap();
        let (hists, cands, bias) = testing::large_batch_parts(60, 50);
        testing::assert_gradients_match_candle_on::<InterestParams>(&enc, &hists, &cands, &bias);
    }

    #[test]
    fn gradients_hold_when_the_softmax_runs_in_several_blocks_per_task() {
        let enc = Encoder::new(Kind::Dssm, 50, 8, 5)
            .unwrap()
            .with_interest_attention(4, 3)
            .unwrap();
        testing::assert_gradients_match_candle_over_softmax_blocks::<InterestParams>(&enc);
    }

    #[test]
    fn a_trainer_step_moves_the_weights_as_candles_adamw_does() {
        testing::assert_steps_match_adamw::<InterestParams>(encoder);
    }

    #[test]
    fn attention_over_a_history_is_a_softmax_per_interest() {
        // Two positions, two interests.
        let mut logits = [0.0, 1.0, 0.0, -1.0];
        softmax_columns(&mut logits, 2);
        assert!((logits[0] - 0.5).abs() < 1e-6 && (logits[2] - 0.5).abs() < 1e-6);
        let e = std::f32::consts::E;
        assert!((logits[1] - e * e / (e * e + 1.0)).abs() < 1e-6);
        assert!((logits[1] + logits[3] - 1.0).abs() < 1e-6);
    }
}
