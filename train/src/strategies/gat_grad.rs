//! The gat user tower with hand-written gradients, under the head of [`super::tower_grad`]:
//! the same model and loss as [`Encoder`]'s forward pass under candle's autograd.
//!
//! A user row attends over its history items (the item table's rows): with `m` the mean of
//! the rows, per item `z = leaky(e Wk + m Wq)`, per head `s = z att`, `α = softmax(s)` over the
//! history, `agg = Σ α (e Wv)` (heads side by side), and `y = agg Wo + bo + m`. The positions
//! of all rows are flattened into one ragged list. Keys are projected once per distinct item
//! of the batch (one matrix product); values are projected after the attention sum, per row and
//! head (`Σ α (e Wv) = (Σ α e) Wv`), so no per-item value is ever computed. An empty history
//! attends to item 0 alone with a zero mean: what the padded encoder computes when every
//! position is masked (uniform attention over padding id 0).

use rayon::prelude::*;

use super::tower_grad::{
    Batch, Head, TowerModel, encoder_weight, history_means, row, row_mut, scratch, sized,
};
use super::twotower::{Encoder, Kind, LEAKY_SLOPE};
use crate::error::{Error, Result};
use crate::linalg::{View, matmul};
use crate::vector::{self, simd};

/// The gat weights as flat row-major buffers (matrices [in, out], as in [`Encoder`]).
#[derive(Clone, Debug)]
pub struct GatParams {
    pub dim: usize,
    pub heads: usize,
    /// Item node embeddings [N, D]: the attention inputs and the item vectors.
    pub item: Vec<f32>,
    pub wq: Vec<f32>,
    pub wk: Vec<f32>,
    pub wv: Vec<f32>,
    pub wo: Vec<f32>,
    /// Attention vectors, one column per head [D, H].
    pub att: Vec<f32>,
    pub bo: Vec<f32>,
}

/// Forward-pass values kept for the backward pass, and its buffers; reused from step to step.
#[derive(Default)]
pub struct GatWork {
    count: Vec<f32>,
    mean: Vec<f32>,
    /// Row `r`'s positions are `starts[r]..starts[r + 1]` of the flattened lists below.
    starts: Vec<usize>,
    /// Per position: its row, and the slot in `uniq` of the item it attends to.
    row_of: Vec<u32>,
    slot: Vec<u32>,
    /// The batch's distinct history items: projections are computed once per item, not per
    /// position (popular items fill many positions of a batch).
    uniq: Vec<u32>,
    /// Slot `s`'s positions are `by_slot[slot_starts[s]..slot_starts[s + 1]]`: per-item
    /// gradients are summed per slot, in parallel and without scattering per position.
    slot_starts: Vec<u32>,
    by_slot: Vec<u32>,
    /// Item → slot in `uniq` (`u32::MAX`: none), reset after each step.
    slot_of: Vec<u32>,
    /// attᵀ [H, D], assembled per step.
    att_t: Vec<f32>,
    /// The distinct items' rows [U, D] and keys [U, D].
    e: Vec<f32>,
    k: Vec<f32>,
    q: Vec<f32>,
    /// Per position: leaky(key + query) [P, D] and the attention weights [P, H].
    z: Vec<f32>,
    alpha: Vec<f32>,
    /// Per row and head, the attention-weighted sum of item rows [B, H, D].
    ew: Vec<f32>,
    agg: Vec<f32>,
    dagg: Vec<f32>,
    dew: Vec<f32>,
    dmean: Vec<f32>,
    ds: Vec<f32>,
    head_sums: Vec<f32>,
    dpre: Vec<f32>,
    dk: Vec<f32>,
    de: Vec<f32>,
    dq: Vec<f32>,
}

/// The gat training run.
pub type Trainer = super::tower_grad::Trainer<GatParams>;

/// Positions per parallel task: each task runs its positions through one vectorised loop.
const GRAIN: usize = 64;

#[inline(always)]
fn leaky(x: f32) -> f32 {
    if x > 0.0 { x } else { LEAKY_SLOPE as f32 * x }
}

