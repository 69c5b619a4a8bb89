//! The dssm training step with hand-written gradients: the same model and loss as
//! [`super::twotower::Encoder`]'s forward pass under candle's autograd, computed with a few
//! large matrix products over reused buffers, sparse scatters into the embedding tables and an
//! in-place Adam. Candle's autograd produced a dense gradient of both 41k × D tables and a fresh
//! tensor per optimiser op every step; most of its time went to allocating and zeroing them.

use rayon::prelude::*;

use super::twotower::{Encoder, Kind};
use crate::error::{Error, Result};
use crate::linalg::{Adam, Moments, View, matmul};

const NORM_EPS: f32 = 1e-12;

/// The dssm weights as flat row-major buffers (matrices [in, out], as in [`Encoder`]).
#[derive(Clone, Debug)]
pub struct DssmParams {
    pub dim: usize,
    /// User-tower history embeddings [N, D].
    pub history: Vec<f32>,
    /// Item-tower embeddings [N, D].
    pub item: Vec<f32>,
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
}

/// One batch: histories, candidates (the first `hists.len()` are the rows' positives) and each
/// candidate's additive logit bias (logQ correction). A row's own positive appearing elsewhere
/// among the candidates (an accidental hit) is masked out.
pub struct Batch<'a> {
    pub hists: &'a [Vec<u32>],
    pub cands: &'a [u32],
    pub col_bias: &'a [f32],
}

/// Added to masked logits.
pub const MASK_BIAS: f32 = -1e9;

impl Batch<'_> {
    /// The bias of logit (i, j) for every row i and candidate j, row-major [B, C].
    pub fn dense_bias(&self) -> Vec<f32> {
        let b = self.hists.len();
        let mut out = Vec::with_capacity(b * self.cands.len());
        for i in 0..b {
            out.extend(self.row_bias(i));
        }
        out
    }

    fn row_bias(&self, i: usize) -> impl Iterator<Item = f32> + '_ {
        let t = self.cands[i];
        self.cands
            .iter()
            .zip(self.col_bias)
            .enumerate()
            .map(move |(j, (&c, &bias))| if c == t && j != i { MASK_BIAS } else { bias })
    }
}

fn tensor_vec(e: &Encoder, name: &str) -> Result<Vec<f32>> {
    let v = e
        .vars
        .get(name)
        .ok_or_else(|| Error::InvalidInput(format!("dssm encoder has no weight {name}")))?;
    Ok(v.as_tensor().flatten_all()?.to_vec1()?)
}

impl DssmParams {
    /// Copies the weights out of a dssm encoder.
    pub fn from_encoder(e: &Encoder) -> Result<Self> {
        if e.kind != Kind::Dssm {
            return Err(Error::InvalidInput(
                "hand-written gradients exist for dssm only".into(),
            ));
        }
        Ok(DssmParams {
            dim: e.dim,
            history: tensor_vec(e, "history")?,
            item: e.item.as_tensor().flatten_all()?.to_vec1()?,
            w1: tensor_vec(e, "w1")?,
            b1: tensor_vec(e, "b1")?,
            w2: tensor_vec(e, "w2")?,
            b2: tensor_vec(e, "b2")?,
        })
    }

    /// Writes the weights back into the encoder (for its forward pass and ONNX export).
    pub fn store(&self, e: &Encoder) -> Result<()> {
        let set = |var: &candle_core::Var, data: &[f32]| -> Result<()> {
            let t = candle_core::Tensor::from_slice(data, var.dims(), var.device())?;
            Ok(var.set(&t)?)
        };
        set(&e.item, &self.item)?;
        for (name, data) in [
            ("history", &self.history),
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ] {
            let var = e
                .vars
                .get(name)
                .ok_or_else(|| Error::InvalidInput(format!("dssm encoder has no weight {name}")))?;
            set(var, data)?;
        }
        Ok(())
    }

    fn zeros_like(&self) -> Self {
        DssmParams {
            dim: self.dim,
            history: vec![0.0; self.history.len()],
            item: vec![0.0; self.item.len()],
            w1: vec![0.0; self.w1.len()],
            b1: vec![0.0; self.b1.len()],
            w2: vec![0.0; self.w2.len()],
            b2: vec![0.0; self.b2.len()],
        }
    }
}

/// Buffers reused from step to step.
#[derive(Default)]
struct Work {
    count: Vec<f32>,
    mean: Vec<f32>,
    h: Vec<f32>,
    u: Vec<f32>,
    ny: Vec<f32>,
    v: Vec<f32>,
    nv: Vec<f32>,
    logits: Vec<f32>,
    du: Vec<f32>,
    dv: Vec<f32>,
    dy: Vec<f32>,
    dh: Vec<f32>,
    dmean: Vec<f32>,
}

