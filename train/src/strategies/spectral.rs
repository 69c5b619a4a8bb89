//! `spectral`: a graph-filter recall path (GF-CF, Shen et al., CIKM 2021) served as a user
//! encoder over item vectors, so it runs in the worker and index that serve dssm.
//!
//! With R̃ = D_u^{-1/2} R D_i^{-1/2} the normalised user–item matrix and G = R̃ᵀR̃ = V Λ Vᵀ, GF-CF
//! scores a user's row r as r G + α r D_i^{-1/2} V_k V_kᵀ D_i^{1/2}: a linear filter plus an
//! ideal low-pass filter of the item graph. Both are sums over the history of per-item rows, so
//! with the top `rank` eigenpairs of G (randomized subspace iteration, [`crate::eigen`]):
//!
//! * history row of item j: [λ ⊙ v_j (rank), α d_j^{-1/2} v_j[..k] (ideal_rank), 0]
//! * item vector of item i: [v_i, d_i^{1/2} v_i[..k], s_i] / M
//!
//! where the user vector is the normalised sum of history rows (the ONNX encoder), M the largest
//! item norm and s_i = √(M² − ‖x_i‖²) the extra coordinate that makes every item vector unit
//! length without changing any user's ranking (the inner-product-to-cosine reduction of
//! Bachrach et al., RecSys 2014): the index searches by cosine, the filter needs inner products.
//! The linear filter is truncated at `rank`; rank, ideal rank and α are chosen on validation.

use kan_api::bundle::files;
use rayon::prelude::*;
use serde_json::json;

use super::convergence::cpu_seconds;
use super::hyper::search_widening;
use super::twotower::write_vectors;
use super::{Context, Model, Query, Recaller};
use crate::bundle::BundleWriter;
use crate::eigen::{Eigen, top_eigen};
use crate::error::{Error, Result};
use crate::history::History;
use crate::linalg::{View, matmul};
use crate::metrics::top_k;
use crate::onnx::{Graph, attr_int};

/// `--param` keys: the linear filter's rank, the ideal filter's rank, the ideal filter's weight,
/// and the eigen solver's power iterations.
pub const PARAMS: &[&str] = &["rank", "ideal_rank", "alpha", "power_iterations"];
/// Defaults chosen on Gowalla's validation split (BENCHMARKS.md).
pub const DEFAULT_RANK: usize = 512;
pub const DEFAULT_IDEAL_RANK: usize = 256;
pub const DEFAULT_ALPHA: f64 = 0.3;
pub const DEFAULT_POWER_ITERATIONS: usize = 4;
const OVERSAMPLE: usize = 64;
const NORM_EPS: f32 = 1e-12;

/// The filter applied to a spectrum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Filter {
    pub rank: usize,
    pub ideal_rank: usize,
    pub alpha: f64,
}

/// A trained spectral model: history rows and unit item vectors of width `dim`.
pub struct Spectral {
    pub filter: Filter,
    pub table: Vec<f32>,
    pub vectors: Vec<f32>,
    pub dim: usize,
    pub history_length: usize,
    pub eigenvalues: Vec<f64>,
    pub eigen_cpu_s: Option<f64>,
    /// Validation R@20 of every filter tried (empty when the settings were given).
    pub search: Vec<(Filter, f64)>,
}

/// G x for a row-major block x [N, s], G = R̃ᵀR̃ from training histories.
fn gram_apply(
    h: &History,
    item_users: &[Vec<u32>],
    deg_i: &[f32],
    x: &[f32],
    s: usize,
) -> Vec<f32> {
    let n_users = h.n_users();
    let w = |u: usize, i: u32| -> f32 {
        let du = h.items(u).len() as f32;
        1.0 / (du * deg_i[i as usize]).sqrt()
    };
    let mut y = vec![0f32; n_users * s];
    y.par_chunks_mut(s).enumerate().for_each(|(u, row)| {
        for &i in h.items(u) {
            let wi = w(u, i);
            let xi = &x[i as usize * s..(i as usize + 1) * s];
            row.iter_mut().zip(xi).for_each(|(a, b)| *a += wi * b);
        }
    });
    let mut z = vec![0f32; deg_i.len() * s];
    z.par_chunks_mut(s).enumerate().for_each(|(i, row)| {
        for &u in &item_users[i] {
            let wi = w(u as usize, i as u32);
            let yu = &y[u as usize * s..(u as usize + 1) * s];
            row.iter_mut().zip(yu).for_each(|(a, b)| *a += wi * b);
        }
    });
    z
}

