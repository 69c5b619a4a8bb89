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
use crate::linalg::{View, matmul, matmul_block};
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
///
/// A *position* is one (row, history item) pair. Positions are numbered in slot order (all
/// positions of the batch's first distinct item, then the second's, …): the per-position passes
/// then read the distinct items' rows and keys (megabytes) in sequence and the rows' data
/// (a few hundred kilobytes, cache-resident) at random, and sum per-item gradients over a
/// contiguous run of positions.
#[derive(Default)]
pub struct GatWork {
    count: Vec<f32>,
    mean: Vec<f32>,
    /// Per position: its row and the slot in `uniq` of the item it attends to.
    row_of: Vec<u32>,
    slot: Vec<u32>,
    /// Row `r`'s positions are `row_pos[row_starts[r]..row_starts[r + 1]]`.
    row_starts: Vec<usize>,
    row_pos: Vec<u32>,
    /// Slot `s`'s positions are `slot_starts[s]..slot_starts[s + 1]`.
    slot_starts: Vec<usize>,
    /// The batch's distinct history items: projections are computed once per item, not per
    /// position (popular items fill many positions of a batch).
    uniq: Vec<u32>,
    /// Item → slot in `uniq` (`u32::MAX`: none), reset after each step.
    slot_of: Vec<u32>,
    /// Each row-order position's slot, while positions are being numbered.
    slot_in_row_order: Vec<u32>,
    /// attᵀ [H, D], assembled per step.
    att_t: Vec<f32>,
    /// The distinct items' rows [U, D] and keys [U, D]; the rows' queries [B, D].
    e: Vec<f32>,
    k: Vec<f32>,
    q: Vec<f32>,
    /// Per position: the attention logits, then weights [P, H].
    alpha: Vec<f32>,
    /// Per row and head: the logits' maximum and the softmax's denominator [B, H].
    logit_max: Vec<f32>,
    logit_sum: Vec<f32>,
    /// Per row and head, the attention-weighted sum of item rows [B, H, D].
    ew: Vec<f32>,
    agg: Vec<f32>,
    dagg: Vec<f32>,
    dew: Vec<f32>,
    /// Per range of slots of the fused backward pass, its partial sums.
    range_grads: Vec<SlotRangeGrads>,
    dmean: Vec<f32>,
    /// Per position: dL/dα [P, H].
    dalpha: Vec<f32>,
    /// Per row and head: Σ α dL/dα over the row's positions [B, H].
    head_sums: Vec<f32>,
    dk: Vec<f32>,
    de: Vec<f32>,
    dq: Vec<f32>,
}

/// The gat training run.
pub type Trainer = super::tower_grad::Trainer<GatParams>;

/// Positions per parallel task of the per-position passes.
const GRAIN: usize = 64;

#[inline(always)]
fn leaky(x: f32) -> f32 {
    if x > 0.0 { x } else { LEAKY_SLOPE as f32 * x }
}

#[inline(always)]
fn leaky_slope(x: f32) -> f32 {
    if x > 0.0 { 1.0 } else { LEAKY_SLOPE as f32 }
}

/// `z = leaky(key + query)`.
#[inline(always)]
fn activation(key: &[f32], query: &[f32], z: &mut [f32]) {
    for ((o, a), b) in z.iter_mut().zip(key).zip(query) {
        *o = leaky(a + b);
    }
}

/// What the fused backward pass over one range of slots sums: its share of dq [B, D] and of
/// dattᵀ [H, D]. Kept in [`GatWork`] from step to step: fresh half-megabyte buffers per range
/// and step cost page faults.
#[derive(Default)]
struct SlotRangeGrads {
    dq: Vec<f32>,
    datt_t: Vec<f32>,
}

