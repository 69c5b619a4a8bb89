//! `exploratory`: items outside a user's dominant interests, Thompson-sampled from per-item
//! Beta quality priors. Categories come from the data (ML-100K genres and KG genre links,
//! LastFM tags, `items.csv` categories). The prior of an item is
//! Beta(1 + engagements, 1 + reach − engagements), where reach is the number of users who
//! engaged with any of its categories: how often the item won among users who like its kind.

use std::collections::HashMap;

use kan_api::bundle::files;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution};
use serde_json::json;

use super::{Context, Model, Query, Recaller, rank_all};
use crate::bundle::{BundleDir, BundleWriter, Tensor};
use crate::error::{Error, Result};

/// Dominant categories: the user's top categories covering this share of their history.
pub const DOMINANT_SHARE: f32 = 0.5;
pub const MAX_DOMINANT: usize = 3;
pub const HISTORY_LIMIT: usize = 100;

pub struct Exploratory {
    pub n_items: usize,
    pub seed: u64,
    pub offsets: Vec<usize>,
    pub categories: Vec<u32>,
    pub names: Vec<String>,
    pub alpha: Vec<f32>,
    pub beta: Vec<f32>,
}

impl Exploratory {
    fn cats(&self, i: u32) -> &[u32] {
        let i = i as usize;
        if i + 1 >= self.offsets.len() {
            return &[];
        }
        &self.categories[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The user's dominant categories from their history.
    pub fn dominant(&self, history: &[u32]) -> Vec<u32> {
        let mut count: HashMap<u32, f32> = HashMap::new();
        let mut total = 0.0;
        for &i in history.iter().take(HISTORY_LIMIT) {
            let cats = self.cats(i);
            for &c in cats {
                *count.entry(c).or_default() += 1.0 / cats.len() as f32;
            }
            total += if cats.is_empty() { 0.0 } else { 1.0 };
        }
        let mut ranked: Vec<(u32, f32)> = count.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut out = Vec::new();
        let mut covered = 0.0;
        for (c, n) in ranked {
            if covered >= DOMINANT_SHARE * total || out.len() >= MAX_DOMINANT {
                break;
            }
            out.push(c);
            covered += n;
        }
        out
    }

    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let t = b.tensors(files::CATEGORIES)?;
        let offsets: Vec<usize> = t.i64("offsets")?.iter().map(|&o| o as usize).collect();
        let categories: Vec<u32> = t.i64("categories")?.iter().map(|&c| c as u32).collect();
        let alpha = t.f32("alpha")?.1.to_vec();
        let beta = t.f32("beta")?.1.to_vec();
        if offsets.len() != n_items + 1 || alpha.len() != n_items || beta.len() != n_items {
            return Err(Error::Bundle {
                dir: b.dir.clone(),
                problem: "categories tensors do not match items.txt".into(),
            });
        }
        let seed = b.manifest.params["seed"].as_u64().unwrap_or(0);
        Ok(Exploratory {
            n_items,
            seed,
            offsets,
            categories,
            names: b.lines(files::CATEGORY_NAMES)?,
            alpha,
            beta,
        })
    }
}

pub fn train(ctx: &Context) -> Result<Exploratory> {
    let ds = ctx.ds;
    if ds.item_categories.iter().all(|c| c.is_empty()) {
        return Err(Error::InvalidInput(format!(
            "exploratory needs item categories and dataset {} has none (ML-100K genres, LastFM tags, or a categories column in items.csv)",
            ds.name
        )));
    }
    let n_items = ds.n_items();
    let counts = ctx.history.item_counts(n_items);
    // Reach of a category: users with at least one training item in it.
    let mut reach = vec![0u32; ds.category_names.len()];
    for u in 0..ctx.history.n_users() {
        let mut seen: Vec<u32> = ctx
            .history
            .items(u)
            .iter()
            .flat_map(|&i| ds.item_categories[i as usize].iter().copied())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for c in seen {
            reach[c as usize] += 1;
        }
    }
    let n_users = ctx.history.n_users() as u32;
    let mut offsets = vec![0usize];
    let (mut categories, mut alpha, mut beta) = (Vec::new(), Vec::new(), Vec::new());
    for (i, cats) in ds.item_categories.iter().enumerate() {
        categories.extend_from_slice(cats);
        offsets.push(categories.len());
        let r = cats
            .iter()
            .map(|&c| reach[c as usize])
            .max()
            .unwrap_or(n_users)
            .max(counts[i]);
        alpha.push(1.0 + counts[i] as f32);
        beta.push(1.0 + (r - counts[i]) as f32);
    }
    Ok(Exploratory {
        n_items,
        seed: ctx.opts.seed,
        offsets,
        categories,
        names: ds.category_names.clone(),
        alpha,
        beta,
    })
}

impl Recaller for Exploratory {
    /// Seeded per query position and user, so an evaluation is reproducible.
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        Ok(rank_all(self.n_items, queries, k, |n, q, s| {
            let user_seed = q.user.map(u64::from).unwrap_or(n as u64);
            let mut rng =
                StdRng::seed_from_u64(self.seed ^ user_seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let dominant = self.dominant(q.history);
            for (i, v) in s.iter_mut().enumerate() {
                let theta = Beta::new(self.alpha[i], self.beta[i])
                    .map(|b| b.sample(&mut rng))
                    .unwrap_or(0.0);
                let cats = self.cats(i as u32);
                let inside = !cats.is_empty() && cats.iter().all(|c| dominant.contains(c));
                // Items inside the user's dominant interests rank after every exploratory item.
                *v = if inside { theta - 1.0 } else { theta };
            }
        }))
    }
}

impl Model for Exploratory {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        w.tensors(
            files::CATEGORIES,
            &[
                (
                    "offsets".to_string(),
                    Tensor::i64(self.offsets.iter().map(|&o| o as i64).collect()),
                ),
                (
                    "categories".to_string(),
                    Tensor::i64(self.categories.iter().map(|&c| c as i64).collect()),
                ),
                ("alpha".to_string(), Tensor::f32(self.alpha.clone())),
                ("beta".to_string(), Tensor::f32(self.beta.clone())),
            ],
        )?;
        w.lines(files::CATEGORY_NAMES, &self.names)
    }