#[inline(always)]
fn leaky_slope(x: f32) -> f32 {
    if x > 0.0 { 1.0 } else { LEAKY_SLOPE as f32 }
}

impl GatParams {
    /// Flattens the rows' histories into positions (an empty history attends to item 0), gives
    /// each distinct item a slot and lists each slot's positions.
    fn positions(&self, w: &mut GatWork, hists: &[Vec<u32>]) {
        let n_items = self.item.len() / self.dim.max(1);
        if w.slot_of.len() != n_items {
            w.slot_of = vec![u32::MAX; n_items];
        }
        w.starts.clear();
        w.row_of.clear();
        w.slot.clear();
        w.uniq.clear();
        w.starts.push(0);
        for (r, hist) in hists.iter().enumerate() {
            let items: &[u32] = if hist.is_empty() { &[0] } else { hist };
            for &i in items {
                let s = &mut w.slot_of[i as usize];
                if *s == u32::MAX {
                    *s = w.uniq.len() as u32;
                    w.uniq.push(i);
                }
                w.slot.push(*s);
                w.row_of.push(r as u32);
            }
            w.starts.push(w.slot.len());
        }
        for &i in &w.uniq {
            w.slot_of[i as usize] = u32::MAX;
        }
        // Positions grouped by slot (a counting sort).
        w.slot_starts.clear();
        w.slot_starts.resize(w.uniq.len() + 1, 0);
        for &s in &w.slot {
            w.slot_starts[s as usize + 1] += 1;
        }
        for s in 0..w.uniq.len() {
            w.slot_starts[s + 1] += w.slot_starts[s];
        }
        w.by_slot.clear();
        w.by_slot.resize(w.slot.len(), 0);
        let mut next = w.slot_starts.clone();
        for (pos, &s) in w.slot.iter().enumerate() {
            w.by_slot[next[s as usize] as usize] = pos as u32;
            next[s as usize] += 1;
        }
    }

