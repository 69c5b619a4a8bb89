//! `exploratory`: items outside a user's dominant interests, Thompson-sampled from per-item
//! Beta quality priors (the kernel: [`kan_core::exploratory::recall`], run with the queue's
//! settings as the worker runs it). Categories come from the data (ML-100K genres and KG genre
//! links, LastFM tags, `items.csv` categories). The bundle holds
//!
//! * item → categories, and each item's prior Beta(1 + engagements, 1 + reach − engagements),
//!   where reach is the number of users who engaged with any of its categories: how often the
//!   item won among users who like its kind;
//! * category → related categories (`kgExpansion`): cosine co-occurrence over the items'
//!   category sets, rows summing to 1 (the attribute queue's construction,
//!   [`super::attribute::related_tags`]);
//! * the users' ids: online a user's draws are seeded by their id and the UTC day, so offline
//!   they are too, on the day of the bundle's reference time (the latest training
//!   interaction) unless the evaluation names another clock.

use kan_api::bundle::{files, params};
use kan_api::crd::ExploratorySettings;
use kan_core::CsrRef;
use kan_core::exploratory::{Model as Kernel, Priors, exploration_seed};
use serde_json::json;

use super::attribute::{WeightedCsr, related_tags};
use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter, Tensor};
use crate::error::{Error, Result};

pub struct Exploratory {
    pub offsets: Vec<usize>,
    pub categories: Vec<u32>,
    pub names: Vec<String>,
    pub alpha: Vec<f32>,
    pub beta: Vec<f32>,
    pub related: WeightedCsr,
    /// User ids by index: the draw seeds.
    pub users: Vec<String>,
    pub reference_time: Option<i64>,
    /// The clock draws are seeded for (unix seconds): the reference time unless set.
    pub now: Option<i64>,
    /// The queue settings recall runs with (the CRD defaults unless a RecallQueue gives them).
    pub settings: ExploratorySettings,
    priors: Priors,
}

impl Exploratory {
    #[allow(clippy::too_many_arguments)]
    fn new(
        offsets: Vec<usize>,
        categories: Vec<u32>,
        names: Vec<String>,
        alpha: Vec<f32>,
        beta: Vec<f32>,
        related: WeightedCsr,
        users: Vec<String>,
        reference_time: Option<i64>,
    ) -> std::result::Result<Self, kan_core::exploratory::InvalidPrior> {
        Ok(Exploratory {
            priors: Priors::new(&alpha, &beta)?,
            offsets,
            categories,
            names,
            alpha,
            beta,
            related,
            users,
            reference_time,
            now: None,
            settings: ExploratorySettings::default(),
        })
    }

    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let bad = |problem: String| Error::Bundle {
            dir: b.dir.clone(),
            problem,
        };
        let category_names = b.lines(files::CATEGORY_NAMES)?;
        let t = b.tensors(files::CATEGORIES)?;
        let (offsets, categories) = t
            .csr(n_items, "categories", category_names.len())?
            .into_parts();
        let alpha = t.f32_1d("alpha")?;
        let beta = t.f32_1d("beta")?;
        if alpha.len() != n_items || beta.len() != n_items {
            return Err(bad("categories tensors do not match items.txt".into()));
        }
        let related = if b.has(files::RELATED_TAGS) {
            WeightedCsr::read(b, files::RELATED_TAGS, "related", "weights")?
        } else {
            WeightedCsr::default()
        };
        let users = if b.has(files::USERS) {
            b.lines(files::USERS)?
        } else {
            Vec::new()
        };
        Exploratory::new(
            offsets,
            categories,
            category_names,
            alpha,
            beta,
            related,
            users,
            b.manifest.params[params::REFERENCE_TIME].as_i64(),
        )
        .map_err(|e| bad(format!("{}: {e}", files::CATEGORIES)))
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
    let docs: Vec<&[u32]> = ds.item_categories.iter().map(Vec::as_slice).collect();
    let related = related_tags(&docs, ds.category_names.len());
    Exploratory::new(
        offsets,
        categories,
        ds.category_names.clone(),
        alpha,
        beta,
        related,
        ds.users.ids().to_vec(),
        kan_core::clock::reference_time(ctx.split.train.iter().map(|r| r.ts)),
    )
    .map_err(|e| Error::InvalidInput(format!("exploratory priors: {e}")))
}

