//! The dssm user tower with hand-written gradients: masked mean of its own history table, a
//! residual MLP (`y = tanh(mean W1 + b1) W2 + b2 + mean`), under the head of
//! [`super::tower_grad`]. The same model and loss as [`Encoder`]'s forward pass under candle's
//! autograd, computed with a few large matrix products over reused buffers.

use rayon::prelude::*;

use super::tower_grad::{
    Batch, Head, TowerModel, encoder_weight, history_means, row_mut, scratch, sized,
};
use super::twotower::{Encoder, Kind};
use crate::error::{Error, Result};
use crate::linalg::{View, matmul};
use crate::vector::{self, simd};

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

/// Buffers reused from step to step.
#[derive(Default)]
pub struct DssmWork {
    count: Vec<f32>,
    mean: Vec<f32>,
    h: Vec<f32>,
    dh: Vec<f32>,
    dmean: Vec<f32>,
}

/// The dssm training run.
pub type Trainer = super::tower_grad::Trainer<DssmParams>;

impl DssmParams {
    /// The residual MLP over rows `x` [R, D]: `h = tanh(x W1 + b1)`, `y = h W2 + b2 + x`.
    pub(crate) fn tower_forward(&self, x: &[f32], h: &mut [f32], y: &mut [f32]) {
        let d = self.dim;
        let rows = x.len() / d;
        matmul(
            h,
            View::new(x, rows, d),
            View::new(&self.w1, d, d),
            1.0,
            0.0,
        );
        h.par_chunks_mut(d).for_each(|r| {
            r.iter_mut()
                .zip(&self.b1)
                .for_each(|(a, bias)| *a = (*a + bias).tanh())
        });
        y.copy_from_slice(x);
        matmul(
            y,
            View::new(h, rows, d),
            View::new(&self.w2, d, d),
            1.0,
            1.0,
        );
        y.par_chunks_mut(d)
            .for_each(|r| r.iter_mut().zip(&self.b2).for_each(|(a, bias)| *a += bias));
    }

    /// The MLP's backward pass from `dy` at the rows `x` whose hidden layer was `h`: adds the
    /// MLP weights' gradients into `g` and writes dL/dx into `dx`; `dh` is scratch.
    pub(crate) fn tower_backward(
        &self,
        x: &[f32],
        h: &[f32],
        dy: &[f32],
        g: &mut Self,
        dh: &mut Vec<f32>,
        dx: &mut [f32],
    ) {
        let d = self.dim;
        let rows = x.len() / d;
        for r in dy.chunks_exact(d) {
            g.b2.iter_mut().zip(r).for_each(|(a, x)| *a += x);
        }
        matmul(
            &mut g.w2,
            View::new(h, rows, d).t(),
            View::new(dy, rows, d),
            1.0,
            1.0,
        );
        // dA = (dY W2ᵀ) ⊙ (1 − h²), kept in dh.
        let dh = scratch(dh, rows * d);
        matmul(
            dh,
            View::new(dy, rows, d),
            View::new(&self.w2, d, d).t(),
            1.0,
            0.0,
        );
        dh.par_chunks_mut(d)
            .zip(h.par_chunks(d))
            .for_each(|(da, h)| {
                da.iter_mut()
                    .zip(h)
                    .for_each(|(a, &hv)| *a *= 1.0 - hv * hv)
            });
        for r in dh.chunks_exact(d) {
            g.b1.iter_mut().zip(r).for_each(|(a, x)| *a += x);
        }
        matmul(
            &mut g.w1,
            View::new(x, rows, d).t(),
            View::new(dh, rows, d),
            1.0,
            1.0,
        );
        dx.copy_from_slice(dy);
        matmul(
            dx,
            View::new(dh, rows, d),
            View::new(&self.w1, d, d).t(),
            1.0,
            1.0,
        );
    }
}

impl TowerModel for DssmParams {
    type Work = DssmWork;