    /// The attention forward pass into `y` [B, D] (raw user vectors).
    fn attend(&self, batch: &Batch, w: &mut GatWork, y: &mut [f32]) {
        let (d, heads) = (self.dim, self.heads);
        let dh = d / heads;
        let b = batch.hists.len();
        let count = sized(&mut w.count, b);
        let mean = sized(&mut w.mean, b * d);
        history_means(&self.item, d, batch.hists, count, mean);
        self.positions(w, batch.hists);
        let (p, u) = (w.slot.len(), w.uniq.len());

        // Keys of the distinct items, the rows' queries.
        let e = scratch(&mut w.e, u * d);
        e.par_chunks_mut(d)
            .zip(w.uniq.par_iter())
            .for_each(|(out, &i)| out.copy_from_slice(row(&self.item, i, d)));
        let k = scratch(&mut w.k, u * d);
        matmul(
            k,
            View::new(&w.e, u, d),
            View::new(&self.wk, d, d),
            1.0,
            0.0,
        );
        let q = scratch(&mut w.q, b * d);
        matmul(
            q,
            View::new(&w.mean, b, d),
            View::new(&self.wq, d, d),
            1.0,
            0.0,
        );

        // Per position: z = leaky(key + query), logits s = z att.
        w.att_t.clear();
        for h in 0..heads {
            w.att_t.extend(self.att.iter().skip(h).step_by(heads));
        }
        let z = scratch(&mut w.z, p * d);
        let alpha = scratch(&mut w.alpha, p * heads);
        z.par_chunks_mut(GRAIN * d)
            .zip(alpha.par_chunks_mut(GRAIN * heads))
            .zip(w.row_of.par_chunks(GRAIN).zip(w.slot.par_chunks(GRAIN)))
            .for_each(|((zc, sc), (rows, slots))| {
                simd(
                    #[inline(always)]
                    || {
                        let per_position = zc
                            .chunks_exact_mut(d)
                            .zip(sc.chunks_exact_mut(heads))
                            .zip(rows.iter().zip(slots));
                        for ((zr, sr), (&r, &slot)) in per_position {
                            for ((o, key), x) in
                                zr.iter_mut().zip(row(&w.k, slot, d)).zip(row(&w.q, r, d))
                            {
                                *o = leaky(key + x);
                            }
                            for (out, att) in sr.iter_mut().zip(w.att_t.chunks_exact(d)) {
                                *out = vector::dot(zr, att);
                            }
                        }
                    },
                )
            });

        // Attention weights: per row and head, a softmax over the row's positions; then the
        // weighted sum of the rows' item rows per head.
        let ew = sized(&mut w.ew, b * heads * d);
        split_rows(alpha, &w.starts, heads)
            .into_par_iter()
            .zip(ew.par_chunks_mut(heads * d))
            .enumerate()
            .for_each(|(r, (seg, out))| {
                simd(
                    #[inline(always)]
                    || {
                        softmax_per_head(seg, heads);
                        for (a, &slot) in seg
                            .chunks_exact(heads)
                            .zip(&w.slot[w.starts[r]..w.starts[r + 1]])
                        {
                            let er = row(&w.e, slot, d);
                            for (&ah, o) in a.iter().zip(out.chunks_exact_mut(d)) {
                                vector::axpy(ah, er, o);
                            }
                        }
                    },
                )
            });

        // agg[head h] = ew[h] Wv[:, head h]; y = agg Wo + bo + mean.
        let agg = sized(&mut w.agg, b * d);
        agg.par_chunks_mut(d)
            .zip(w.ew.par_chunks(heads * d))
            .for_each(|(out, er)| {
                simd(
                    #[inline(always)]
                    || {
                        for (h, (o, eh)) in
                            out.chunks_exact_mut(dh).zip(er.chunks_exact(d)).enumerate()
                        {
                            for (&x, wv) in eh.iter().zip(self.wv.chunks_exact(d)) {
                                vector::axpy(x, &wv[h * dh..(h + 1) * dh], o);
                            }
                        }
                    },
                )
            });
        y.copy_from_slice(&w.mean);
        matmul(
            y,
            View::new(&w.agg, b, d),
            View::new(&self.wo, d, d),
            1.0,
            1.0,
        );
        y.par_chunks_mut(d).for_each(|r| {
            simd(
                #[inline(always)]
                || vector::add(&self.bo, r),
            )
        });
    }

