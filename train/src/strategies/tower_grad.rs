//! What the hand-written two-tower training steps share: the batch, the sampled-softmax head
//! (normalised candidate vectors, logits, cross-entropy against the diagonal, gradients into
//! the user vectors and the item table) and the optimiser loop. Each user tower
//! ([`super::dssm_grad`], [`super::gat_grad`]) writes its own forward and backward pass around
//! the head as a [`TowerModel`]. Candle's autograd produced a dense gradient of every table and
//! a fresh tensor per optimiser op each step; most of its time went to allocating and zeroing
//! them.

use rayon::prelude::*;

use super::twotower::Encoder;
use crate::error::{Error, Result};
use crate::linalg::{Adam, Moments, View, matmul_serial};
use crate::vector::{self, simd};

pub const NORM_EPS: f32 = 1e-12;

/// Added to masked logits.
pub const MASK_BIAS: f32 = -1e9;

/// One batch: histories, candidates (the first `hists.len()` are the rows' positives) and each
/// candidate's additive logit bias (logQ correction). A row's own positive appearing elsewhere
/// among the candidates (an accidental hit) is masked out.
pub struct Batch<'a> {
    pub hists: &'a [Vec<u32>],
    pub cands: &'a [u32],
    pub col_bias: &'a [f32],
}

impl Batch<'_> {
    /// The bias of logit (i, j) for every row i and candidate j, row-major [B, C].
    pub fn dense_bias(&self) -> Vec<f32> {
        let b = self.hists.len();
        let hits = self.accidental_hits();
        let mut out = Vec::with_capacity(b * self.cands.len());
        for i in 0..b {
            let start = out.len();
            out.extend_from_slice(self.col_bias);
            hits.mask(i, &mut out[start..]);
        }
        out
    }

    /// Each row's accidental hits: the other candidate columns holding its positive.
    pub fn accidental_hits(&self) -> AccidentalHits {
        let b = self.hists.len();
        let mut by_item: Vec<u32> = (0..self.cands.len() as u32).collect();
        by_item.sort_unstable_by_key(|&j| (self.cands[j as usize], j));
        let mut pairs = Vec::new();
        for run in by_item.chunk_by(|&x, &y| self.cands[x as usize] == self.cands[y as usize]) {
            for &i in run.iter().filter(|&&i| (i as usize) < b) {
                pairs.extend(run.iter().filter(|&&j| j != i).map(|&j| (i, j)));
            }
        }
        pairs.sort_unstable();
        let mut starts = vec![0u32; b + 1];
        for &(i, _) in &pairs {
            starts[i as usize + 1] += 1;
        }
        for r in 0..b {
            starts[r + 1] += starts[r];
        }
        AccidentalHits {
            starts,
            cols: pairs.into_iter().map(|(_, j)| j).collect(),
        }
    }
}

/// Per row, the candidate columns masked out of its softmax (rows in compressed form).
pub struct AccidentalHits {
    starts: Vec<u32>,
    cols: Vec<u32>,
}

impl AccidentalHits {
    /// Sets row `i`'s masked columns of `logits` (that row's [C] logits) to [`MASK_BIAS`].
    fn mask(&self, i: usize, logits: &mut [f32]) {
        for &j in &self.cols[self.starts[i] as usize..self.starts[i + 1] as usize] {
            logits[j as usize] = MASK_BIAS;
        }
    }
}

/// A user tower with hand-written gradients: its weights as flat row-major buffers (matrices
/// [in, out], as in [`Encoder`]), the item table among them.
pub trait TowerModel: Sized + Clone {
    /// Buffers the forward pass keeps for the backward pass, reused from step to step.
    type Work: Default + Send;

    fn from_encoder(e: &Encoder) -> Result<Self>;

    /// Every weight buffer by its [`Encoder`] name ("item" for the item table), in a fixed
    /// order (the optimiser's moments follow it).
    fn named(&self) -> Vec<(&'static str, &Vec<f32>)>;

    /// The buffers of [`TowerModel::named`], in its order.
    fn buffers_mut(&mut self) -> Vec<&mut Vec<f32>>;

    /// The same weights, zeroed (a gradient accumulator).
    fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        z.buffers_mut().into_iter().for_each(|b| b.fill(0.0));
        z
    }

    /// Loss of `batch` and its gradients added into `grads`.
    fn forward_backward(
        &self,
        batch: &Batch,
        temperature: f64,
        grads: &mut Self,
        work: &mut Self::Work,
        head: &mut Head,
    ) -> f32;

