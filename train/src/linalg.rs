//! Dense f32 kernels for the hand-written trainers: a strided matrix product (the `gemm` crate's
//! packed AVX2/AVX-512 kernels, the ones candle's CPU backend uses, threaded on rayon's pool),
//! and an in-place Adam. Row-major everywhere.

use rayon::prelude::*;

use crate::vector::{self, simd};

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
        View::block(data, rows, cols, cols)
    }

    /// A block of `cols` columns of a row-major matrix whose rows lie `row_stride` apart;
    /// `data` starts at the block's first element.
    ///
    /// Panics when `data` is too short for the block (see [`View::new`]).
    pub fn block(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(cols <= row_stride, "block wider than its row stride");
        assert!(
            data.len() >= extent(rows, cols, row_stride),
            "matrix block past the end of its slice"
        );
        View {
            data,
            rows,
            cols,
            rs: row_stride,
            cs: 1,
        }
    }

    /// Columns `lo..hi` (no copy).
    fn columns(self, lo: usize, hi: usize) -> Self {
        View {
            data: &self.data[(lo * self.cs).min(self.data.len())..],
            cols: hi - lo,
            ..self
        }
    }

    /// Rows `lo..hi` (no copy).
    fn rows(self, lo: usize, hi: usize) -> Self {
        View {
            data: &self.data[(lo * self.rs).min(self.data.len())..],
            rows: hi - lo,
            ..self
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

/// Elements a row-major block of `rows × cols` with rows `row_stride` apart spans.
fn extent(rows: usize, cols: usize, row_stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + cols
    }
}

/// `c = alpha · a · b + beta · c`, with `c` row-major `a.rows × b.cols` (with `beta == 0` the old
/// contents of `c` are ignored).
///
/// Panics on mismatched shapes (a programming error, never input-dependent).
pub fn matmul(c: &mut [f32], a: View, b: View, alpha: f32, beta: f32) {
    assert_eq!(c.len(), a.rows * b.cols, "output of the wrong size");
    matmul_block(c, b.cols, a, b, alpha, beta);
}

/// [`matmul`] into a block of a larger row-major matrix: `c` starts at the block's first
/// element and its rows lie `c_stride` apart (the columns in between are left alone). Lets a
/// per-head product read and write its heads' columns in place.
pub fn matmul_block(c: &mut [f32], c_stride: usize, a: View, b: View, alpha: f32, beta: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    check_shapes(c, c_stride, a, b);
    let threads = rayon::current_num_threads();
    // Small products are not worth waking the other threads for.
    if m * k * n < PARALLEL_MIN_WORK || threads == 1 {
        product(c, c_stride, a, b, alpha, beta, false);
    } else if m * n <= SPLIT_INNER_MAX_OUTPUT {
        let sum = split_inner(a, b, alpha, threads);
        for (row, sum) in c.chunks_mut(c_stride).zip(sum.chunks_exact(n)) {
            for (x, &s) in row[..n].iter_mut().zip(sum) {
                *x = if beta == 0.0 { s } else { beta * *x + s };
            }
        }
    } else {
        product(c, c_stride, a, b, alpha, beta, true);
    }
}

/// Panics unless `c` holds an `a.rows × b.cols` block with rows `c_stride` apart and the inner
/// dimensions agree: the product reads and writes through raw pointers.
fn check_shapes(c: &[f32], c_stride: usize, a: View, b: View) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert!(b.cols <= c_stride, "output block wider than its row stride");
    assert!(
        c.len() >= extent(a.rows, b.cols, c_stride),
        "output block past the end of its slice"
    );
}

/// Outputs up to which a long product splits its inner dimension across threads.
const SPLIT_INNER_MAX_OUTPUT: usize = 128 * 128;

/// `alpha · a · b` [a.rows, b.cols] for a small output and a long inner dimension (a weight's
/// gradient summed over a batch, 64 × 17,000 × 64): the inner dimension in `parts` shares, each
/// summed on one thread, then added. gemm's threads split the output only, each packing the
/// whole long operand.
fn split_inner(a: View, b: View, alpha: f32, parts: usize) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let share = k.div_ceil(parts);
    (0..parts)
        .into_par_iter()
        .map(|t| {
            let (lo, hi) = ((t * share).min(k), ((t + 1) * share).min(k));
            let mut out = vec![0.0; m * n];
            product(
                &mut out,
                n,
                a.columns(lo, hi),
                b.rows(lo, hi),
                alpha,
                0.0,
                false,
            );
            out
        })
        .reduce_with(|mut total, share| {
            simd(
                #[inline(always)]
                || vector::add(&share, &mut total),
            );
            total
        })
        .unwrap_or_else(|| vec![0.0; m * n])
}