    fn params(&self) -> serde_json::Value {
        json!({"prior": "Beta(1 + engagements, 1 + category reach - engagements)", "dominant_share": DOMINANT_SHARE,
               "max_dominant": MAX_DOMINANT, "seed": self.seed, "categories": self.names.len()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Exploratory {
        // Items 0,1 are "a"; item 2 is "b"; item 3 is "c". Item 3 has a strong prior.
        Exploratory {
            n_items: 4,
            seed: 1,
            offsets: vec![0, 1, 2, 3, 4],
            categories: vec![0, 0, 1, 2],
            names: vec!["a".into(), "b".into(), "c".into()],
            alpha: vec![50.0, 50.0, 2.0, 90.0],
            beta: vec![50.0, 50.0, 90.0, 10.0],
        }
    }

    #[test]
    fn the_dominant_interest_is_the_category_covering_most_of_the_history() {
        assert_eq!(model().dominant(&[0, 1, 0, 2]), [0]);
        assert!(model().dominant(&[]).is_empty());
    }

    #[test]
    fn items_outside_dominant_interests_come_first_and_sampling_is_seeded() {
        let m = model();
        let q = [Query {
            user: Some(7),
            history: &[0, 1],
            exclude: &[],
        }];
        let out = m.recall(&q, 4).unwrap();
        assert_eq!(
            out[0][0], 3,
            "high-quality item outside the user's interests"
        );
        assert_eq!(out[0][1], 2);
        assert_eq!(out, m.recall(&q, 4).unwrap());
    }
}
