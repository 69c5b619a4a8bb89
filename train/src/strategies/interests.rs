//! Multi-interest user encoders (`user_embedding` `[B, K, D]`): the ONNX form of
//! [`kan_core::interests::pool`] (farthest-point seeds over the history, one soft assignment,
//! K weighted means), the same computation in Rust for training-time recall, and exact recall
//! over K vectors per user merged by [`kan_core::interests::merge`] — the merge the worker runs
//! over its K index searches.
//!
//! `kan train dssm --param interests=K` learns the interests ([`attention_onnx`],
//! [`super::interest_grad`]); with `--param interest_attention=0` it trains the usual
//! single-vector dssm and pools the history into K interests without weights, in the user
//! tower's input space, passing each through the tower (a mean of one interest's items is what
//! the tower was trained on).

use kan_core::Hit;
use kan_core::interests::{ASSIGN_SCALE, MAX_INTERESTS, SEED_QUANTUM, merge, pool};
use rayon::prelude::*;

use super::Query;
use crate::error::{Error, Result};
use crate::linalg::{View, matmul};
use crate::metrics::top_k;
use crate::onnx::{Graph, attr_int, attr_ints};

/// Masked positions get this added before the farthest-point ArgMin, so never chosen.
const PAD_BIAS: f32 = 1e9;
const NORM_EPS: f32 = 1e-12;

/// Checks a requested interest count (`--param interests`).
pub fn check_interests(k: usize) -> Result<usize> {
    if (1..=MAX_INTERESTS).contains(&k) {
        Ok(k)
    } else {
        Err(Error::InvalidInput(format!(
            "--param interests={k}: must be between 1 and {MAX_INTERESTS} (the worker runs one search per interest)"
        )))
    }
}

/// The K pooled interests of each history over an `[N, dim]` table (rows of the first `l`
/// items), flattened per history as `[K·dim]`: [`kan_core::interests::pool`].
pub fn pooled(table: &[f32], dim: usize, histories: &[&[u32]], l: usize, k: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(histories.len() * k * dim);
    for h in histories {
        let rows: Vec<&[f32]> = h
            .iter()
            .take(l)
            .filter_map(|&i| table.get(i as usize * dim..(i as usize + 1) * dim))
            .collect();
        for interest in pool(&rows, dim, k, ASSIGN_SCALE) {
            out.extend(interest);
        }
    }
    out
}