/// The top `rank` eigenpairs of the normalised item–item matrix of `h`.
pub fn spectrum(
    h: &History,
    n_items: usize,
    rank: usize,
    iterations: usize,
    seed: u64,
) -> Result<Eigen> {
    let item_users = h.item_users(n_items);
    let deg_i: Vec<f32> = item_users.iter().map(|u| u.len() as f32).collect();
    top_eigen(
        n_items,
        rank.min(n_items),
        OVERSAMPLE,
        iterations,
        seed,
        |x, s| gram_apply(h, &item_users, &deg_i, x, s),
    )
}

/// History rows and unit item vectors of `filter` over a spectrum; returns (table, items, dim).
pub fn build(e: &Eigen, degrees: &[u32], filter: Filter) -> (Vec<f32>, Vec<f32>, usize) {
    let m = filter.rank.min(e.k);
    let k = filter.ideal_rank.min(m);
    let dim = m + k + 1;
    let n = e.n;
    let mut table = vec![0f32; n * dim];
    let mut items = vec![0f32; n * dim];
    for i in 0..n {
        let v = &e.vectors[i * e.k..i * e.k + m];
        let d = degrees[i] as f32;
        // Items never seen in training get no ideal-filter term (GF-CF's 1/√0 → 0).
        let (inv_sqrt, sqrt) = if d > 0.0 {
            (1.0 / d.sqrt(), d.sqrt())
        } else {
            (0.0, 0.0)
        };
        let t = &mut table[i * dim..(i + 1) * dim];
        let it = &mut items[i * dim..(i + 1) * dim];
        for l in 0..m {
            t[l] = (e.values[l] as f32) * v[l];
            it[l] = v[l];
        }
        for l in 0..k {
            t[m + l] = filter.alpha as f32 * inv_sqrt * v[l];
            it[m + l] = sqrt * v[l];
        }
    }
    let max_norm = items
        .chunks_exact(dim)
        .map(|r| r.iter().map(|x| x * x).sum::<f32>())
        .fold(0f32, f32::max)
        .sqrt()
        .max(NORM_EPS);
    for r in items.chunks_exact_mut(dim) {
        r.iter_mut().for_each(|x| *x /= max_norm);
        let sq: f32 = r[..dim - 1].iter().map(|x| x * x).sum();
        r[dim - 1] = (1.0 - sq).max(0.0).sqrt();
    }
    (table, items, dim)
}

/// Normalised sums of history rows (the first `l` history items), one per query.
fn user_vectors(table: &[f32], dim: usize, queries: &[Query], l: usize) -> Vec<f32> {
    let mut users = vec![0f32; queries.len() * dim];
    users
        .par_chunks_mut(dim)
        .zip(queries.par_iter())
        .for_each(|(u, q)| {
            for &i in q.history.iter().take(l) {
                let row = &table[i as usize * dim..(i as usize + 1) * dim];
                u.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            }
            let n = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(NORM_EPS);
            u.iter_mut().for_each(|x| *x /= n);
        });
    users
}

/// Top-k items by inner product for each query, scored as blocks of matrix products.
pub fn recall_vectors(
    users: &[f32],
    items: &[f32],
    dim: usize,
    queries: &[Query],
    k: usize,
) -> Vec<Vec<u32>> {
    let n_items = items.len() / dim.max(1);
    const BLOCK: usize = 256;
    let mut out = Vec::with_capacity(queries.len());
    let mut scores = Vec::new();
    for (qs, us) in queries.chunks(BLOCK).zip(users.chunks(BLOCK * dim)) {
        scores.clear();
        scores.resize(qs.len() * n_items, 0f32);
        matmul(
            &mut scores,
            View::new(us, qs.len(), dim),
            View::new(items, n_items, dim).t(),
            1.0,
            0.0,
        );
        let lists: Vec<Vec<u32>> = scores
            .par_chunks(n_items)
            .zip(qs.par_iter())
            .map(|(s, q)| top_k(s, k, q.exclude))
            .collect();
        out.extend(lists);
    }
    out
}

struct Candidate<'a> {
    table: &'a [f32],
    items: &'a [f32],
    dim: usize,
    l: usize,
}

