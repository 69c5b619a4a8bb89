//! The top eigenpairs of a large symmetric positive semi-definite operator known only through
//! products with blocks of vectors: randomized subspace iteration (Halko, Martinsson & Tropp,
//! SIAM Review 2011) with Cholesky-QR re-orthonormalisation, then a Rayleigh–Ritz step solved by
//! cyclic Jacobi rotations. Small pieces in f64, the big blocks in f32.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::linalg::{View, matmul};

/// Eigenvalues (descending) and their eigenvectors as the columns of a row-major `n × k` block.
#[derive(Clone, Debug)]
pub struct Eigen {
    pub values: Vec<f64>,
    pub vectors: Vec<f32>,
    pub n: usize,
    pub k: usize,
}

/// Eigen-decomposition of a symmetric `n × n` matrix (row-major, f64) by cyclic Jacobi:
/// eigenvalues descending, eigenvectors as columns of the returned row-major matrix.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= 1e-22 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J on rows and columns p, q.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| a[y * n + y].total_cmp(&a[x * n + x]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0f64; n * n];
    for (c, &i) in order.iter().enumerate() {
        for r in 0..n {
            vectors[r * n + c] = v[r * n + i];
        }
    }
    (values, vectors)
}

/// `xᵀx` of a row-major `n × s` block, in f64.
fn gram(x: &[f32], n: usize, s: usize) -> Vec<f64> {
    let mut g = vec![0f32; s * s];
    matmul(&mut g, View::new(x, n, s).t(), View::new(x, n, s), 1.0, 0.0);
    g.into_iter().map(f64::from).collect()
}

/// Makes the columns of `x` (row-major `n × s`) orthonormal with the same span: Cholesky of the
/// Gram matrix, x ← x L⁻ᵀ. Columns (numerically) dependent on earlier ones are dropped; returns
/// the number kept.
fn orthonormalise(x: &mut Vec<f32>, n: usize, s: usize) -> usize {
    let g = gram(x, n, s);
    let mut l = vec![0f64; s * s];
    let mut kept = Vec::with_capacity(s);
    for i in 0..s {
        for &j in &kept {
            let dot: f64 = kept
                .iter()
                .take_while(|&&q| q < j)
                .map(|&q| l[i * s + q] * l[j * s + q])
                .sum();
            l[i * s + j] = (g[i * s + j] - dot) / l[j * s + j];
        }
        let dot: f64 = kept.iter().map(|&q| l[i * s + q] * l[i * s + q]).sum();
        let d = g[i * s + i] - dot;
        if d > 1e-8 * g[i * s + i].abs() && d > 1e-30 {
            l[i * s + i] = d.sqrt();
            kept.push(i);
        } else {
            // Dependent: drop the column (its row of L stays out of every later sum).
            for &j in &kept {
                l[i * s + j] = 0.0;
            }
        }
    }
    let r = kept.len();
    // L⁻¹ over the kept columns (lower triangular), then x ← x[:, kept] (L⁻¹)ᵀ.
    let lk = |a: usize, b: usize| l[kept[a] * s + kept[b]];
    let mut inv = vec![0f64; r * r];
    for c in 0..r {
        for i in c..r {
            let rhs = if i == c { 1.0 } else { 0.0 };
            let dot: f64 = (c..i).map(|q| lk(i, q) * inv[q * r + c]).sum();
            inv[i * r + c] = (rhs - dot) / lk(i, i);
        }
    }
    let inv32: Vec<f32> = inv.iter().map(|&v| v as f32).collect();
    let xk: Vec<f32> = if r == s {
        std::mem::take(x)
    } else {
        (0..n * r).map(|e| x[(e / r) * s + kept[e % r]]).collect()
    };
    let mut out = vec![0f32; n * r];
    matmul(
        &mut out,
        View::new(&xk, n, r),
        View::new(&inv32, r, r).t(),
        1.0,
        0.0,
    );
    *x = out;
    r
}

