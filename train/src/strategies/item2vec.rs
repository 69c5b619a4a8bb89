//! `item2vec`: skip-gram with negative sampling (Mikolov et al., 2013; Barkan & Koenigstein,
//! 2016) over each user's time-ordered items. Hand-written and single-threaded so a seed gives
//! the same vectors on any machine. Recall is the worker's: the core's user vector
//! ([`kan_core::item2vec::user_vector`]) with the queue's settings, searched exactly.

use kan_api::crd::Item2vecSettings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter};
use crate::error::Result;
use crate::strategies::twotower::{normalise_rows, read_vectors, write_vectors};

pub const WINDOW: usize = 5;
pub const NEGATIVES: usize = 5;
pub const DEFAULT_EPOCHS: usize = 5;
pub const LEARNING_RATE: f32 = 0.025;

pub struct Item2Vec {
    pub dim: usize,
    pub epochs: usize,
    /// Row-major [N, D], L2-normalised.
    pub vectors: Vec<f32>,
    /// The queue settings recall runs with (the CRD defaults unless a RecallQueue gives them).
    pub settings: Item2vecSettings,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x.clamp(-30.0, 30.0)).exp())
}

/// Cumulative unigram^0.75 distribution for drawing negatives.
fn negative_table(counts: &[u32]) -> Vec<f64> {
    let mut acc = 0.0;
    counts
        .iter()
        .map(|&c| {
            acc += (c as f64).powf(0.75);
            acc
        })
        .collect()
}

fn draw(table: &[f64], rng: &mut StdRng) -> u32 {
    let total = table.last().copied().unwrap_or(0.0);
    let x = rng.random::<f64>() * total;
    table
        .partition_point(|&c| c <= x)
        .min(table.len().saturating_sub(1)) as u32
}

/// Trains SGNS input vectors over sequences of item indices.
pub fn sgns(
    sequences: &[Vec<u32>],
    n_items: usize,
    dim: usize,
    epochs: usize,
    seed: u64,
    pb: &indicatif::ProgressBar,
) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut input: Vec<f32> = (0..n_items * dim)
        .map(|_| (rng.random::<f32>() - 0.5) / dim as f32)
        .collect();
    let mut output = vec![0f32; n_items * dim];
    let mut counts = vec![0u32; n_items];
    for s in sequences {
        for &i in s {
            counts[i as usize] += 1;
        }
    }
    let table = negative_table(&counts);
    let total_steps = (epochs * sequences.len()).max(1) as f32;
    let mut grad = vec![0f32; dim];
    let mut step = 0usize;
    for _ in 0..epochs {
        for s in sequences {
            let lr = (LEARNING_RATE * (1.0 - step as f32 / total_steps)).max(LEARNING_RATE * 1e-4);
            step += 1;
            for (pos, &center) in s.iter().enumerate() {
                // Reduced windows (as in word2vec) weight near neighbours more.
                let w = rng.random_range(1..=WINDOW);
                let lo = pos.saturating_sub(w);
                let hi = (pos + w + 1).min(s.len());
                for (cpos, &context) in s.iter().enumerate().take(hi).skip(lo) {
                    if cpos == pos {
                        continue;
                    }
                    let c = center as usize * dim;
                    grad.fill(0.0);
                    for n in 0..=NEGATIVES {
                        let (target, label) = if n == 0 {
                            (context, 1.0)
                        } else {
                            (draw(&table, &mut rng), 0.0)
                        };
                        if n > 0 && target == context {
                            continue;
                        }
                        let t = target as usize * dim;
                        let f: f32 = (0..dim).map(|d| input[c + d] * output[t + d]).sum();
                        let g = (label - sigmoid(f)) * lr;
                        for d in 0..dim {
                            grad[d] += g * output[t + d];
                            output[t + d] += g * input[c + d];
                        }
                    }
                    for d in 0..dim {
                        input[c + d] += grad[d];
                    }
                }
            }
        }
        pb.inc(1);
    }
    normalise_rows(&mut input, dim);
    input
}

pub fn train(ctx: &Context) -> Result<Item2Vec> {
    let epochs = ctx.opts.epochs.unwrap_or(DEFAULT_EPOCHS);
    let sequences: Vec<Vec<u32>> = (0..ctx.history.n_users())
        .map(|u| ctx.history.items(u).iter().rev().copied().collect())
        .filter(|s: &Vec<u32>| s.len() > 1)
        .collect();
    let pb = ctx.progress.bar(epochs as u64, "item2vec epochs");
    let vectors = sgns(
        &sequences,
        ctx.ds.n_items(),
        ctx.opts.dim,
        epochs,
        ctx.opts.seed,
        &pb,
    );
    pb.finish();
    Ok(Item2Vec {
        dim: ctx.opts.dim,
        epochs,
        vectors,
        settings: Item2vecSettings::default(),
    })
}

impl Recaller for Item2Vec {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        Ok(recall_each(queries, |q| {
            let Some(user) =
                kan_core::item2vec::user_vector(&self.vectors, self.dim, &self.settings, q.history)
            else {
                return Vec::new();
            };
            // The worker excludes the request's history and exclusions; here both are `exclude`.
            let mut excluded = q.exclude.to_vec();
            excluded.extend_from_slice(q.history);
            excluded.sort_unstable();
            kan_core::vector::exact_scan(
                &self.vectors,
                self.dim,
                &user,
                None,
                |i| excluded.binary_search(&i).is_ok(),
                k,
            )
        }))
    }
}

impl Model for Item2Vec {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        write_vectors(w, &self.vectors, self.dim)
    }

    fn params(&self) -> serde_json::Value {
        json!({"window": WINDOW, "negatives": NEGATIVES, "epochs": self.epochs, "learning_rate": LEARNING_RATE,
               "recency_decay": self.settings.recency_decay,
               kan_api::bundle::params::HISTORY_LENGTH: self.settings.history_length})
    }

    fn dim(&self) -> Option<u32> {
        Some(self.dim as u32)
    }
}

impl Item2Vec {
    pub fn load(b: &BundleDir) -> Result<Self> {
        let (vectors, dim) = read_vectors(b)?;
        let epochs = b.manifest.params["epochs"].as_u64().unwrap_or(0) as usize;
        Ok(Item2Vec {
            dim,
            epochs,
            vectors,
            settings: Item2vecSettings::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_that_share_sequences_end_up_closer_than_items_that_never_do() {
        // Two disjoint communities: {0,1,2} and {3,4,5}.
        let mut seqs = Vec::new();
        for n in 0..200 {
            seqs.push(if n % 2 == 0 {
                vec![0, 1, 2, 0, 2, 1]
            } else {
                vec![3, 4, 5, 4, 3, 5]
            });
        }
        let v = sgns(&seqs, 6, 8, 5, 1, &indicatif::ProgressBar::hidden());
        let cos = |a: usize, b: usize| -> f32 { (0..8).map(|d| v[a * 8 + d] * v[b * 8 + d]).sum() };
        assert!(
            cos(0, 1) > cos(0, 4) + 0.2,
            "within {} vs across {}",
            cos(0, 1),
            cos(0, 4)
        );
        assert!(cos(3, 5) > cos(2, 5) + 0.2);
    }

    #[test]
    fn the_same_seed_gives_the_same_vectors() {
        let seqs = vec![vec![0, 1, 2, 3], vec![3, 2, 1]];
        let pb = indicatif::ProgressBar::hidden();
        assert_eq!(sgns(&seqs, 4, 4, 2, 9, &pb), sgns(&seqs, 4, 4, 2, 9, &pb));
    }
}