impl Recaller for Exploratory {
    /// Each user's draws are seeded by their id and the day of [`Exploratory::now`] (else the
    /// reference time), as the worker seeds them on the day it serves.
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let now = self.now.or(self.reference_time).unwrap_or(0);
        let model = Kernel {
            categories: CsrRef {
                offsets: &self.offsets,
                columns: &self.categories,
            },
            priors: &self.priors,
            related: (!self.related.columns.is_empty()).then(|| self.related.view()),
        };
        Ok(recall_each(queries, |q| {
            let user = q
                .user
                .and_then(|u| self.users.get(u as usize))
                .map_or("", String::as_str);
            kan_core::exploratory::recall(
                model,
                &self.settings,
                q.history,
                |i| q.exclude.contains(&i),
                exploration_seed(user, now, self.settings.seed),
                k,
            )
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
        w.tensors(files::RELATED_TAGS, &self.related.tensors("related"))?;
        w.lines(files::CATEGORY_NAMES, &self.names)?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        json!({"prior": "Beta(1 + engagements, 1 + category reach - engagements)",
               "related": "cosine co-occurrence of categories over items",
               "categories": self.names.len(),
               params::REFERENCE_TIME: self.reference_time})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Exploratory {
        // Items 0,1 are "a"; item 2 is "b"; item 3 is "c"; item 4 is "b" and "c".
        let docs: Vec<&[u32]> = vec![&[0], &[0], &[1], &[2], &[1, 2]];
        Exploratory::new(
            vec![0, 1, 2, 3, 4, 6],
            vec![0, 0, 1, 2, 1, 2],
            vec!["a".into(), "b".into(), "c".into()],
            vec![50.0, 50.0, 2.0, 90.0, 5.0],
            vec![50.0, 50.0, 90.0, 10.0, 5.0],
            related_tags(&docs, 3),
            vec!["u0".into(), "u1".into()],
            Some(86_400 * 10_000),
        )
        .unwrap()
    }

    #[test]
    fn draws_are_seeded_by_the_user_id_on_the_reference_day_as_online() {
        let m = model();
        let q = [Query {
            user: Some(1),
            history: &[0, 1],
            exclude: &[],
        }];
        let got = m.recall(&q, 5).unwrap();
        let online = kan_core::exploratory::recall(
            Kernel {
                categories: CsrRef {
                    offsets: &m.offsets,
                    columns: &m.categories,
                },
                priors: &m.priors,
                related: Some(m.related.view()),
            },
            &ExploratorySettings::default(),
            &[0, 1],
            |_| false,
            exploration_seed("u1", 86_400 * 10_000 + 3_600, 0),
            5,
        );
        let online: Vec<u32> = online.iter().map(|h| h.item).collect();
        assert_eq!(got[0], online);
        // Category "a" is dominant: items 0 and 1 (the history) are not recalled.
        assert!(!got[0].contains(&0) && !got[0].contains(&1));
    }

    #[test]
    fn categories_related_by_shared_items_form_the_expansion_graph() {
        // "b" and "c" share item 4 only: below MIN_COOCCURRENCE, so nothing is related.
        assert!(model().related.columns.is_empty());
        let docs: Vec<&[u32]> = vec![&[1, 2], &[1, 2], &[0]];
        let r = related_tags(&docs, 3);
        assert_eq!(r.view().row(1).collect::<Vec<_>>(), [(2, 1.0)]);
    }
}