/// The top `k` eigenpairs of the `n × n` operator `apply` (y ← A x for row-major `n × s` blocks),
/// with `oversample` extra directions and `iterations` power steps.
pub fn top_eigen<F>(
    n: usize,
    k: usize,
    oversample: usize,
    iterations: usize,
    seed: u64,
    apply: F,
) -> Result<Eigen>
where
    F: Fn(&[f32], usize) -> Vec<f32>,
{
    if k == 0 || k > n {
        return Err(Error::InvalidInput(format!(
            "cannot take {k} eigenvectors of a {n} × {n} operator"
        )));
    }
    let mut s = (k + oversample).min(n);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x: Vec<f32> = (0..n * s)
        .map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        })
        .collect();
    s = orthonormalise(&mut x, n, s);
    for _ in 0..iterations {
        x = apply(&x, s);
        s = orthonormalise(&mut x, n, s);
        // A second pass fixes what one Cholesky-QR leaves in f32.
        s = orthonormalise(&mut x, n, s);
    }
    if s == 0 {
        return Err(Error::InvalidInput(
            "the operator is zero: no interactions to decompose".into(),
        ));
    }
    // An operator of lower rank than asked for yields fewer eigenpairs.
    let k = k.min(s);
    // Rayleigh–Ritz: T = xᵀ A x, eigenvectors of A ≈ x W.
    let ax = apply(&x, s);
    let mut t = vec![0f32; s * s];
    matmul(
        &mut t,
        View::new(&x, n, s).t(),
        View::new(&ax, n, s),
        1.0,
        0.0,
    );
    let t: Vec<f64> = (0..s * s)
        .map(|i| 0.5 * (t[i] as f64 + t[(i % s) * s + i / s] as f64))
        .collect();
    let (values, w) = symmetric_eigen(&t, s);
    let wk: Vec<f32> = (0..s * k).map(|i| w[(i / k) * s + i % k] as f32).collect();
    let mut vectors = vec![0f32; n * k];
    matmul(
        &mut vectors,
        View::new(&x, n, s),
        View::new(&wk, s, k),
        1.0,
        0.0,
    );
    Ok(Eigen {
        values: values[..k].to_vec(),
        vectors,
        n,
        k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix_with_sorted_eigenvalues() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let (vals, vecs) = symmetric_eigen(&a, 3);
        assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
        for c in 0..3 {
            // A v = λ v.
            for r in 0..3 {
                let av: f64 = (0..3).map(|k| a[r * 3 + k] * vecs[k * 3 + c]).sum();
                assert!((av - vals[c] * vecs[r * 3 + c]).abs() < 1e-9);
            }
        }
        let trace: f64 = vals.iter().sum();
        assert!((trace - 8.0).abs() < 1e-9);
    }

    #[test]
    fn subspace_iteration_finds_the_top_eigenpairs_of_a_known_operator() {
        // A = Q diag(d) Qᵀ with a known orthonormal Q (a rotation of the first two axes).
        let n = 40;
        let d: Vec<f32> = (0..n).map(|i| 1.0 / (1.0 + i as f32)).collect();
        let (c, s) = (0.6f32, 0.8f32);
        let q = |x: &mut [f32]| {
            let (a, b) = (x[0], x[1]);
            x[0] = c * a - s * b;
            x[1] = s * a + c * b;
        };
        let qt = |x: &mut [f32]| {
            let (a, b) = (x[0], x[1]);
            x[0] = c * a + s * b;
            x[1] = -s * a + c * b;
        };
        let apply = |x: &[f32], cols: usize| {
            let mut out = vec![0f32; n * cols];
            for j in 0..cols {
                let mut col: Vec<f32> = (0..n).map(|i| x[i * cols + j]).collect();
                qt(&mut col);
                col.iter_mut().zip(&d).for_each(|(v, di)| *v *= di);
                q(&mut col);
                for i in 0..n {
                    out[i * cols + j] = col[i];
                }
            }
            out
        };
        let e = top_eigen(n, 3, 10, 6, 1, apply).unwrap();
        for (got, want) in e.values.iter().zip([1.0, 0.5, 1.0 / 3.0]) {
            assert!((got - want).abs() < 1e-4, "{:?}", e.values);
        }
        // The top eigenvector is Q e₀ = (0.6, 0.8, 0, ...) up to sign.
        let v0: Vec<f32> = (0..n).map(|i| e.vectors[i * 3]).collect();
        assert!((v0[0].abs() - 0.6).abs() < 1e-3 && (v0[1].abs() - 0.8).abs() < 1e-3);
        assert!(top_eigen(n, 0, 1, 1, 1, apply).is_err());
    }
}