/// Adds the pooling to `g`: `e` `[B, L, D]` (the history rows) and `mask` `[B, L]` → `[B, K, D]`.
pub fn pool_onnx(g: &mut Graph, e: &str, mask: &str, k: usize) -> String {
    let ax1 = g.i64_init("interests_axis_1", &[1]);
    let ax2 = g.i64_init("interests_axis_2", &[2]);
    let first = g.i64_init("interests_first", &[0]);
    let one = g.f32_init("interests_one", &[], &[1.0]);
    let weight_eps = g.f32_init("interests_weight_eps", &[], &[f32::EPSILON]);
    let big = g.f32_init("interests_pad_bias", &[], &[PAD_BIAS]);
    let scale = g.f32_init("interests_scale", &[], &[ASSIGN_SCALE]);
    let onehot_values = g.f32_init("interests_onehot_values", &[2], &[0.0, 1.0]);

    // Cosines between history items: [B, L, L].
    let unit = g.l2_normalise(e, "interests_unit", NORM_EPS, None);
    let unit_t = g.node(
        "Transpose",
        &[&unit],
        vec![attr_ints("perm", &[0, 2, 1])],
        None,
    );
    let cos = g.node("MatMul", &[&unit, &unit_t], vec![], None);
    let off = g.node("Sub", &[&one, mask], vec![], None);
    let pad = g.node("Mul", &[&off, &big], vec![], None);
    let shape = g.node("Shape", &[mask], vec![], None);
    let length = g.node("Gather", &[&shape, &ax1], vec![attr_int("axis", 0)], None);

    // Seed 1: the most recent item; seed j + 1: the item least like its closest seed.
    let row = g.node("Gather", &[&cos, &first], vec![attr_int("axis", 1)], None);
    let seed_sim = g.node("Squeeze", &[&row, &ax1], vec![], None);
    let mut closest = seed_sim.clone();
    let mut columns = vec![g.node("Unsqueeze", &[&seed_sim, &ax2], vec![], None)];
    let quantum = g.f32_init("interests_seed_quantum", &[], &[SEED_QUANTUM]);
    for _ in 1..k {
        let rank = g.node("Div", &[&closest, &quantum], vec![], None);
        let rank = g.node("Round", &[&rank], vec![], None);
        let masked = g.node("Add", &[&rank, &pad], vec![], None);
        let far = g.node(
            "ArgMin",
            &[&masked],
            vec![attr_int("axis", 1), attr_int("keepdims", 0)],
            None,
        );
        let pick = g.node(
            "OneHot",
            &[&far, &length, &onehot_values],
            vec![attr_int("axis", -1)],
            None,
        );
        let pick = g.node("Unsqueeze", &[&pick, &ax1], vec![], None);
        let row = g.node("MatMul", &[&pick, &cos], vec![], None);
        let seed_sim = g.node("Squeeze", &[&row, &ax1], vec![], None);
        closest = g.node("Max", &[&closest, &seed_sim], vec![], None);
        columns.push(g.node("Unsqueeze", &[&seed_sim, &ax2], vec![], None));
    }
    let refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let logits = g.node("Concat", &refs, vec![attr_int("axis", 2)], None);

    // One soft assignment: weights [B, L, K], masked; interests are weighted means.
    let logits = g.node("Mul", &[&logits, &scale], vec![], None);
    let assign = g.node("Softmax", &[&logits], vec![attr_int("axis", 2)], None);
    let mask3 = g.node("Unsqueeze", &[mask, &ax2], vec![], None);
    let assign = g.node("Mul", &[&assign, &mask3], vec![], None);
    let weight = g.node(
        "ReduceSum",
        &[&assign, &ax1],
        vec![attr_int("keepdims", 0)],
        None,
    );
    let weight = g.node("Max", &[&weight, &weight_eps], vec![], None);
    let weight = g.node("Unsqueeze", &[&weight, &ax2], vec![], None);
    let assign_t = g.node(
        "Transpose",
        &[&assign],
        vec![attr_ints("perm", &[0, 2, 1])],
        None,
    );
    let sums = g.node("MatMul", &[&assign_t, e], vec![], None);
    g.node("Div", &[&sums, &weight], vec![], None)
}

/// Adds learned interest extraction to `g` (ComiRec-SA, [`super::interest_grad`]): `e`
/// `[B, L, D]` and `mask` `[B, L]` → `[B, K, D]`, per interest the softmax over the positions of
/// `tanh(e W) q_k` (masked positions excluded, an empty history all zeros) weighting the rows.
pub fn attention_onnx(g: &mut Graph, e: &str, mask: &str, w: &str, q: &str) -> String {
    let ax2 = g.i64_init("interests_axis_2", &[2]);
    let one = g.f32_init("interests_one", &[], &[1.0]);
    let big = g.f32_init("interests_pad_bias", &[], &[PAD_BIAS]);
    let s = g.node("MatMul", &[e, w], vec![], None);
    let s = g.node("Tanh", &[&s], vec![], None);
    let logits = g.node("MatMul", &[&s, q], vec![], None);
    let off = g.node("Sub", &[mask, &one], vec![], None);
    let bias = g.node("Mul", &[&off, &big], vec![], None);
    let bias = g.node("Unsqueeze", &[&bias, &ax2], vec![], None);
    let logits = g.node("Add", &[&logits, &bias], vec![], None);
    let alpha = g.node("Softmax", &[&logits], vec![attr_int("axis", 1)], None);
    let mask3 = g.node("Unsqueeze", &[mask, &ax2], vec![], None);
    let alpha = g.node("Mul", &[&alpha, &mask3], vec![], None);
    let alpha_t = g.node(
        "Transpose",
        &[&alpha],
        vec![attr_ints("perm", &[0, 2, 1])],
        None,
    );
    g.node("MatMul", &[&alpha_t, e], vec![], None)
}