impl Recaller for Candidate<'_> {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let users = user_vectors(self.table, self.dim, queries, self.l);
        Ok(recall_vectors(&users, self.items, self.dim, queries, k))
    }
}

/// Values tried for α: a grid widened by ×3 steps while the best sits on its edge.
const ALPHAS: [f64; 3] = [0.1, 0.3, 1.0];
const MAX_WIDENING: usize = 4;

pub fn train(ctx: &Context) -> Result<Spectral> {
    let p = &ctx.opts.params;
    let n_items = ctx.ds.n_items();
    let rank = p.count("rank", DEFAULT_RANK)?;
    let iterations = p.count("power_iterations", DEFAULT_POWER_ITERATIONS)?;
    let l = ctx.opts.history_length.max(1);
    let degrees = ctx.history.item_counts(n_items);
    let cpu0 = cpu_seconds();
    let pb = ctx.progress.bar(1, "spectral eigen");
    let e = spectrum(ctx.history, n_items, rank, iterations, ctx.opts.seed)?;
    pb.finish();
    let eigen_cpu_s = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    // Settings given: use them. Otherwise, with a validation part, search them there.
    let given = ["ideal_rank", "alpha"]
        .iter()
        .all(|k| p.f64(k, f64::NAN).is_finite());
    let mut search = Vec::new();
    let filter = if given || ctx.split.valid.is_empty() {
        Filter {
            rank,
            ideal_rank: p.count("ideal_rank", DEFAULT_IDEAL_RANK)?,
            alpha: p.f64("alpha", DEFAULT_ALPHA),
        }
    } else {
        let mut best: Option<(Filter, f64)> = None;
        let ranks: Vec<usize> = [rank / 4, rank / 2, rank]
            .into_iter()
            .filter(|&r| r >= 1)
            .collect();
        for &m in &ranks {
            for k in [m / 4, m / 2].into_iter().filter(|&k| k >= 1) {
                let (alpha, r20) = search_widening(&ALPHAS, 3.0, MAX_WIDENING, |alpha| {
                    let f = Filter {
                        rank: m,
                        ideal_rank: k,
                        alpha,
                    };
                    let (table, items, dim) = build(&e, &degrees, f);
                    let cand = Candidate {
                        table: &table,
                        items: &items,
                        dim,
                        l,
                    };
                    let m = crate::pipeline::validate_parts(
                        ctx.ds,
                        ctx.split,
                        ctx.history,
                        &cand,
                        ctx.opts.seed,
                    )?;
                    let r20 = m.get("recall@20").copied().unwrap_or(0.0);
                    search.push((f, r20));
                    tracing::info!(
                        rank = m_len(&f),
                        ideal_rank = k,
                        alpha,
                        r20,
                        "spectral filter"
                    );
                    Ok(r20)
                })?;
                let f = Filter {
                    rank: m,
                    ideal_rank: k,
                    alpha,
                };
                if best.is_none_or(|(_, b)| r20 > b) {
                    best = Some((f, r20));
                }
            }
        }
        best.map(|(f, _)| f)
            .ok_or_else(|| Error::InvalidInput("no spectral filter was tried".into()))?
    };
    let (table, vectors, dim) = build(&e, &degrees, filter);
    Ok(Spectral {
        filter,
        table,
        vectors,
        dim,
        history_length: l,
        eigenvalues: e.values,
        eigen_cpu_s,
        search,
    })
}

fn m_len(f: &Filter) -> usize {
    f.rank
}

impl Spectral {
    /// The user encoder: gather history rows, masked sum, L2-normalise (the encoder contract).
    pub fn to_onnx(&self) -> Result<Vec<u8>> {
        let (mut g, ids, mask) = Graph::user_encoder(self.dim);
        let n = self.table.len() / self.dim;
        let table = g.f32_init("history", &[n, self.dim], &self.table);
        let ax1 = g.i64_init("axis_1", &[1]);
        let ax2 = g.i64_init("axis_2", &[2]);
        let e = g.node("Gather", &[&table, &ids], vec![attr_int("axis", 0)], None);
        let m = g.node("Unsqueeze", &[&mask, &ax2], vec![], None);
        let em = g.node("Mul", &[&e, &m], vec![], None);
        let y = g.node(
            "ReduceSum",
            &[&em, &ax1],
            vec![attr_int("keepdims", 0)],
            None,
        );
        g.l2_normalise(&y, "output", NORM_EPS, Some("user_embedding"));
        g.to_bytes("kan-spectral-user-encoder")
    }