    /// Zeroes what `forward_backward` of `batch` (which left `work` behind) wrote into `grads`
    /// (the table rows it touched and every small weight), so the next step starts from zero
    /// without clearing the tables.
    fn clear_grads(grads: &mut Self, batch: &Batch, work: &Self::Work);

    /// Writes the weights back into the encoder (for its forward pass and ONNX export).
    fn store(&self, e: &Encoder) -> Result<()> {
        for (name, data) in self.named() {
            let var = encoder_var(e, name)?;
            let t = candle_core::Tensor::from_slice(data, var.dims(), var.device())?;
            var.set(&t)?;
        }
        Ok(())
    }
}

/// The encoder's weight called `name` ("item" is the item table).
pub fn encoder_var<'a>(e: &'a Encoder, name: &str) -> Result<&'a candle_core::Var> {
    if name == "item" {
        return Ok(&e.item);
    }
    e.vars
        .get(name)
        .ok_or_else(|| Error::InvalidInput(format!("{:?} encoder has no weight {name}", e.kind)))
}

/// A weight of an encoder, flattened.
pub fn encoder_weight(e: &Encoder, name: &str) -> Result<Vec<f32>> {
    Ok(encoder_var(e, name)?.as_tensor().flatten_all()?.to_vec1()?)
}

/// Row `i` of a row-major table of width `d`.
pub fn row(table: &[f32], i: u32, d: usize) -> &[f32] {
    &table[i as usize * d..(i as usize + 1) * d]
}

/// Mutable row `i` of a row-major table of width `d`.
pub fn row_mut(table: &mut [f32], i: u32, d: usize) -> &mut [f32] {
    &mut table[i as usize * d..(i as usize + 1) * d]
}

/// `buf` resized to `n` zeros.
pub fn sized(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(n, 0.0);
    buf
}

/// `buf` resized to `n`, holding whatever it held: for an output whose every element is written
/// before it is read (zeroing megabytes per step is not free).
pub fn scratch(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    buf.resize(n, 0.0);
    buf
}

/// Gradient of `x ↦ x / max(‖x‖, ε)` at the row whose output is `z` and norm `n`.
#[inline(always)]
pub fn norm_backward(z: &[f32], n: f32, dz: &[f32], dx: &mut [f32]) {
    if n > NORM_EPS {
        let dot = vector::dot(z, dz);
        for ((o, &zi), &gi) in dx.iter_mut().zip(z).zip(dz) {
            *o = (gi - zi * dot) / n;
        }
    } else {
        for (o, &gi) in dx.iter_mut().zip(dz) {
            *o = gi / NORM_EPS;
        }
    }
}

/// Normalises `x` in place; returns its norm before.
#[inline(always)]
pub fn normalise_into(x: &mut [f32]) -> f32 {
    let n = vector::dot(x, x).sqrt();
    let d = n.max(NORM_EPS);
    x.iter_mut().for_each(|a| *a /= d);
    n
}

/// Masked mean of each history's rows of `table` into `mean` [B, D]; `count` gets each
/// history's length (at least 1, the divisor).
pub fn history_means(
    table: &[f32],
    d: usize,
    hists: &[Vec<u32>],
    count: &mut [f32],
    mean: &mut [f32],
) {
    for (n, hist) in count.iter_mut().zip(hists) {
        *n = (hist.len() as f32).max(1.0);
    }
    mean.par_chunks_mut(d)
        .zip(hists.par_iter())
        .zip(count.par_iter())
        .for_each(|((out, hist), &n)| {
            simd(
                #[inline(always)]
                || {
                    for &i in hist {
                        vector::add(row(table, i, d), out);
                    }
                    vector::scale(1.0 / n, out);
                },
            )
        });
}

/// The user vectors' normalisation, the sampled softmax over the candidates and its backward
/// pass; buffers reused from step to step.
///
/// A row may have K user vectors (multi-interest towers): a candidate's logit is then its best
/// cosine over the K, the score the worker ranks by when it merges K searches, so training and
/// serving rank alike; the gradient of each logit flows to that best vector.
#[derive(Default)]
pub struct Head {
    /// User vectors [B·K, D] (a row's K consecutive): the tower writes its raw output,
    /// [`Head::loss_and_grads`] normalises it in place.
    pub u: Vec<f32>,
    nu: Vec<f32>,
    v: Vec<f32>,
    nv: Vec<f32>,
    /// Per parallel task of the softmax, its buffers.
    tasks: Vec<SoftmaxTask>,
    du: Vec<f32>,
    dv: Vec<f32>,
    dx: Vec<f32>,
    /// dL/d(raw user vector) [B·K, D], filled by [`Head::loss_and_grads`].
    pub dy: Vec<f32>,
}