    fn from_encoder(e: &Encoder) -> Result<Self> {
        if e.kind != Kind::Dssm {
            return Err(Error::InvalidInput(format!(
                "dssm weights asked of a {:?} encoder",
                e.kind
            )));
        }
        Ok(DssmParams {
            dim: e.dim,
            history: encoder_weight(e, "history")?,
            item: encoder_weight(e, "item")?,
            w1: encoder_weight(e, "w1")?,
            b1: encoder_weight(e, "b1")?,
            w2: encoder_weight(e, "w2")?,
            b2: encoder_weight(e, "b2")?,
        })
    }

    fn named(&self) -> Vec<(&'static str, &Vec<f32>)> {
        vec![
            ("history", &self.history),
            ("item", &self.item),
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ]
    }

    fn buffers_mut(&mut self) -> Vec<&mut Vec<f32>> {
        vec![
            &mut self.history,
            &mut self.item,
            &mut self.w1,
            &mut self.b1,
            &mut self.w2,
            &mut self.b2,
        ]
    }

    fn forward_backward(
        &self,
        batch: &Batch,
        temperature: f64,
        g: &mut Self,
        w: &mut DssmWork,
        head: &mut Head,
    ) -> f32 {
        let d = self.dim;
        let b = batch.hists.len();
        let count = sized(&mut w.count, b);
        let mean = sized(&mut w.mean, b * d);
        history_means(&self.history, d, batch.hists, count, mean);

        let h = sized(&mut w.h, b * d);
        let y = head.user_buffer(b, d);
        self.tower_forward(&w.mean, h, y);

        let loss = head.loss_and_grads(&self.item, d, batch, temperature, &mut g.item);

        let dmean = sized(&mut w.dmean, b * d);
        self.tower_backward(&w.mean, &w.h, &head.dy, g, &mut w.dh, dmean);

        // History table: each row's mean gradient spread over its items.
        for ((hist, &n), dm) in batch
            .hists
            .iter()
            .zip(&w.count)
            .zip(w.dmean.chunks_exact(d))
        {
            simd(
                #[inline(always)]
                || {
                    for &i in hist {
                        vector::axpy(1.0 / n, dm, row_mut(&mut g.history, i, d));
                    }
                },
            );
        }
        loss
    }

    fn clear_grads(g: &mut Self, batch: &Batch, _: &DssmWork) {
        let d = g.dim;
        for hist in batch.hists {
            for &i in hist {
                row_mut(&mut g.history, i, d).fill(0.0);
            }
        }
        for &i in batch.cands {
            row_mut(&mut g.item, i, d).fill(0.0);
        }
        for v in [&mut g.w1, &mut g.b1, &mut g.w2, &mut g.b2] {
            v.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::tower_grad::testing;

    /// A dssm encoder with non-zero biases, so their gradients flow through tanh's slope.
    fn encoder() -> Encoder {
        let enc = Encoder::new(Kind::Dssm, 12, 8, 7).unwrap();
        let mut p = DssmParams::from_encoder(&enc).unwrap();
        p.b1.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = 0.05 * i as f32);
        p.b2.iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x = -0.03 * i as f32);
        p.store(&enc).unwrap();
        enc
    }

    #[test]
    fn hand_written_gradients_equal_candle_autograd_of_the_same_loss() {
        testing::assert_gradients_match_candle::<DssmParams>(&encoder());
    }

    #[test]
    fn gradients_equal_candle_autograd_when_the_softmax_runs_in_several_blocks_per_task() {
        let enc = Encoder::new(Kind::Dssm, 50, 8, 5).unwrap();
        testing::assert_gradients_match_candle_over_softmax_blocks::<DssmParams>(&enc);
    }

    #[test]
    fn a_trainer_step_moves_the_weights_as_candles_adamw_does() {
        testing::assert_steps_match_adamw::<DssmParams>(encoder);
    }
}