    /// The attention backward pass from dL/dy [B, D], into `g` (the item table's rows by
    /// one scatter per distinct item).
    fn attend_backward(&self, hists: &[Vec<u32>], dy: &[f32], w: &mut GatWork, g: &mut GatParams) {
        let (d, heads) = (self.dim, self.heads);
        let dh = d / heads;
        let b = dy.len() / d;
        let (p, u) = (w.slot.len(), w.uniq.len());

        simd(
            #[inline(always)]
            || dy.chunks_exact(d).for_each(|r| vector::add(r, &mut g.bo)),
        );
        matmul(
            &mut g.wo,
            View::new(&w.agg, b, d).t(),
            View::new(dy, b, d),
            1.0,
            1.0,
        );
        let dagg = scratch(&mut w.dagg, b * d);
        matmul(
            dagg,
            View::new(dy, b, d),
            View::new(&self.wo, d, d).t(),
            1.0,
            0.0,
        );

        // Values: dew[h] = dagg[head h] Wv[:, head h]ᵀ; dWv[:, head h] += ew[h]ᵀ dagg[head h].
        let dew = scratch(&mut w.dew, b * heads * d);
        dew.par_chunks_mut(heads * d)
            .zip(w.dagg.par_chunks(d))
            .for_each(|(out, ga)| {
                simd(
                    #[inline(always)]
                    || {
                        for (h, (o, gh)) in
                            out.chunks_exact_mut(d).zip(ga.chunks_exact(dh)).enumerate()
                        {
                            for (x, wv) in o.iter_mut().zip(self.wv.chunks_exact(d)) {
                                *x = vector::dot(gh, &wv[h * dh..(h + 1) * dh]);
                            }
                        }
                    },
                )
            });
        simd(
            #[inline(always)]
            || {
                for (er, ga) in w.ew.chunks_exact(heads * d).zip(w.dagg.chunks_exact(d)) {
                    for (h, (eh, gh)) in er.chunks_exact(d).zip(ga.chunks_exact(dh)).enumerate() {
                        for (&x, wv) in eh.iter().zip(g.wv.chunks_exact_mut(d)) {
                            vector::axpy(x, gh, &mut wv[h * dh..(h + 1) * dh]);
                        }
                    }
                }
            },
        );

        // Per position: dα = dew · e (kept in ds), then the softmax backward
        // ds = α (dα − Σ α dα), the sum over the row's positions per head.
        let ds = scratch(&mut w.ds, p * heads);
        ds.par_chunks_mut(GRAIN * heads)
            .zip(w.row_of.par_chunks(GRAIN).zip(w.slot.par_chunks(GRAIN)))
            .for_each(|(dc, (rows, slots))| {
                simd(
                    #[inline(always)]
                    || {
                        for (dsp, (&r, &slot)) in
                            dc.chunks_exact_mut(heads).zip(rows.iter().zip(slots))
                        {
                            let er = row(&w.e, slot, d);
                            let dr = row(&w.dew, r, heads * d);
                            for (out, dh_row) in dsp.iter_mut().zip(dr.chunks_exact(d)) {
                                *out = vector::dot(dh_row, er);
                            }
                        }
                    },
                )
            });
        let sums = sized(&mut w.head_sums, b * heads);
        sums.par_chunks_mut(heads).enumerate().for_each(|(r, out)| {
            let span = w.starts[r] * heads..w.starts[r + 1] * heads;
            let per_position = w.alpha[span.clone()]
                .chunks_exact(heads)
                .zip(w.ds[span].chunks_exact(heads));
            for (a, s) in per_position {
                for ((o, a), s) in out.iter_mut().zip(a).zip(s) {
                    *o += a * s;
                }
            }
        });
        w.ds.par_chunks_mut(GRAIN * heads)
            .zip(w.alpha.par_chunks(GRAIN * heads))
            .zip(w.row_of.par_chunks(GRAIN))
            .for_each(|((dc, ac), rows)| {
                let per_position = dc.chunks_exact_mut(heads).zip(ac.chunks_exact(heads));
                for ((dsp, ap), &r) in per_position.zip(rows) {
                    for ((x, a), s) in dsp.iter_mut().zip(ap).zip(row(&w.head_sums, r, heads)) {
                        *x = a * (*x - s);
                    }
                }
            });
        // dattᵀ [H, D] = dsᵀ z, reduced over chunks of positions.
        const CHUNK: usize = 4096;
        let datt_t =
            w.z.par_chunks(CHUNK * d)
                .zip(w.ds.par_chunks(CHUNK * heads))
                .map(|(zc, dsc)| {
                    simd(
                        #[inline(always)]
                        || {
                            let mut acc = vec![0f32; heads * d];
                            for (zr, dsr) in zc.chunks_exact(d).zip(dsc.chunks_exact(heads)) {
                                for (a, &x) in acc.chunks_exact_mut(d).zip(dsr) {
                                    vector::axpy(x, zr, a);
                                }
                            }
                            acc
                        },
                    )
                })
                .reduce(
                    || vec![0f32; heads * d],
                    |mut a, b| {
                        vector::add(&b, &mut a);
                        a
                    },
                );
        for (h, col) in datt_t.chunks_exact(d).enumerate() {
            for (j, x) in col.iter().enumerate() {
                g.att[j * heads + h] += x;
            }
        }
        // dpre = (ds attᵀ) ⊙ leaky'(pre); z has pre's sign.
        let dpre = scratch(&mut w.dpre, p * d);
        dpre.par_chunks_mut(GRAIN * d)
            .zip(w.z.par_chunks(GRAIN * d))
            .zip(w.ds.par_chunks(GRAIN * heads))
            .for_each(|((dc, zc), dsc)| {
                simd(
                    #[inline(always)]
                    || {
                        let per_position = dc.chunks_exact_mut(d).zip(zc.chunks_exact(d));
                        for ((dr, zr), dsp) in per_position.zip(dsc.chunks_exact(heads)) {
                            dr.fill(0.0);
                            for (&x, col) in dsp.iter().zip(w.att_t.chunks_exact(d)) {
                                vector::axpy(x, col, dr);
                            }
                            dr.iter_mut()
                                .zip(zr)
                                .for_each(|(o, &a)| *o *= leaky_slope(a));
                        }
                    },
                )
            });

        // The query: dq = Σ dpre over the row's positions; dmean = dy + dq Wqᵀ.
        let dq = sized(&mut w.dq, b * d);
        dq.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
            simd(
                #[inline(always)]
                || {
                    for pre in w.dpre[w.starts[r] * d..w.starts[r + 1] * d].chunks_exact(d) {
                        vector::add(pre, out);
                    }
                },
            )
        });
        matmul(
            &mut g.wq,
            View::new(&w.mean, b, d).t(),
            View::new(&w.dq, b, d),
            1.0,
            1.0,
        );
        let dmean = scratch(&mut w.dmean, b * d);
        dmean.copy_from_slice(dy);
        matmul(
            dmean,
            View::new(&w.dq, b, d),
            View::new(&self.wq, d, d).t(),
            1.0,
            1.0,
        );

        // Per distinct item, over its positions: dk = Σ dpre, and de = Σ (α dew + the row's mean
        // share) — an empty history's stand-in item 0 does not feed its zero mean.
        let dk = scratch(&mut w.dk, u * d);
        let de = scratch(&mut w.de, u * d);
        dk.par_chunks_mut(d)
            .zip(de.par_chunks_mut(d))
            .zip(w.slot_starts.par_windows(2))
            .for_each(|((dk, de), span)| {
                simd(
                    #[inline(always)]
                    || {
                        dk.fill(0.0);
                        de.fill(0.0);
                        for &pos in &w.by_slot[span[0] as usize..span[1] as usize] {
                            let pos = pos as usize;
                            let r = w.row_of[pos];
                            vector::add(&w.dpre[pos * d..(pos + 1) * d], dk);
                            let dr = row(&w.dew, r, heads * d);
                            for (&a, dh_row) in w.alpha[pos * heads..(pos + 1) * heads]
                                .iter()
                                .zip(dr.chunks_exact(d))
                            {
                                vector::axpy(a, dh_row, de);
                            }
                            if !hists[r as usize].is_empty() {
                                vector::axpy(1.0 / w.count[r as usize], row(&w.dmean, r, d), de);
                            }
                        }
                    },
                )
            });
        // dWk = Eᵀ dk; dE += dk Wkᵀ.
        matmul(
            &mut g.wk,
            View::new(&w.e, u, d).t(),
            View::new(&w.dk, u, d),
            1.0,
            1.0,
        );
        matmul(
            &mut w.de,
            View::new(&w.dk, u, d),
            View::new(&self.wk, d, d).t(),
            1.0,
            1.0,
        );
        simd(
            #[inline(always)]
            || {
                for (&i, de) in w.uniq.iter().zip(w.de.chunks_exact(d)) {
                    vector::add(de, row_mut(&mut g.item, i, d));
                }
            },
        );
    }
}