/// Rows of one block of the fused softmax: its [rows, C] logits (0.5 MB at C = 2048) stay in a
/// core's cache from their product to their gradients' products.
const BLOCK_ROWS: usize = 64;

/// One parallel task of the head's softmax over a contiguous range of rows, block by block:
/// the block's cosines, their softmax cross-entropy, and the products into dL/du (the block's
/// rows) and into the task's share of dL/dv. The batch's [B, C] logits are never written
/// whole (8 MB at B = 1024, read and written four times by separate passes).
#[derive(Default)]
struct SoftmaxTask {
    /// The block's cosines / T [rows·K, C], then their gradients.
    scores: Vec<f32>,
    /// The block's logits [rows, C] (K > 1; with K = 1 they are the scores).
    logits: Vec<f32>,
    /// Per row and candidate, the user vector holding the best cosine [rows, C] (K > 1).
    best: Vec<u8>,
    /// This task's share of (dL/dv)ᵀ [D, C].
    dvt: Vec<f32>,
}

/// What every task of the head's softmax reads.
struct SoftmaxInput<'a> {
    batch: &'a Batch<'a>,
    hits: &'a AccidentalHits,
    /// Normalised user vectors [B·K, D] and candidates [C, D].
    u: &'a [f32],
    v: &'a [f32],
    k: usize,
    d: usize,
    inv_t: f32,
}

impl SoftmaxTask {
    /// Rows `first..` (as many as `du` [rows·K, D] holds): writes their dL/du into `du`, sums
    /// their share of dL/dv into `dvt`; returns the sum of their losses.
    fn run(&mut self, first: usize, du: &mut [f32], x: &SoftmaxInput) -> f32 {
        let (k, d, c) = (x.k, x.d, x.batch.cands.len());
        let b = x.batch.hists.len();
        let inv_b = 1.0 / b as f32;
        let rows = du.len() / (k * d);
        let dvt = sized(&mut self.dvt, d * c);
        let v = View::new(x.v, c, d);
        let mut loss = 0.0;
        for start in (0..rows).step_by(BLOCK_ROWS) {
            let n = BLOCK_ROWS.min(rows - start);
            let row0 = first + start;
            let u = View::new(&x.u[row0 * k * d..(row0 + n) * k * d], n * k, d);
            let scores = scratch(&mut self.scores, n * k * c);
            matmul_serial(scores, u, v.t(), x.inv_t, 0.0);
            let softmax_row = |(i, r): (usize, &mut [f32])| {
                simd(
                    #[inline(always)]
                    || softmax_cross_entropy(r, row0 + i, x.batch.col_bias, x.hits, inv_b),
                )
            };
            if k == 1 {
                loss += scores
                    .chunks_exact_mut(c)
                    .enumerate()
                    .map(softmax_row)
                    .sum::<f32>();
            } else {
                // Each logit's gradient goes to its best vector's cosine.
                let logits = scratch(&mut self.logits, n * c);
                self.best.resize(n * c, 0);
                for ((out, best), s) in logits
                    .chunks_exact_mut(c)
                    .zip(self.best.chunks_exact_mut(c))
                    .zip(scores.chunks_exact(k * c))
                {
                    best_of_interests(s, k, out, best);
                }
                loss += logits
                    .chunks_exact_mut(c)
                    .enumerate()
                    .map(softmax_row)
                    .sum::<f32>();
                for ((ds, dl), best) in scores
                    .chunks_exact_mut(k * c)
                    .zip(logits.chunks_exact(c))
                    .zip(self.best.chunks_exact(c))
                {
                    ds.fill(0.0);
                    for (j, (&g, &i)) in dl.iter().zip(best).enumerate() {
                        ds[i as usize * c + j] = g;
                    }
                }
            }
            // dU = dscores V / T, dVᵀ += Uᵀ dscores / T.
            let dscores = View::new(scores, n * k, c);
            matmul_serial(
                &mut du[start * k * d..(start + n) * k * d],
                dscores,
                v,
                x.inv_t,
                0.0,
            );
            matmul_serial(dvt, u.t(), dscores, x.inv_t, 1.0);
        }
        loss
    }
}

