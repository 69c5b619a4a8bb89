//! Dense f32 kernels for the hand-written trainers: a strided matrix product (the `gemm` crate's
//! packed AVX2/AVX-512 kernels, the ones candle's CPU backend uses, threaded on rayon's pool),
//! and an in-place Adam. Row-major everywhere.

use rayon::prelude::*;

use crate::vector::simd;

/// A read-only strided matrix view over a slice.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows × cols` matrix.
    ///
    /// Panics when `data` is not exactly `rows × cols` long: the matrix product reads through
    /// raw pointers and relies on it.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix view of the wrong size");
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// `c = alpha · a · b + beta · c`, with `c` row-major `a.rows × b.cols` (with `beta == 0` the old
/// contents of `c` are ignored).
///
/// Panics on mismatched shapes (a programming error, never input-dependent).
pub fn matmul(c: &mut [f32], a: View, b: View, alpha: f32, beta: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    assert_eq!(c.len(), m * n, "output of the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.iter_mut()
            .for_each(|x| *x = if beta == 0.0 { 0.0 } else { beta * *x });
        return;
    }
    // Small products are not worth waking the other threads for.
    let parallelism = if m * n * k >= PARALLEL_MIN_WORK {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: View::new checked that each operand's slice holds its whole rows × cols extent
    // under its strides; `c` is an exclusive, contiguous m × n buffer. gemm computes
    // dst = alpha · dst + beta · lhs · rhs (its names are swapped from BLAS's), reading dst
    // only when asked to.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Multiply-adds from which a product is split across threads.
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// Adam (Kingma & Ba) with bias correction and no weight decay: the update candle's `AdamW`
/// makes with `weight_decay: 0`, done in place on flat buffers.
#[derive(Clone, Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW): each step scales the weights by `1 - lr × weight_decay`.
    pub weight_decay: f64,
    step: i32,
}

/// First and second moments of one parameter.
#[derive(Clone, Debug, Default)]
pub struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    pub fn new(len: usize) -> Self {
        Moments {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
}

impl Adam {
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            step: 0,
        }
    }

    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        Adam {
            weight_decay,
            ..self
        }
    }

    /// Starts an optimisation step (advances the bias correction).
    pub fn next_step(&mut self) {
        self.step += 1;
    }

    /// Applies this step's update to `w` from gradient `g`.
    pub fn update(&self, w: &mut [f32], g: &[f32], s: &mut Moments) {
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let scale_m = (1.0 / (1.0 - self.beta1.powi(self.step))) as f32;
        let scale_v = (1.0 / (1.0 - self.beta2.powi(self.step))) as f32;
        let (lr, eps) = (self.lr as f32, self.eps as f32);
        let keep = (1.0 - self.lr * self.weight_decay) as f32;
        const CHUNK: usize = 16 * 1024;
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(s.m.par_chunks_mut(CHUNK))
            .zip(s.v.par_chunks_mut(CHUNK))
            .for_each(|(((w, g), m), v)| {
                simd(
                    #[inline(always)]
                    || {
                        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
                            *m = *m * b1 + g * (1.0 - b1);
                            *v = *v * b2 + g * g * (1.0 - b2);
                            let mh = *m * scale_m;
                            let vh = *v * scale_v;
                            *w = *w * keep - lr * mh / (vh.sqrt() + eps);
                        }
                    },
                )
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn the_blocked_product_equals_the_naive_one_for_plain_and_transposed_operands() {
        let (m, k, n) = (70, 9, 13);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![1.0; m * n];
        matmul(&mut c, View::new(&a, m, k), View::new(&b, k, n), 1.0, 0.0);
        assert_eq!(c, want);
        // aᵀ stored as k × m, bᵀ as n × k: the transposed views give the same product.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = want.clone();
        matmul(
            &mut c2,
            View::new(&at, k, m).t(),
            View::new(&bt, n, k).t(),
            2.0,
            -1.0,
        );
        assert_eq!(c2, want, "2·ab − ab = ab");
    }

    #[test]
    fn adam_moves_every_weight_against_its_gradient_by_about_the_learning_rate_first() {
        let mut w = vec![1.0f32, 1.0, 1.0];
        let g = [0.5f32, -2.0, 0.0];
        let mut s = Moments::new(3);
        let mut adam = Adam::new(0.1);
        adam.next_step();
        adam.update(&mut w, &g, &mut s);
        assert!((w[0] - 0.9).abs() < 1e-5, "{w:?}");
        assert!((w[1] - 1.1).abs() < 1e-5, "{w:?}");
        assert_eq!(w[2], 1.0, "no gradient, no moment: no move");
    }
}