fn sized(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(n, 0.0);
    buf
}

/// Gradient of `x ↦ x / max(‖x‖, ε)` at the row whose output is `z` and norm `n`.
fn norm_backward(z: &[f32], n: f32, dz: &[f32], dx: &mut [f32]) {
    if n > NORM_EPS {
        let dot: f32 = z.iter().zip(dz).map(|(a, b)| a * b).sum();
        for ((o, &zi), &gi) in dx.iter_mut().zip(z).zip(dz) {
            *o = (gi - zi * dot) / n;
        }
    } else {
        for (o, &gi) in dx.iter_mut().zip(dz) {
            *o = gi / NORM_EPS;
        }
    }
}

fn normalise_into(x: &mut [f32]) -> f32 {
    let n = x.iter().map(|a| a * a).sum::<f32>().sqrt();
    let d = n.max(NORM_EPS);
    x.iter_mut().for_each(|a| *a /= d);
    n
}

/// Loss and gradients of one batch; `grads` must be zero on entry (its table rows are
/// scattered into, and [`Trainer`] zeroes the touched rows after each update).
pub fn loss_and_grads(
    p: &DssmParams,
    batch: &Batch,
    temperature: f64,
    grads: &mut DssmParams,
) -> f32 {
    let mut w = Work::default();
    forward_backward(p, batch, temperature, grads, &mut w)
}

fn forward_backward(
    p: &DssmParams,
    batch: &Batch,
    temperature: f64,
    g: &mut DssmParams,
    w: &mut Work,
) -> f32 {
    let d = p.dim;
    let b = batch.hists.len();
    let c = batch.cands.len();
    let inv_t = (1.0 / temperature) as f32;

    // Masked mean of history embeddings.
    let count = sized(&mut w.count, b);
    for (n, hist) in count.iter_mut().zip(batch.hists) {
        *n = (hist.len() as f32).max(1.0);
    }
    let mean = sized(&mut w.mean, b * d);
    mean.par_chunks_mut(d)
        .zip(batch.hists.par_iter())
        .zip(w.count.par_iter())
        .for_each(|((row, hist), &n)| {
            for &i in hist {
                let e = &p.history[i as usize * d..(i as usize + 1) * d];
                row.iter_mut().zip(e).for_each(|(a, x)| *a += x);
            }
            row.iter_mut().for_each(|a| *a /= n);
        });

    // Residual MLP: h = tanh(mean W1 + b1), y = h W2 + b2 + mean, u = y / ‖y‖.
    let h = sized(&mut w.h, b * d);
    matmul(
        h,
        View::new(&w.mean, b, d),
        View::new(&p.w1, d, d),
        1.0,
        0.0,
    );
    h.par_chunks_mut(d).for_each(|row| {
        row.iter_mut()
            .zip(&p.b1)
            .for_each(|(a, bias)| *a = (*a + bias).tanh())
    });
    let u = sized(&mut w.u, b * d);
    u.copy_from_slice(&w.mean);
    matmul(u, View::new(&w.h, b, d), View::new(&p.w2, d, d), 1.0, 1.0);
    let ny = sized(&mut w.ny, b);
    u.par_chunks_mut(d)
        .zip(ny.par_iter_mut())
        .for_each(|(row, n)| {
            row.iter_mut().zip(&p.b2).for_each(|(a, bias)| *a += bias);
            *n = normalise_into(row);
        });

    // Candidate item vectors, normalised.
    let v = sized(&mut w.v, c * d);
    let nv = sized(&mut w.nv, c);
    v.par_chunks_mut(d)
        .zip(nv.par_iter_mut())
        .zip(batch.cands.par_iter())
        .for_each(|((row, n), &i)| {
            row.copy_from_slice(&p.item[i as usize * d..(i as usize + 1) * d]);
            *n = normalise_into(row);
        });

    // Logits u Vᵀ / T + bias, then softmax cross-entropy against the diagonal; the logits
    // buffer becomes dL/dlogits.
    let logits = sized(&mut w.logits, b * c);
    matmul(
        logits,
        View::new(&w.u, b, d),
        View::new(&w.v, c, d).t(),
        inv_t,
        0.0,
    );
    let inv_b = 1.0 / b as f32;
    let loss: f32 = logits
        .par_chunks_mut(c)
        .enumerate()
        .map(|(i, row)| {
            row.iter_mut()
                .zip(batch.row_bias(i))
                .for_each(|(x, bias)| *x += bias);
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let positive = row[i];
            let mut sum = 0f32;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            let scale = inv_b / sum;
            for x in row.iter_mut() {
                *x *= scale;
            }
            row[i] -= inv_b;
            max + sum.ln() - positive
        })
        .sum::<f32>()
        * inv_b;

    // dU = dlogits V / T, dV = dlogitsᵀ U / T.
    let du = sized(&mut w.du, b * d);
    matmul(
        du,
        View::new(&w.logits, b, c),
        View::new(&w.v, c, d),
        inv_t,
        0.0,
    );
    let dv = sized(&mut w.dv, c * d);
    matmul(
        dv,
        View::new(&w.logits, b, c).t(),
        View::new(&w.u, b, d),
        inv_t,
        0.0,
    );

    // Item tower: through the normalisation, scattered into the candidates' rows.
    let mut dx = vec![0f32; d];
    for (j, &i) in batch.cands.iter().enumerate() {
        norm_backward(
            &w.v[j * d..(j + 1) * d],
            w.nv[j],
            &w.dv[j * d..(j + 1) * d],
            &mut dx,
        );
        let row = &mut g.item[i as usize * d..(i as usize + 1) * d];
        row.iter_mut().zip(&dx).for_each(|(a, x)| *a += x);
    }

    // User tower: normalisation, then the MLP.
    let dy = sized(&mut w.dy, b * d);
    dy.par_chunks_mut(d).enumerate().for_each(|(r, out)| {
        norm_backward(
            &w.u[r * d..(r + 1) * d],
            w.ny[r],
            &w.du[r * d..(r + 1) * d],
            out,
        )
    });
    for row in w.dy.chunks_exact(d) {
        g.b2.iter_mut().zip(row).for_each(|(a, x)| *a += x);
    }
    matmul(
        &mut g.w2,
        View::new(&w.h, b, d).t(),
        View::new(&w.dy, b, d),
        1.0,
        1.0,
    );
    // dA = (dY W2ᵀ) ⊙ (1 − h²), kept in dh.
    let dh = sized(&mut w.dh, b * d);
    matmul(
        dh,
        View::new(&w.dy, b, d),
        View::new(&p.w2, d, d).t(),
        1.0,
        0.0,
    );
    dh.par_chunks_mut(d)
        .zip(w.h.par_chunks(d))
        .for_each(|(da, h)| {
            da.iter_mut()
                .zip(h)
                .for_each(|(a, &hv)| *a *= 1.0 - hv * hv)
        });
    for row in w.dh.chunks_exact(d) {
        g.b1.iter_mut().zip(row).for_each(|(a, x)| *a += x);
    }
    matmul(
        &mut g.w1,
        View::new(&w.mean, b, d).t(),
        View::new(&w.dh, b, d),
        1.0,
        1.0,
    );
    let dmean = sized(&mut w.dmean, b * d);
    dmean.copy_from_slice(&w.dy);
    matmul(
        dmean,
        View::new(&w.dh, b, d),
        View::new(&p.w1, d, d).t(),
        1.0,
        1.0,
    );

    // History table: each row's mean gradient spread over its items.
    for ((hist, &n), dm) in batch
        .hists
        .iter()
        .zip(&w.count)
        .zip(w.dmean.chunks_exact(d))
    {
        for &i in hist {
            let row = &mut g.history[i as usize * d..(i as usize + 1) * d];
            row.iter_mut().zip(dm).for_each(|(a, x)| *a += x / n);
        }
    }
    loss
}