/// Softmax over a row's positions, per head, in place: `seg` is [positions, H].
#[inline(always)]
fn softmax_per_head(seg: &mut [f32], heads: usize) {
    let mut max = vec![f32::NEG_INFINITY; heads];
    for c in seg.chunks_exact(heads) {
        for (m, &x) in max.iter_mut().zip(c) {
            *m = m.max(x);
        }
    }
    for c in seg.chunks_exact_mut(heads) {
        for (x, m) in c.iter_mut().zip(&max) {
            *x -= m;
        }
    }
    vector::exp_shifted(seg, 0.0);
    let mut sum = vec![0f32; heads];
    for c in seg.chunks_exact(heads) {
        vector::add(c, &mut sum);
    }
    for c in seg.chunks_exact_mut(heads) {
        for (x, s) in c.iter_mut().zip(&sum) {
            *x /= s;
        }
    }
}

/// `buf` [P, W] split into the rows' segments `starts[r]..starts[r + 1]`.
fn split_rows<'a>(mut buf: &'a mut [f32], starts: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut out = Vec::with_capacity(starts.len().saturating_sub(1));
    for pair in starts.windows(2) {
        let (seg, rest) = buf.split_at_mut((pair[1] - pair[0]) * width);
        out.push(seg);
        buf = rest;
    }
    out
}