/// Row `i`'s logits `r` [C] (before their column bias) become dL/dlogits of the batch's mean
/// cross-entropy against column `i`; returns the row's loss.
#[inline(always)]
fn softmax_cross_entropy(
    r: &mut [f32],
    i: usize,
    col_bias: &[f32],
    hits: &AccidentalHits,
    inv_b: f32,
) -> f32 {
    vector::add(col_bias, r);
    hits.mask(i, r);
    let positive = r[i];
    let max = vector::max(r);
    let sum = vector::exp_shifted(r, max);
    vector::scale(inv_b / sum, r);
    r[i] -= inv_b;
    max + sum.ln() - positive
}

impl Head {
    /// The user-vector buffer, sized [`rows`, D] and zeroed, for the tower to write into: B rows,
    /// or B·K for K vectors per row.
    pub fn user_buffer(&mut self, rows: usize, d: usize) -> &mut [f32] {
        sized(&mut self.u, rows * d)
    }

    /// Cross-entropy of logits `normalise(u) · normalise(item[c]) / T + bias` (with K vectors
    /// per row, the best of the K cosines) against each row's own positive; adds the item
    /// table's gradient into `g_item` (candidate rows only) and leaves dL/du in [`Head::dy`].
    pub fn loss_and_grads(
        &mut self,
        item: &[f32],
        d: usize,
        batch: &Batch,
        temperature: f64,
        g_item: &mut [f32],
    ) -> f32 {
        let b = batch.hists.len();
        let c = batch.cands.len();
        let k = self.u.len() / (b * d).max(1);
        let nu = scratch(&mut self.nu, b * k);
        self.u
            .par_chunks_mut(d)
            .zip(nu.par_iter_mut())
            .for_each(|(r, n)| {
                *n = simd(
                    #[inline(always)]
                    || normalise_into(r),
                )
            });

        let v = scratch(&mut self.v, c * d);
        let nv = scratch(&mut self.nv, c);
        v.par_chunks_mut(d)
            .zip(nv.par_iter_mut())
            .zip(batch.cands.par_iter())
            .for_each(|((r, n), &i)| {
                r.copy_from_slice(row(item, i, d));
                *n = simd(
                    #[inline(always)]
                    || normalise_into(r),
                );
            });

        // The softmax and its products, a few tasks per thread over contiguous rows.
        let hits = batch.accidental_hits();
        let input = SoftmaxInput {
            batch,
            hits: &hits,
            u: &self.u,
            v: &self.v,
            k,
            d,
            inv_t: (1.0 / temperature) as f32,
        };
        let rows_per_task = b.div_ceil(2 * rayon::current_num_threads()).max(1);
        let du = scratch(&mut self.du, b * k * d);
        self.tasks
            .resize_with(b.div_ceil(rows_per_task), SoftmaxTask::default);
        let loss = self
            .tasks
            .par_iter_mut()
            .zip(du.par_chunks_mut((rows_per_task * k * d).max(1)))
            .enumerate()
            .map(|(t, (task, du))| task.run(t * rows_per_task, du, &input))
            .sum::<f32>()
            / b.max(1) as f32;
        let dv = scratch(&mut self.dv, c * d);
        dv_from_shares(&mut self.tasks, d, dv);

        // Item table: through the normalisation (dv becomes the rows' gradients), scattered
        // into the candidates' rows.
        let dx = scratch(&mut self.dx, c * d);
        dx.par_chunks_mut(d)
            .zip(self.v.par_chunks(d).zip(self.dv.par_chunks(d)))
            .zip(self.nv.par_iter())
            .for_each(|((out, (z, dz)), &n)| {
                simd(
                    #[inline(always)]
                    || norm_backward(z, n, dz, out),
                )
            });
        simd(
            #[inline(always)]
            || {
                for (&i, g) in batch.cands.iter().zip(self.dx.chunks_exact(d)) {
                    vector::add(g, row_mut(g_item, i, d));
                }
            },
        );

        // The user vectors' normalisation.
        let dy = scratch(&mut self.dy, b * k * d);
        dy.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
            simd(
                #[inline(always)]
                || {
                    norm_backward(
                        &self.u[r * d..(r + 1) * d],
                        self.nu[r],
                        &self.du[r * d..(r + 1) * d],
                        out,
                    )
                },
            )
        });
        loss
    }
}

