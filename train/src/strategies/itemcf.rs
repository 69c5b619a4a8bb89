//! `itemcf`: item–item neighbours weighted by RP3β (Paudel et al., 2017): the probability of a
//! 3-step random walk item→user→item, each step's probability raised to α, divided by the
//! destination's popularity^β to demote blockbusters. Top-N neighbours per item. Recall runs
//! the core's kernel ([`kan_core::itemcf::recall`]) with the queue's settings, as the worker does.

use kan_api::bundle::files;
use kan_api::crd::ItemCfSettings;
use rayon::prelude::*;
use serde_json::json;

use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter, Tensor, parallel};
use crate::error::Result;
use crate::history::History;

pub const DEFAULT_ALPHA: f64 = 1.0;
pub const DEFAULT_BETA: f64 = 0.5;
pub const DEFAULT_TOP_N: usize = 200;
/// `--param` keys read by the trainer.
pub const PARAMS: &[&str] = &["alpha", "beta", "top_n"];

pub struct ItemCf {
    pub n_items: usize,
    pub alpha: f64,
    pub beta: f64,
    pub top_n: usize,
    pub offsets: Vec<usize>,
    pub neighbours: Vec<u32>,
    pub weights: Vec<f32>,
    /// The queue settings recall runs with (the CRD defaults unless a RecallQueue gives them).
    pub settings: ItemCfSettings,
}

/// RP3β neighbour lists (CSR, best first) from training histories.
pub fn rp3beta(history: &History, n_items: usize, alpha: f64, beta: f64, top_n: usize) -> ItemCf {
    let item_users = history.item_users(n_items);
    let deg_item: Vec<f64> = item_users.iter().map(|u| u.len() as f64).collect();
    let rows: Vec<Vec<(u32, f32)>> = (0..n_items)
        .into_par_iter()
        .map_init(
            || (vec![0f64; n_items], Vec::<u32>::new()),
            |(acc, touched), i| {
                if deg_item[i] == 0.0 {
                    return Vec::new();
                }
                let p_iu = (1.0 / deg_item[i]).powf(alpha);
                for &u in &item_users[i] {
                    let items = history.items(u as usize);
                    let p_uj = (1.0 / items.len() as f64).powf(alpha);
                    for &j in items {
                        if j as usize == i {
                            continue;
                        }
                        if acc[j as usize] == 0.0 {
                            touched.push(j);
                        }
                        acc[j as usize] += p_iu * p_uj;
                    }
                }
                let mut row: Vec<(u32, f32)> = touched
                    .iter()
                    .map(|&j| {
                        (
                            j,
                            (acc[j as usize] / deg_item[j as usize].powf(beta)) as f32,
                        )
                    })
                    .collect();
                for &j in touched.iter() {
                    acc[j as usize] = 0.0;
                }
                touched.clear();
                let best_first =
                    |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
                // Select the top N before sorting, and give back the rest of the allocation:
                // every row stays alive until the CSR is built, so untrimmed rows would hold
                // all co-visited pairs (42M on Gowalla) at once.
                if row.len() > top_n {
                    row.select_nth_unstable_by(top_n, best_first);
                    row.truncate(top_n);
                    row.shrink_to_fit();
                }
                row.sort_by(best_first);
                row
            },
        )
        .collect();
    let mut offsets = vec![0usize];
    let (mut neighbours, mut weights) = (Vec::new(), Vec::new());
    for row in rows {
        for (j, w) in row {
            neighbours.push(j);
            weights.push(w);
        }
        offsets.push(neighbours.len());
    }
    ItemCf {
        n_items,
        alpha,
        beta,
        top_n,
        offsets,
        neighbours,
        weights,
        settings: ItemCfSettings::default(),
    }
}

pub fn train(ctx: &Context) -> Result<ItemCf> {
    let pb = ctx.progress.bar(1, "itemcf rp3β");
    let hp = &ctx.opts.params;
    let alpha = hp.positive("alpha", DEFAULT_ALPHA)?;
    let beta = hp.f64("beta", DEFAULT_BETA);
    let top_n = hp.count("top_n", DEFAULT_TOP_N)?;
    let m = rp3beta(ctx.history, ctx.ds.n_items(), alpha, beta, top_n);
    pb.finish();
    Ok(m)
}