/// Weights, gradients, moments and buffers of a dssm training run.
pub struct Trainer {
    pub params: DssmParams,
    grads: DssmParams,
    moments: Vec<Moments>,
    adam: Adam,
    work: Work,
}

impl Trainer {
    pub fn new(params: DssmParams, learning_rate: f64, weight_decay: f64) -> Self {
        let grads = params.zeros_like();
        let moments = [
            params.history.len(),
            params.item.len(),
            params.w1.len(),
            params.b1.len(),
            params.w2.len(),
            params.b2.len(),
        ]
        .into_iter()
        .map(Moments::new)
        .collect();
        Trainer {
            params,
            grads,
            moments,
            adam: Adam::new(learning_rate).with_weight_decay(weight_decay),
            work: Work::default(),
        }
    }

    /// One optimisation step on `batch`; returns its loss.
    pub fn step(&mut self, batch: &Batch, temperature: f64) -> f32 {
        let loss = forward_backward(
            &self.params,
            batch,
            temperature,
            &mut self.grads,
            &mut self.work,
        );
        self.adam.next_step();
        let (p, g, m) = (&mut self.params, &self.grads, &mut self.moments);
        let pairs: [(&mut Vec<f32>, &Vec<f32>); 6] = [
            (&mut p.history, &g.history),
            (&mut p.item, &g.item),
            (&mut p.w1, &g.w1),
            (&mut p.b1, &g.b1),
            (&mut p.w2, &g.w2),
            (&mut p.b2, &g.b2),
        ];
        for ((w, g), s) in pairs.into_iter().zip(m.iter_mut()) {
            self.adam.update(w, g, s);
        }
        self.clear_grads(batch);
        loss
    }