impl TowerModel for GatParams {
    type Work = GatWork;

    fn from_encoder(e: &Encoder) -> Result<Self> {
        if e.kind != Kind::Gat {
            return Err(Error::InvalidInput(format!(
                "gat weights asked of a {:?} encoder",
                e.kind
            )));
        }
        Ok(GatParams {
            dim: e.dim,
            heads: e.heads,
            item: encoder_weight(e, "item")?,
            wq: encoder_weight(e, "wq")?,
            wk: encoder_weight(e, "wk")?,
            wv: encoder_weight(e, "wv")?,
            wo: encoder_weight(e, "wo")?,
            att: encoder_weight(e, "att")?,
            bo: encoder_weight(e, "bo")?,
        })
    }

    fn named(&self) -> Vec<(&'static str, &Vec<f32>)> {
        vec![
            ("item", &self.item),
            ("wq", &self.wq),
            ("wk", &self.wk),
            ("wv", &self.wv),
            ("wo", &self.wo),
            ("att", &self.att),
            ("bo", &self.bo),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<&mut Vec<f32>> {
        vec![
            &mut self.item,
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.att,
            &mut self.bo,
        ]
    }

    fn forward_backward(
        &self,
        batch: &Batch,
        temperature: f64,
        g: &mut Self,
        w: &mut GatWork,
        head: &mut Head,
    ) -> f32 {
        let b = batch.hists.len();
        self.attend(batch, w, head.user_buffer(b, self.dim));
        let loss = head.loss_and_grads(&self.item, self.dim, batch, temperature, &mut g.item);
        self.attend_backward(batch.hists, &head.dy, w, g);
        loss
    }

    fn clear_grads(g: &mut Self, batch: &Batch, w: &GatWork) {
        let d = g.dim;
        // The distinct history items (item 0 among them where it stood in for an empty
        // history) and the candidates, whose rows hold the head's share.
        for &i in w.uniq.iter().chain(batch.cands) {
            row_mut(&mut g.item, i, d).fill(0.0);
        }
        for v in [
            &mut g.wq, &mut g.wk, &mut g.wv, &mut g.wo, &mut g.att, &mut g.bo,
        ] {
            v.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::tower_grad::testing;

    /// A gat encoder (8 dims, 4 heads of 2) with a non-zero output bias.
    fn encoder() -> Encoder {
        let enc = Encoder::new(Kind::Gat, 12, 8, 7).unwrap();
        let mut p = GatParams::from_encoder(&enc).unwrap();
        p.bo.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = 0.04 * i as f32 - 0.1);
        p.store(&enc).unwrap();
        enc
    }

    #[test]
    fn hand_written_gradients_equal_candle_autograd_of_the_same_loss() {
        testing::assert_gradients_match_candle::<GatParams>(&encoder());
    }

    #[test]
    fn gradients_equal_candle_autograd_on_a_batch_spanning_several_parallel_tasks() {
        let enc = Encoder::new(Kind::Gat, 50, 8, 3).unwrap();
        let (hists, cands, bias) = testing::large_batch_parts(60, 50);
        let positions: usize = hists.iter().map(|h| h.len().max(1)).sum();
        assert!(positions > 3 * GRAIN, "{positions} positions");
        testing::assert_gradients_match_candle_on::<GatParams>(&enc, &hists, &cands, &bias);
    }

    #[test]
    fn a_trainer_step_moves_the_weights_as_candles_adamw_does() {
        testing::assert_steps_match_adamw::<GatParams>(encoder);
    }
}