    /// User vectors as the training-side forward pass computes them (for the parity test).
    pub fn encode(&self, histories: &[&[u32]]) -> Vec<Vec<f32>> {
        let queries: Vec<Query> = histories
            .iter()
            .map(|h| Query {
                user: None,
                history: h,
                exclude: &[],
            })
            .collect();
        user_vectors(&self.table, self.dim, &queries, self.history_length)
            .chunks(self.dim)
            .map(<[f32]>::to_vec)
            .collect()
    }
}

impl Recaller for Spectral {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        Candidate {
            table: &self.table,
            items: &self.vectors,
            dim: self.dim,
            l: self.history_length,
        }
        .recall(queries, k)
    }
}

impl Model for Spectral {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        write_vectors(w, &self.vectors, self.dim)?;
        w.bytes(files::MODEL, &self.to_onnx()?)?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        let top: Vec<f64> = self.eigenvalues.iter().take(8).copied().collect();
        json!({
            kan_api::bundle::params::HISTORY_LENGTH: self.history_length,
            "filter": "GF-CF: linear (truncated) + alpha x ideal low-pass, inner product via an extra unit-norm coordinate",
            "rank": self.filter.rank, "ideal_rank": self.filter.ideal_rank, "alpha": self.filter.alpha,
            "top_eigenvalues": top, "eigen_cpu_s": self.eigen_cpu_s,
            "search": self.search.iter().map(|(f, r)| json!({"rank": f.rank, "ideal_rank": f.ideal_rank, "alpha": f.alpha, "valid_recall@20": r})).collect::<Vec<_>>(),
        })
    }

    fn dim(&self) -> Option<u32> {
        Some(self.dim as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_moves_past_an_edge_winner_until_the_best_is_inside() {
        // A peak at 5: the grid [0.1, 0.3, 1] has it on its upper edge.
        let mut calls = Vec::new();
        let (best, _) = search_widening(&[0.1, 0.3, 1.0], 3.0, 4, |x| {
            calls.push(x);
            Ok(-(x - 5.0f64).abs())
        })
        .unwrap();
        assert_eq!(best, 3.0, "{calls:?}");
        assert!(calls.contains(&9.0), "widened past 3 to confirm: {calls:?}");
        // An interior winner: no widening.
        let mut n = 0;
        search_widening(&[1.0, 2.0, 3.0], 2.0, 4, |x| {
            n += 1;
            Ok(-(x - 2.0f64).abs())
        })
        .unwrap();
        assert_eq!(n, 3);
    }

    fn toy() -> History {
        // Two communities: users 0-2 use items 0-2, users 3-5 items 3-5; item 6 is unseen.
        let rows: Vec<Vec<u32>> = vec![
            vec![0, 1, 2],
            vec![0, 1],
            vec![1, 2],
            vec![3, 4, 5],
            vec![3, 4],
            vec![4, 5],
        ];
        let mut offsets = vec![0];
        let mut items = Vec::new();
        for r in &rows {
            items.extend(r);
            offsets.push(items.len());
        }
        let ts = vec![0; items.len()];
        History { offsets, items, ts }
    }

    #[test]
    fn item_vectors_are_unit_length_and_inner_products_keep_the_filters_ranking() {
        let h = toy();
        let e = spectrum(&h, 7, 4, 4, 1).unwrap();
        assert!(
            (e.values[0] - 1.0).abs() < 1e-3,
            "the top eigenvalue of R̃ᵀR̃ is 1: {:?}",
            e.values
        );
        let degrees = h.item_counts(7);
        let f = Filter {
            rank: 4,
            ideal_rank: 2,
            alpha: 0.3,
        };
        let (table, items, dim) = build(&e, &degrees, f);
        assert_eq!(dim, 7);
        for r in items.chunks(dim) {
            let n: f32 = r.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4, "unit item vector, got {n}");
        }
        let model = Candidate {
            table: &table,
            items: &items,
            dim,
            l: 10,
        };
        let q = Query {
            user: None,
            history: &[0],
            exclude: &[0],
        };
        let top = model.recall(&[q], 2).unwrap();
        let mut got = top[0].clone();
        got.sort();
        assert_eq!(got, vec![1, 2], "a user of item 0 gets its community");
    }
}