    /// Zeroes the gradient rows the batch touched (the tables) and the small weights.
    fn clear_grads(&mut self, batch: &Batch) {
        let d = self.params.dim;
        let g = &mut self.grads;
        for hist in batch.hists {
            for &i in hist {
                g.history[i as usize * d..(i as usize + 1) * d].fill(0.0);
            }
        }
        for &i in batch.cands {
            g.item[i as usize * d..(i as usize + 1) * d].fill(0.0);
        }
        for v in [&mut g.w1, &mut g.b1, &mut g.w2, &mut g.b2] {
            v.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::twotower::candle_loss;
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn fixture() -> (Encoder, Vec<Vec<u32>>, Vec<u32>, Vec<f32>) {
        let enc = Encoder::new(Kind::Dssm, 12, 8, 7).unwrap();
        let mut p = DssmParams::from_encoder(&enc).unwrap();
        // Non-zero biases so their gradients flow through tanh's slope.
        p.b1.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = 0.05 * i as f32);
        p.b2.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = -0.03 * i as f32);
        p.store(&enc).unwrap();
        // An empty history, a repeated item, candidates that repeat, an accidental-hit mask.
        let hists = vec![vec![1, 2, 3], vec![], vec![4, 4, 5], vec![6]];
        let cands = vec![7, 8, 9, 10, 1, 7, 11];
        let bias: Vec<f32> = (0..7).map(|i| ((i % 5) as f32 - 2.0) * 0.3).collect();
        (enc, hists, cands, bias)
    }

    #[test]
    fn hand_written_gradients_equal_candle_autograd_of_the_same_loss() {
        let (enc, hists, cands, bias) = fixture();
        let batch = Batch {
            hists: &hists,
            cands: &cands,
            col_bias: &bias,
        };
        let p = DssmParams::from_encoder(&enc).unwrap();
        let mut g = p.zeros_like();
        let loss = loss_and_grads(&p, &batch, 0.1, &mut g);
        let want = candle_loss(&enc, &batch, 3, 0.1).unwrap();
        assert!((loss - want.to_scalar::<f32>().unwrap()).abs() < 1e-4);
        let grads = want.backward().unwrap();
        let grad = |v: &candle_core::Var| -> Vec<f32> {
            grads
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        for (name, mine) in [
            ("history", &g.history),
            ("w1", &g.w1),
            ("b1", &g.b1),
            ("w2", &g.w2),
            ("b2", &g.b2),
        ] {
            let d = max_diff(mine, &grad(&enc.vars[name]));
            assert!(d < 1e-4, "{name}: max abs diff {d}");
        }
        let d = max_diff(&g.item, &grad(&enc.item));
        assert!(d < 1e-4, "item: max abs diff {d}");
        assert!(g.history[4 * 8..5 * 8].iter().any(|x| *x != 0.0));
    }

    #[test]
    fn a_trainer_step_moves_the_weights_as_candles_adamw_does() {
        for weight_decay in [0.0, 0.5] {
            steps_match_candles_adamw(weight_decay);
        }
    }

    fn steps_match_candles_adamw(weight_decay: f64) {
        let (enc, hists, cands, bias) = fixture();
        let batch = Batch {
            hists: &hists,
            cands: &cands,
            col_bias: &bias,
        };
        let mut t = Trainer::new(DssmParams::from_encoder(&enc).unwrap(), 0.01, weight_decay);
        for _ in 0..3 {
            t.step(&batch, 0.1);
        }
        let mut vars = vec![enc.item.clone()];
        vars.extend(enc.vars.values().cloned());
        let mut opt = AdamW::new(
            vars,
            ParamsAdamW {
                lr: 0.01,
                weight_decay,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..3 {
            let loss = candle_loss(&enc, &batch, 3, 0.1).unwrap();
            opt.backward_step(&loss).unwrap();
        }
        let want = DssmParams::from_encoder(&enc).unwrap();
        for (name, a, b) in [
            ("history", &t.params.history, &want.history),
            ("item", &t.params.item, &want.item),
            ("w1", &t.params.w1, &want.w1),
            ("b2", &t.params.b2, &want.b2),
        ] {
            let d = max_diff(a, b);
            assert!(
                d < 1e-5,
                "{name}, weight decay {weight_decay}: max abs diff {d}"
            );
        }
        assert!(
            max_diff(
                &t.params.item,
                &DssmParams::from_encoder(&fixture().0).unwrap().item
            ) > 1e-3,
            "the weights moved"
        );
        assert!(
            t.grads.history.iter().all(|x| *x == 0.0),
            "gradients cleared"
        );
    }
}