/// dL/dv [C, D]: the sum of the tasks' shares of its transpose.
fn dv_from_shares(tasks: &mut [SoftmaxTask], d: usize, dv: &mut [f32]) {
    let c = dv.len() / d.max(1);
    let Some((total, rest)) = tasks.split_first_mut() else {
        dv.fill(0.0);
        return;
    };
    simd(
        #[inline(always)]
        || {
            for task in rest {
                vector::add(&task.dvt, &mut total.dvt);
            }
        },
    );
    dv.par_chunks_mut(d).enumerate().for_each(|(j, out)| {
        for (x, o) in out.iter_mut().enumerate() {
            *o = total.dvt[x * c + j];
        }
    });
}

/// The best of a row's K score rows (`scores` [K, C]) per candidate into `out` [C], and which
/// of the K it was into `best` (the first on ties).
fn best_of_interests(scores: &[f32], k: usize, out: &mut [f32], best: &mut [u8]) {
    let c = out.len();
    out.copy_from_slice(&scores[..c]);
    best.fill(0);
    for i in 1..k {
        for ((o, b), &x) in out
            .iter_mut()
            .zip(best.iter_mut())
            .zip(&scores[i * c..(i + 1) * c])
        {
            if x > *o {
                *o = x;
                *b = i as u8;
            }
        }
    }
}

/// Weights, gradients, moments and buffers of a hand-written training run.
pub struct Trainer<M: TowerModel> {
    pub params: M,
    pub(crate) grads: M,
    moments: Vec<Moments>,
    adam: Adam,
    work: M::Work,
    head: Head,
}

impl<M: TowerModel> Trainer<M> {
    pub fn new(params: M, learning_rate: f64, weight_decay: f64) -> Self {
        let grads = params.zeros_like();
        let moments = params
            .named()
            .into_iter()
            .map(|(_, b)| Moments::new(b.len()))
            .collect();
        Trainer {
            params,
            grads,
            moments,
            adam: Adam::new(learning_rate).with_weight_decay(weight_decay),
            work: M::Work::default(),
            head: Head::default(),
        }
    }

    /// One optimisation step on `batch`; returns its loss.
    pub fn step(&mut self, batch: &Batch, temperature: f64) -> f32 {
        let loss = self.params.forward_backward(
            batch,
            temperature,
            &mut self.grads,
            &mut self.work,
            &mut self.head,
        );
        self.adam.next_step();
        for ((w, g), s) in self
            .params
            .buffers_mut()
            .into_iter()
            .zip(self.grads.named())
            .zip(self.moments.iter_mut())
        {
            self.adam.update(w, g.1, s);
        }
        M::clear_grads(&mut self.grads, batch, &self.work);
        loss
    }
}