/// [`matmul`] on the calling thread alone: for products inside a parallel task, each task
/// doing its own.
pub fn matmul_serial(c: &mut [f32], a: View, b: View, alpha: f32, beta: f32) {
    assert_eq!(c.len(), a.rows * b.cols, "output of the wrong size");
    product(c, b.cols, a, b, alpha, beta, false);
}

fn product(
    c: &mut [f32],
    c_stride: usize,
    a: View,
    b: View,
    alpha: f32,
    beta: f32,
    threaded: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    check_shapes(c, c_stride, a, b);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in c.chunks_mut(c_stride).take(m) {
            row[..n]
                .iter_mut()
                .for_each(|x| *x = if beta == 0.0 { 0.0 } else { beta * *x });
        }
        return;
    }
    let parallelism = if threaded {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: View::new and View::block checked that each operand's slice holds its whole
    // rows × cols extent under its strides (a transpose swaps both); `c` is exclusive and holds
    // m rows of n columns `c_stride` apart, checked above. gemm computes
    // dst = alpha · dst + beta · lhs · rhs (its names are swapped from BLAS's), reading dst
    // only when asked to.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_stride as isize,
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
    fn a_long_product_with_a_small_output_sums_its_threads_shares_of_the_inner_dimension() {
        // A weight gradient's shape, aᵀ b over a long batch: 3 × 90,001 × 5, over 2 and 3
        // threads (shares of unequal length); small integers, so every sum is exact.
        let (m, k, n) = (3, 90_001, 5);
        let at: Vec<f32> = (0..k * m).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
        let a: Vec<f32> = (0..m * k).map(|i| at[(i % k) * m + i / k]).collect();
        let want = naive(&a, &b, m, k, n);
        assert!(m * n <= SPLIT_INNER_MAX_OUTPUT && m * k * n >= PARALLEL_MIN_WORK);
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![1.0; m * n];
            pool.install(|| {
                matmul(
                    &mut c,
                    View::new(&at, k, m).t(),
                    View::new(&b, k, n),
                    2.0,
                    -1.0,
                )
            });
            let twice_minus_one: Vec<f32> = want.iter().map(|x| 2.0 * x - 1.0).collect();
            assert_eq!(c, twice_minus_one, "{threads} threads");
        }
    }

    #[test]
    fn a_product_of_blocks_reads_and_writes_only_their_columns() {
        // a: 3 × 2 block at columns 1..3 of a 3 × 4 matrix; b: 2 × 2 block at columns 2..4 of
        // a 2 × 5 matrix; c: the 3 × 2 block at columns 1..3 of a 3 × 4 matrix of sevens.
        let a_full: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let b_full: Vec<f32> = (0..10).map(|i| (i % 3) as f32 - 1.0).collect();
        let a: Vec<f32> = (0..3)
            .flat_map(|r| [a_full[r * 4 + 1], a_full[r * 4 + 2]])
            .collect();
        let b: Vec<f32> = (0..2)
            .flat_map(|r| [b_full[r * 5 + 2], b_full[r * 5 + 3]])
            .collect();
        let want = naive(&a, &b, 3, 2, 2);
        let mut c = [7.0f32; 12];
        matmul_block(
            &mut c[1..],
            4,
            View::block(&a_full[1..], 3, 2, 4),
            View::block(&b_full[2..], 2, 2, 5),
            1.0,
            1.0,
        );
        for r in 0..3 {
            assert_eq!(c[r * 4], 7.0, "column 0 untouched");
            assert_eq!(c[r * 4 + 3], 7.0, "column 3 untouched");
            for j in 0..2 {
                assert_eq!(
                    c[r * 4 + 1 + j],
                    7.0 + want[r * 2 + j],
                    "row {r} column {j}"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn a_block_longer_than_its_slice_is_refused() {
        let data = [0.0f32; 7];
        View::block(&data, 2, 3, 5);
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
