//! Element-wise f32 kernels written so that LLVM vectorises them, and the runtime dispatch that
//! compiles a loop for the CPU's widest instruction set.
//!
//! Baseline x86-64 has 4-lane SSE2 only, and a float reduction written as one running sum (or a
//! `libm` call like `expf`) does not vectorise at all. The kernels below keep [`LANES`]
//! independent accumulators and use no calls, so inside [`simd`] they compile to AVX-512 or
//! AVX2 + FMA code where the CPU has it (pulp's dispatch, the one `gemm` uses). They are
//! `#[inline(always)]` so that they take on the instruction set of the loop calling them.

/// Independent accumulators of a reduction: one AVX-512 register or two AVX2 ones.
const LANES: usize = 16;

/// Runs `f` compiled for the best instruction set the CPU has (x86-64-v4 or -v3 where present;
/// baseline x86-64 otherwise). Loops
/// in `f`, and the kernels of this module it calls, are vectorised for it — provided `f` is
/// inlined into the dispatching function: write `simd(#[inline(always)] || ...)`, or a large
/// closure stays a separate baseline-x86-64 function. Closures `f` hands to other code (rayon's)
/// are not inlined into it and must call `simd` themselves.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Σ aᵢ bᵢ of two equally long slices (the serving code's lane-split product).
pub use kan_core::vector::dot;

/// y += a x.
#[inline(always)]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(o, v)| *o += a * v);
}

/// y += x.
#[inline(always)]
pub fn add(x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(o, v)| *o += v);
}

/// x *= a.
#[inline(always)]
pub fn scale(a: f32, x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v *= a);
}

/// Σ xᵢ.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest element (−∞ for an empty slice; NaNs are skipped).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..LANES {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.into_iter().fold(tail, f32::max)
}

/// `x ↦ e^(x − shift)` in place; returns the sum of the results. With `shift` the maximum this
/// is a softmax's numerator, every result in (0, 1].
///
/// Cody–Waite range reduction `x = n ln 2 + r`, |r| ≤ ln 2 / 2, and Cephes' degree-7 minimax
/// polynomial for e^r: relative error below 3e-7 (`f32::exp` calls libm, which does not
/// vectorise). Arguments are clamped to [−87, 88], so e^x underflows to ~1.6e-38 rather than to
/// a subnormal, and never overflows.
#[inline(always)]
pub fn exp_shifted(x: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            c[i] = exp(c[i] - shift);
            acc[i] += c[i];
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - shift);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// e^x for x clamped to [−87, 88]: see [`exp_shifted`].
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 × 2^23 rounds an f32 of magnitude below 2^22 to an integer.
    const ROUND: f32 = 12_582_912.0;
    let a = x.clamp(-87.0, 88.0);
    // t = 1.5 × 2^23 + n exactly, n = round(a / ln 2) ∈ [−126, 127].
    let t = a * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = a - n * LN2_HI - n * LN2_LO;
    let p = ((((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r)
        + r
        + 1.0;
    // 2^n built from t's bits, whose low bits hold n: integer lane operations only (`n as
    // i32` saturates, and LLVM converts such a cast one lane at a time).
    p * f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits() - 127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, rel: f32) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-30)
    }

    #[test]
    fn the_exponential_is_within_3e_7_of_libms_over_the_softmax_range() {
        let xs: Vec<f32> = (0..200_001)
            .map(|i| -87.0 + 87.0 * i as f32 / 200_000.0)
            .collect();
        let mut ys = xs.clone();
        let total = simd(
            #[inline(always)]
            || exp_shifted(&mut ys, 0.0),
        );
        for (x, y) in xs.iter().zip(&ys) {
            assert!(close(*y, x.exp(), 3e-7), "e^{x}: {y} vs {}", x.exp());
        }
        let want: f64 = xs.iter().map(|x| (*x as f64).exp()).sum();
        assert!((total as f64 - want).abs() < 1e-5 * want);
    }

    #[test]
    fn the_exponential_subtracts_the_shift_and_clamps_instead_of_overflowing() {
        let mut ys = [1.0f32, 3.0, -1e9, 200.0];
        exp_shifted(&mut ys, 3.0);
        assert!(close(ys[0], (-2f32).exp(), 3e-7));
        assert!(close(ys[1], 1.0, 3e-7));
        assert!(ys[2] > 0.0 && ys[2] < 1e-37, "masked logit: {}", ys[2]);
        assert!(ys[3].is_finite() && ys[3] > 1e38);
    }

    #[test]
    fn reductions_equal_their_sequential_forms_on_lengths_around_the_lane_count() {
        for n in [0, 1, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 3) % 5) as f32 - 2.0).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(
                simd(
                    #[inline(always)]
                    || dot(&a, &b)
                ),
                naive,
                "dot, n = {n}"
            );
            assert_eq!(sum(&a), a.iter().sum::<f32>(), "sum, n = {n}");
            let m = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&a), m, "max, n = {n}");
        }
    }

    #[test]
    fn element_wise_kernels_update_in_place() {
        let x = [1.0f32, 2.0, 3.0];
        let mut y = [1.0f32; 3];
        axpy(2.0, &x, &mut y);
        assert_eq!(y, [3.0, 5.0, 7.0]);
        add(&x, &mut y);
        assert_eq!(y, [4.0, 7.0, 10.0]);
        scale(0.5, &mut y);
        assert_eq!(y, [2.0, 3.5, 5.0]);
    }
}
