//! Vector arithmetic of the embedding strategies: the dot product, normalisation and the exact
//! scan (brute force over every item vector) that the worker's exact index and `kan eval` run.

use crate::rank::{Hit, top_k};

/// Dot product in eight independent lanes, so LLVM vectorises it: a plain `sum()` over f32 is
/// one serial chain (float addition is not associative) and runs several times slower. Every
/// distance in the exact scan and the HNSW graph goes through here, and the trainers' products:
/// inlined, so it takes on the instruction set of the loop calling it (AVX2/AVX-512 inside the
/// trainers' runtime dispatch).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// L2-normalises in place; false when the vector has no direction (all zero or not finite).
pub fn normalise(v: &mut [f32]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= f32::EPSILON {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

/// The `limit` items whose vectors (row-major `[n, dim]`) have the highest dot product with
/// `query`, best first, skipping items `excluded` names and scores below `threshold`.
pub fn exact_scan(
    vectors: &[f32],
    dim: usize,
    query: &[f32],
    threshold: Option<f32>,
    excluded: impl Fn(u32) -> bool,
    limit: usize,
) -> Vec<Hit> {
    if query.len() != dim || dim == 0 {
        return Vec::new();
    }
    let threshold = threshold.unwrap_or(f32::NEG_INFINITY);
    let hits = vectors
        .chunks_exact(dim)
        .enumerate()
        .filter_map(|(i, row)| {
            let item = i as u32;
            if excluded(item) {
                return None;
            }
            let score = dot(row, query);
            (score >= threshold).then_some(Hit { item, score })
        });
    top_k(hits, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum_for_every_length() {
        for n in [0, 1, 7, 8, 9, 64, 67] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 / (1.0 + i as f32)).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "length {n}");
        }
    }

    #[test]
    fn vectors_without_direction_are_not_normalised() {
        let mut v = [3.0, 4.0];
        assert!(normalise(&mut v));
        assert_eq!(v, [0.6, 0.8]);
        assert!(!normalise(&mut [0.0, 0.0]));
        assert!(!normalise(&mut [f32::NAN, 1.0]));
    }

    #[test]
    fn the_exact_scan_ranks_by_dot_product_and_honours_exclusions_and_threshold() {
        let vectors = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let all = exact_scan(&vectors, 2, &[1.0, 0.0], None, |_| false, 3);
        assert_eq!(all.iter().map(|h| h.item).collect::<Vec<_>>(), [0, 2, 1]);
        let some = exact_scan(&vectors, 2, &[1.0, 0.0], Some(0.5), |i| i == 0, 3);
        assert_eq!(
            some,
            [Hit {
                item: 2,
                score: 0.6
            }]
        );
        assert!(exact_scan(&vectors, 2, &[1.0], None, |_| false, 3).is_empty());
    }
}