impl ItemCf {
    pub fn row(&self, i: u32) -> (&[u32], &[f32]) {
        let i = i as usize;
        if i + 1 >= self.offsets.len() {
            return (&[], &[]);
        }
        let r = self.offsets[i]..self.offsets[i + 1];
        (&self.neighbours[r.clone()], &self.weights[r])
    }

    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let t = b.tensors(files::NEIGHBOURS)?;
        let csr = t.csr(n_items, "neighbours", n_items)?;
        let weights = parallel(&t, "weights", t.f32_1d("weights")?, &csr)?;
        let (offsets, neighbours) = csr.into_parts();
        let p = &b.manifest.params;
        Ok(ItemCf {
            n_items,
            alpha: p["alpha"].as_f64().unwrap_or(DEFAULT_ALPHA),
            beta: p["beta"].as_f64().unwrap_or(DEFAULT_BETA),
            top_n: p["top_n"].as_u64().unwrap_or(DEFAULT_TOP_N as u64) as usize,
            offsets,
            neighbours,
            weights,
            settings: ItemCfSettings::default(),
        })
    }

    /// The neighbour lists as the core's kernel reads them.
    pub fn csr(&self) -> kan_core::CsrRef<'_> {
        kan_core::CsrRef {
            offsets: &self.offsets,
            columns: &self.neighbours,
        }
    }
}

impl Recaller for ItemCf {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        Ok(recall_each(queries, |q| {
            kan_core::itemcf::recall(
                self.csr(),
                &self.weights,
                &self.settings,
                q.history,
                q.exclude,
                k,
            )
        }))
    }
}

impl Model for ItemCf {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        w.tensors(
            files::NEIGHBOURS,
            &[
                (
                    "offsets".to_string(),
                    Tensor::i64(self.offsets.iter().map(|&o| o as i64).collect()),
                ),
                (
                    "neighbours".to_string(),
                    Tensor::i64(self.neighbours.iter().map(|&o| o as i64).collect()),
                ),
                ("weights".to_string(), Tensor::f32(self.weights.clone())),
            ],
        )?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        json!({"weighting": "rp3beta", "alpha": self.alpha, "beta": self.beta, "top_n": self.top_n})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Interaction;

    fn hist(pairs: &[(u32, u32)], users: usize) -> History {
        let rows: Vec<Interaction> = pairs
            .iter()
            .enumerate()
            .map(|(n, &(user, item))| Interaction {
                user,
                item,
                ts: 0,
                weight: 1.0,
                seq: n as u32,
            })
            .collect();
        History::build(&rows, users)
    }

    #[test]
    fn rp3beta_weights_match_a_hand_computed_walk() {
        // u0: {0,1}, u1: {0,1,2}. From item 0 (deg 2): to 1 = ½·½ + ½·⅓ = 5/12, to 2 = ½·⅓ = 1/6.
        // With β = 1: divide by deg(1) = 2 and deg(2) = 1 → 5/24 and 1/6.
        let h = hist(&[(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)], 2);
        let m = rp3beta(&h, 3, 1.0, 1.0, 10);
        let (ns, ws) = m.row(0);
        assert_eq!(ns, [1, 2]);
        assert!(
            (ws[0] - 5.0 / 24.0).abs() < 1e-6 && (ws[1] - 1.0 / 6.0).abs() < 1e-6,
            "{ws:?}"
        );
        assert!(
            !m.row(2).0.contains(&2),
            "an item is never its own neighbour"
        );
    }

    #[test]
    fn recall_aggregates_neighbours_of_the_history_and_skips_excluded_items() {
        let h = hist(&[(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 3)], 3);
        let m = rp3beta(&h, 4, 1.0, 0.0, 10);
        let out = m
            .recall(
                &[Query {
                    user: None,
                    history: &[0],
                    exclude: &[0],
                }],
                3,
            )
            .unwrap();
        assert_eq!(out[0][..2], [1, 2]);
        assert!(!out[0].contains(&0));
    }
}