impl GatParams {
    /// Numbers the positions in slot order (an empty history attends to item 0) and indexes
    /// them by row and by slot.
    fn positions(&self, w: &mut GatWork, hists: &[Vec<u32>]) {
        let n_items = self.item.len() / self.dim.max(1);
        if w.slot_of.len() != n_items {
            w.slot_of = vec![u32::MAX; n_items];
        }
        w.row_starts.clear();
        w.slot_in_row_order.clear();
        w.uniq.clear();
        w.row_starts.push(0);
        for hist in hists {
            let items: &[u32] = if hist.is_empty() { &[0] } else { hist };
            for &i in items {
                let s = &mut w.slot_of[i as usize];
                if *s == u32::MAX {
                    *s = w.uniq.len() as u32;
                    w.uniq.push(i);
                }
                w.slot_in_row_order.push(*s);
            }
            w.row_starts.push(w.slot_in_row_order.len());
        }
        for &i in &w.uniq {
            w.slot_of[i as usize] = u32::MAX;
        }
        // A counting sort of the positions by slot.
        let (p, u) = (w.slot_in_row_order.len(), w.uniq.len());
        w.slot_starts.clear();
        w.slot_starts.resize(u + 1, 0);
        for &s in &w.slot_in_row_order {
            w.slot_starts[s as usize + 1] += 1;
        }
        for s in 0..u {
            w.slot_starts[s + 1] += w.slot_starts[s];
        }
        w.row_of.resize(p, 0);
        w.slot.resize(p, 0);
        w.row_pos.resize(p, 0);
        let mut next = w.slot_starts.clone();
        for r in 0..hists.len() {
            for at in w.row_starts[r]..w.row_starts[r + 1] {
                let s = w.slot_in_row_order[at] as usize;
                let j = next[s];
                next[s] += 1;
                w.row_of[j] = r as u32;
                w.slot[j] = s as u32;
                w.row_pos[at] = j as u32;
            }
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

        // Per position: logits s = leaky(key + query) att.
        w.att_t.clear();
        for h in 0..heads {
            w.att_t.extend(self.att.iter().skip(h).step_by(heads));
        }
        let alpha = scratch(&mut w.alpha, p * heads);
        alpha
            .par_chunks_mut(GRAIN * heads)
            .zip(w.row_of.par_chunks(GRAIN).zip(w.slot.par_chunks(GRAIN)))
            .for_each(|(sc, (rows, slots))| {
                simd(
                    #[inline(always)]
                    || {
                        let mut z = vec![0f32; d];
                        for (sr, (&r, &slot)) in
                            sc.chunks_exact_mut(heads).zip(rows.iter().zip(slots))
                        {
                            activation(row(&w.k, slot, d), row(&w.q, r, d), &mut z);
                            for (out, att) in sr.iter_mut().zip(w.att_t.chunks_exact(d)) {
                                *out = vector::dot(&z, att);
                            }
                        }
                    },
                )
            });

        // Attention weights: per row and head, a softmax over the row's positions (its maximum
        // and denominator gathered per row, then each position normalised); then the weighted
        // sum of the rows' item rows per head.
        let logit_max = scratch(&mut w.logit_max, b * heads);
        let logit_sum = scratch(&mut w.logit_sum, b * heads);
        logit_max
            .par_chunks_mut(heads)
            .zip(logit_sum.par_chunks_mut(heads))
            .enumerate()
            .for_each(|(r, (mx, sum))| {
                let row_positions = &w.row_pos[w.row_starts[r]..w.row_starts[r + 1]];
                mx.fill(f32::NEG_INFINITY);
                sum.fill(0.0);
                for &j in row_positions {
                    for (m, &x) in mx.iter_mut().zip(row(&w.alpha, j, heads)) {
                        *m = m.max(x);
                    }
                }
                for &j in row_positions {
                    for ((s, &x), &m) in sum.iter_mut().zip(row(&w.alpha, j, heads)).zip(&*mx) {
                        *s += vector::exp(x - m);
                    }
                }
            });
        w.alpha
            .par_chunks_mut(GRAIN * heads)
            .zip(w.row_of.par_chunks(GRAIN))
            .for_each(|(ac, rows)| {
                for (a, &r) in ac.chunks_exact_mut(heads).zip(rows) {
                    let per_head =
                        row(&w.logit_max, r, heads)
                            .iter()
                            .zip(row(&w.logit_sum, r, heads));
                    for (x, (&m, &s)) in a.iter_mut().zip(per_head) {
                        *x = vector::exp(*x - m) / s;
                    }
                }
            });
        let ew = sized(&mut w.ew, b * heads * d);
        ew.par_chunks_mut(heads * d)
            .enumerate()
            .for_each(|(r, out)| {
                simd(
                    #[inline(always)]
                    || {
                        for &j in &w.row_pos[w.row_starts[r]..w.row_starts[r + 1]] {
                            let er = row(&w.e, w.slot[j as usize], d);
                            for (&a, o) in
                                row(&w.alpha, j, heads).iter().zip(out.chunks_exact_mut(d))
                            {
                                vector::axpy(a, er, o);
                            }
                        }
                    },
                )
            });

        // agg[head h] = ew[h] Wv[:, head h] (one product per head, in place in its columns);
        // y = agg Wo + bo + mean.
        let agg = scratch(&mut w.agg, b * d);
        for h in 0..heads {
            matmul_block(
                &mut agg[h * dh..],
                d,
                View::block(&w.ew[h * d..], b, d, heads * d),
                View::block(&self.wv[h * dh..], d, dh, d),
                1.0,
                0.0,
            );
        }
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

        // Values, per head: dew[h] = dagg[head h] Wv[:, head h]ᵀ; dWv[:, head h] += ew[h]ᵀ
        // dagg[head h].
        let dew = scratch(&mut w.dew, b * heads * d);
        for h in 0..heads {
            let dagg_h = View::block(&w.dagg[h * dh..], b, dh, d);
            matmul_block(
                &mut dew[h * d..],
                heads * d,
                dagg_h,
                View::block(&self.wv[h * dh..], d, dh, d).t(),
                1.0,
                0.0,
            );
            matmul_block(
                &mut g.wv[h * dh..],
                d,
                View::block(&w.ew[h * d..], b, d, heads * d).t(),
                dagg_h,
                1.0,
                1.0,
            );
        }

        // Per position: dα = dew · e; per row and head: Σ α dα over the row's positions.
        let dalpha = scratch(&mut w.dalpha, p * heads);
        dalpha
            .par_chunks_mut(GRAIN * heads)
            .zip(w.row_of.par_chunks(GRAIN).zip(w.slot.par_chunks(GRAIN)))
            .for_each(|(dc, (rows, slots))| {
                simd(
                    #[inline(always)]
                    || {
                        for (da, (&r, &slot)) in
                            dc.chunks_exact_mut(heads).zip(rows.iter().zip(slots))
                        {
                            let er = row(&w.e, slot, d);
                            let dr = row(&w.dew, r, heads * d);
                            for (out, dh_row) in da.iter_mut().zip(dr.chunks_exact(d)) {
                                *out = vector::dot(dh_row, er);
                            }
                        }
                    },
                )
            });
        let sums = sized(&mut w.head_sums, b * heads);
        sums.par_chunks_mut(heads).enumerate().for_each(|(r, out)| {
            for &j in &w.row_pos[w.row_starts[r]..w.row_starts[r + 1]] {
                let per_head = row(&w.alpha, j, heads).iter().zip(row(&w.dalpha, j, heads));
                for (o, (a, da)) in out.iter_mut().zip(per_head) {
                    *o += a * da;
                }
            }
        });

        // One pass per range of slots, fusing what follows the softmax: ds = α (dα − Σ α dα),
        // z recomputed, dattᵀ += ds ⊗ z, dpre = (ds attᵀ) ⊙ leaky'(pre), and the sums of dpre
        // per slot (dk) and per row (dq, a share per range), and of α dew per slot (de).
        let dk = scratch(&mut w.dk, u * d);
        let de = scratch(&mut w.de, u * d);
        let ranges = slot_ranges(&w.slot_starts, 4 * rayon::current_num_threads());
        let mut parts = Vec::with_capacity(ranges.len());
        let (mut dk_rest, mut de_rest) = (dk, de);
        for pair in ranges.windows(2) {
            let n = (pair[1] - pair[0]) * d;
            let (dk_part, dk_tail) = dk_rest.split_at_mut(n);
            let (de_part, de_tail) = de_rest.split_at_mut(n);
            parts.push((pair[0]..pair[1], dk_part, de_part));
            dk_rest = dk_tail;
            de_rest = de_tail;
        }
        w.range_grads
            .resize_with(parts.len(), SlotRangeGrads::default);
        w.range_grads
            .par_iter_mut()
            .zip(parts)
            .for_each(|(out, (slots, dk, de))| {
                simd(
                    #[inline(always)]
                    || {
                        sized(&mut out.dq, b * d);
                        sized(&mut out.datt_t, heads * d);
                        let (mut z, mut dpre, mut ds) =
                            (vec![0f32; d], vec![0f32; d], vec![0f32; heads]);
                        let first = slots.start;
                        for s in slots {
                            let dk_s = row_mut(dk, (s - first) as u32, d);
                            let de_s = row_mut(de, (s - first) as u32, d);
                            dk_s.fill(0.0);
                            de_s.fill(0.0);
                            for j in w.slot_starts[s]..w.slot_starts[s + 1] {
                                let r = w.row_of[j];
                                activation(row(&w.k, s as u32, d), row(&w.q, r, d), &mut z);
                                let alpha = row(&w.alpha, j as u32, heads);
                                let per_head = alpha
                                    .iter()
                                    .zip(row(&w.dalpha, j as u32, heads))
                                    .zip(row(&w.head_sums, r, heads));
                                for (o, ((&a, &da), &sum)) in ds.iter_mut().zip(per_head) {
                                    *o = a * (da - sum);
                                }
                                dpre.fill(0.0);
                                let per_head = ds
                                    .iter()
                                    .zip(w.att_t.chunks_exact(d))
                                    .zip(out.datt_t.chunks_exact_mut(d));
                                for ((&x, att), datt) in per_head {
                                    vector::axpy(x, att, &mut dpre);
                                    vector::axpy(x, &z, datt);
                                }
                                // z has the pre-activation's sign.
                                dpre.iter_mut()
                                    .zip(&z)
                                    .for_each(|(o, &a)| *o *= leaky_slope(a));
                                vector::add(&dpre, dk_s);
                                vector::add(&dpre, row_mut(&mut out.dq, r, d));
                                let dr = row(&w.dew, r, heads * d);
                                for (&a, dh_row) in alpha.iter().zip(dr.chunks_exact(d)) {
                                    vector::axpy(a, dh_row, de_s);
                                }
                            }
                        }
                    },
                )
            });
        let dq = sized(&mut w.dq, b * d);
        let datt_t = simd(
            #[inline(always)]
            || {
                let mut datt_t = vec![0f32; heads * d];
                for part in &w.range_grads {
                    vector::add(&part.dq, dq);
                    vector::add(&part.datt_t, &mut datt_t);
                }
                datt_t
            },
        );
        for (h, col) in datt_t.chunks_exact(d).enumerate() {
            for (j, x) in col.iter().enumerate() {
                g.att[j * heads + h] += x;
            }
        }

        // The query: dWq += meanᵀ dq; dmean = dy + dq Wqᵀ.
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

        // Each position's share of its row's mean, per slot (an empty history's stand-in item 0
        // does not feed its zero mean).
        w.de.par_chunks_mut(d)
            .zip(w.slot_starts.par_windows(2))
            .for_each(|(de, span)| {
                simd(
                    #[inline(always)]
                    || {
                        for &r in &w.row_of[span[0]..span[1]] {
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

/// Boundaries of about `n` ranges of slots holding similar numbers of positions (the first is
/// 0, the last the number of slots).
fn slot_ranges(slot_starts: &[usize], n: usize) -> Vec<usize> {
    let slots = slot_starts.len().saturating_sub(1);
    let total = slot_starts.last().copied().unwrap_or(0);
    let mut out = vec![0];
    for k in 1..n {
        let s = slot_starts.partition_point(|&x| x < total * k / n);
        if s > out[out.len() - 1] && s < slots {
            out.push(s);
        }
    }
    out.push(slots);
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
    fn slot_ranges_cover_every_slot_once_with_balanced_positions() {
        // Slots of 5, 1, 1, 1, 4, 4 positions.
        let starts = [0, 5, 6, 7, 8, 12, 16];
        assert_eq!(slot_ranges(&starts, 1), vec![0, 6]);
        assert_eq!(slot_ranges(&starts, 2), vec![0, 4, 6]);
        assert_eq!(slot_ranges(&starts, 100), vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            slot_ranges(&[0], 4),
            vec![0, 0],
            "no slots: one empty range"
        );
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
