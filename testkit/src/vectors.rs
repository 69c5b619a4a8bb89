//! Clustered unit vectors: the item catalogue of synthetic bundles and of the ANN benchmark.

use kan_core::vector::normalise;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` unit vectors of `dim` around `clusters` random centres (row-major `[n, dim]`); item `i`
/// belongs to cluster `i % clusters`. Noise is uniform ±0.35 per coordinate, which in 64-d is
/// larger than the centre itself (nearly uniform directions: the hard case for ANN).
pub fn clustered_vectors(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    clustered_vectors_with_noise(n, dim, clusters, 0.35, seed)
}

/// As [`clustered_vectors`] with noise uniform ±`noise` per coordinate (its norm is about
/// `noise · sqrt(dim / 3)` against a unit centre).
pub fn clustered_vectors_with_noise(
    n: usize,
    dim: usize,
    clusters: usize,
    noise: f32,
    seed: u64,
) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            normalise(&mut c);
            c
        })
        .collect();
    let noise = noise.abs().max(f32::EPSILON);
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        let centre = &centres[i % centres.len()];
        let mut v: Vec<f32> = centre
            .iter()
            .map(|c| c + rng.random_range(-noise..noise))
            .collect();
        if !normalise(&mut v) {
            v = centre.clone();
        }
        out.extend_from_slice(&v);
    }
    out
}