/// Loss and gradients of one batch from zeroed `grads` (for tests and checks).
pub fn loss_and_grads<M: TowerModel>(p: &M, batch: &Batch, temperature: f64, grads: &mut M) -> f32 {
    p.forward_backward(
        batch,
        temperature,
        grads,
        &mut M::Work::default(),
        &mut Head::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_of_k_score_rows_is_taken_per_candidate_first_on_ties() {
        // Two interests, three candidates.
        let scores = [0.1, 0.9, 0.5, 0.4, 0.2, 0.5];
        let (mut out, mut best) = ([0f32; 3], [7u8; 3]);
        best_of_interests(&scores, 2, &mut out, &mut best);
        assert_eq!(out, [0.4, 0.9, 0.5]);
        assert_eq!(best, [1, 0, 0]);
    }
}

/// Checks of a [`TowerModel`] against candle's autograd and `AdamW` on the same model.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::strategies::twotower::candle_loss;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    const ADAM_EPS: f64 = 1e-4;

    pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// A batch over 12 items: an empty history, a repeated item, candidates that repeat, an
    /// accidental-hit mask.
    pub fn batch_parts() -> (Vec<Vec<u32>>, Vec<u32>, Vec<f32>) {
        let hists = vec![vec![1, 2, 3], vec![], vec![4, 4, 5], vec![6]];
        let cands = vec![7, 8, 9, 10, 1, 7, 11];
        let bias: Vec<f32> = (0..7).map(|i| ((i % 5) as f32 - 2.0) * 0.3).collect();
        (hists, cands, bias)
    }

    /// A batch of `rows` rows over `items` items, histories of 0 to 9 items: enough positions
    /// to span several parallel tasks.
    pub fn large_batch_parts(rows: usize, items: u32) -> (Vec<Vec<u32>>, Vec<u32>, Vec<f32>) {
        let hists: Vec<Vec<u32>> = (0..rows)
            .map(|r| {
                (0..r % 10)
                    .map(|k| ((r * 7 + k * 5) as u32) % items)
                    .collect()
            })
            .collect();
        let cands: Vec<u32> = (0..rows + 8).map(|j| ((j * 11) as u32) % items).collect();
        let bias = (0..cands.len()).map(|j| (j % 3) as f32 * -0.2).collect();
        (hists, cands, bias)
    }

    /// The model's loss and every weight's gradient equal candle's autograd of the same loss.
    /// Gradients on a batch whose softmax spans several blocks in each parallel task: on two
    /// threads, four tasks of 150 rows, each in three blocks (64, 64 and 22 rows).
    pub fn assert_gradients_match_candle_over_softmax_blocks<M: TowerModel>(enc: &Encoder) {
        let (hists, cands, bias) = large_batch_parts(600, 50);
        assert!(hists.len() / 4 > 2 * super::BLOCK_ROWS);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| assert_gradients_match_candle_on::<M>(enc, &hists, &cands, &bias));
    }

    pub fn assert_gradients_match_candle<M: TowerModel>(enc: &Encoder) {
        let (hists, cands, bias) = batch_parts();
        assert_gradients_match_candle_on::<M>(enc, &hists, &cands, &bias);
    }

    /// [`assert_gradients_match_candle`] on a given batch.
    pub fn assert_gradients_match_candle_on<M: TowerModel>(
        enc: &Encoder,
        hists: &[Vec<u32>],
        cands: &[u32],
        bias: &[f32],
    ) {
        let batch = Batch {
            hists,
            cands,
            col_bias: bias,
        };
        let p = M::from_encoder(enc).unwrap();
        let mut g = p.zeros_like();
        let loss = loss_and_grads(&p, &batch, 0.1, &mut g);
        let longest = hists.iter().map(Vec::len).max().unwrap_or(0);
        let want = candle_loss(enc, &batch, longest, 0.1).unwrap();
        assert!((loss - want.to_scalar::<f32>().unwrap()).abs() < 1e-4);
        let grads = want.backward().unwrap();
        for (name, mine) in g.named() {
            let var = encoder_var(enc, name).unwrap();
            let theirs: Vec<f32> = grads
                .get(var.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let d = max_diff(mine, &theirs);
            assert!(d < 1e-4, "{name}: max abs diff {d}");
            assert!(mine.iter().any(|x| *x != 0.0), "{name}: no gradient");
        }
    }

    /// Three [`Trainer`] steps move every weight as three steps of candle's `AdamW` do, and
    /// leave the gradient accumulators zeroed.
    pub fn assert_steps_match_adamw<M: TowerModel>(new_encoder: impl Fn() -> Encoder) {
        let (hists, cands, bias) = batch_parts();
        let batch = Batch {
            hists: &hists,
            cands: &cands,
            col_bias: &bias,
        };
        for weight_decay in [0.0, 0.5] {
            let enc = new_encoder();
            let initial = M::from_encoder(&enc).unwrap();
            let mut t = Trainer::new(M::from_encoder(&enc).unwrap(), 0.01, weight_decay);
            // Some gradients are zero up to rounding (gat's query: a softmax's gradient sums to
            // zero over the positions sharing a leaky-ReLU branch), and Adam turns rounding
            // noise into full-size steps at eps 1e-8; a larger eps keeps them small in both.
            t.adam.eps = ADAM_EPS;
            for _ in 0..3 {
                t.step(&batch, 0.1);
            }
            let vars: Vec<candle_core::Var> = initial
                .named()
                .iter()
                .map(|(name, _)| encoder_var(&enc, name).unwrap().clone())
                .collect();
            let params = ParamsAdamW {
                lr: 0.01,
                eps: ADAM_EPS,
                weight_decay,
                ..Default::default()
            };
            let mut opt = AdamW::new(vars, params).unwrap();
            for _ in 0..3 {
                let loss = candle_loss(&enc, &batch, 3, 0.1).unwrap();
                opt.backward_step(&loss).unwrap();
            }
            let want = M::from_encoder(&enc).unwrap();
            for (((name, mine), (_, theirs)), (_, before)) in t
                .params
                .named()
                .into_iter()
                .zip(want.named())
                .zip(initial.named())
            {
                let d = max_diff(mine, theirs);
                assert!(
                    d < 1e-5,
                    "{name}, weight decay {weight_decay}: max abs diff {d}"
                );
                assert!(max_diff(mine, before) > 1e-4, "{name} moved");
            }
            for (name, g) in t.grads.named() {
                assert!(g.iter().all(|x| *x == 0.0), "{name}: gradient cleared");
            }
        }
    }
}