/// L2-normalises the last axis of `y` into the contract's `user_embedding`.
pub fn normalise_output(g: &mut Graph, y: &str) {
    g.l2_normalise(y, "output", NORM_EPS, Some("user_embedding"));
}

/// A K-interest encoder with no tower over an `[N, dim]` table: each interest is the
/// normalised pooled mean. `kan bench worker --user-vectors K` serves it over its synthetic
/// item vectors.
pub fn mean_encoder_onnx(table: &[f32], dim: usize, k: usize) -> Result<Vec<u8>> {
    let k = check_interests(k)?;
    let (mut g, ids, mask) = Graph::user_encoder_with(dim, k);
    let n = table.len() / dim.max(1);
    let table = g.f32_init("item_table", &[n, dim], table);
    let e = g.node("Gather", &[&table, &ids], vec![attr_int("axis", 0)], None);
    let pooled = pool_onnx(&mut g, &e, &mask, k);
    normalise_output(&mut g, &pooled);
    g.to_bytes("kan-multi-interest-mean-encoder")
}

/// The `k` best items for each query over users with `interests` vectors each (`users`
/// row-major `[B·K, dim]`): per interest the exact top `k` (blocks of matrix products), then
/// [`kan_core::interests::merge`].
pub fn recall(
    users: &[f32],
    interests: usize,
    items: &[f32],
    dim: usize,
    queries: &[Query],
    k: usize,
) -> Vec<Vec<u32>> {
    let interests = interests.max(1);
    let n_items = items.len() / dim.max(1);
    const BLOCK: usize = 128;
    let mut out = Vec::with_capacity(queries.len());
    let mut scores = Vec::new();
    for (qs, us) in queries
        .chunks(BLOCK)
        .zip(users.chunks(BLOCK * interests * dim))
    {
        let rows = qs.len() * interests;
        scores.clear();
        scores.resize(rows * n_items, 0f32);
        matmul(
            &mut scores,
            View::new(us, rows, dim),
            View::new(items, n_items, dim).t(),
            1.0,
            0.0,
        );
        let lists: Vec<Vec<u32>> = scores
            .par_chunks(interests * n_items)
            .zip(qs.par_iter())
            .map(|(s, q)| {
                let per: Vec<Vec<Hit>> = s
                    .chunks(n_items)
                    .map(|row| {
                        top_k(row, k, q.exclude)
                            .into_iter()
                            .map(|item| Hit {
                                item,
                                score: row[item as usize],
                            })
                            .collect()
                    })
                    .collect();
                merge(&per, k).into_iter().map(|h| h.item).collect()
            })
            .collect();
        out.extend(lists);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_counts_outside_what_the_worker_searches_are_refused() {
        assert_eq!(check_interests(2).unwrap(), 2);
        for bad in [0, MAX_INTERESTS + 1] {
            let e = check_interests(bad).unwrap_err().to_string();
            assert!(e.contains("between 1 and 16"), "{e}");
        }
    }

    #[test]
    fn k_vector_recall_ranks_by_the_best_interest_and_skips_excluded_items() {
        // Items on the axes of 2-d space; one user with interests along x and y.
        let items = [1.0, 0.0, 0.0, 1.0, 0.7, 0.7, -1.0, 0.0];
        let users = [1.0, 0.0, 0.0, 0.9];
        let exclude = [2u32];
        let q = Query {
            user: None,
            history: &[],
            exclude: &exclude,
        };
        let got = recall(&users, 2, &items, 2, &[q], 3);
        assert_eq!(got, vec![vec![0, 1, 3]]);
        // One interest: the single-vector ranking.
        let q = Query {
            user: None,
            history: &[],
            exclude: &[],
        };
        assert_eq!(recall(&users[..2], 1, &items, 2, &[q], 2), vec![vec![0, 2]]);
    }
}
