//! `attribute`: tag / knowledge-graph recall. The bundle holds
//!
//! * item → tags, weighted by IDF and L2-normalised per item (categories — ML-100K genres and KG
//!   genres, LastFM tags, `items.csv` categories — plus entities: KG tails such as actors and
//!   directors, release decades, `item_tags.csv` rows). Tags only one item has are dropped:
//!   they relate nothing;
//! * each item's quality prior `((1 + n) / (1 + n_max))^prior_power` over its training
//!   interactions `n`; items without any (held out, or added later through `/v1/items`) get
//!   the median prior of the trained ones, so a new item competes as an average one;
//! * tag → items (the inverted index): tag weight × prior, best first;
//! * tag → related tags: cosine co-occurrence over the items' tag sets and the KG subjects
//!   without interactions (the KG where the data has one, tag co-occurrence otherwise), at
//!   least [`MIN_COOCCURRENCE`] shared documents, the [`RELATED_PER_TAG`] strongest, each row
//!   normalised to sum 1.
//!
//! Recall runs the core's kernel ([`kan_core::attribute::recall`]) with the queue's settings,
//! as the worker does.

use std::collections::HashMap;

use kan_api::bundle::{files, params};
use kan_api::crd::AttributeSettings;
use kan_core::CsrRef;
use kan_core::attribute::Weighted;
use serde_json::json;

use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter, Csr, Tensor, parallel};
use crate::data::{Dataset, IdMap};
use crate::error::{Error, Result};

/// `--param` keys read by the trainer.
pub const PARAMS: &[&str] = &["prior_power"];
/// Chosen on ML-100K validation R@20 (0.5: 0.0716, 1: 0.1264, 2: 0.1632, 3: 0.1715, 4: 0.1729,
/// 6: 0.1736): the smallest power within 0.002 of the best; coverage falls as it grows.
pub const DEFAULT_PRIOR_POWER: f64 = 3.0;
/// Related tags kept per tag.
pub const RELATED_PER_TAG: usize = 20;
/// Documents two tags must share to be related (one film's cast is not a relation).
pub const MIN_COOCCURRENCE: u32 = 2;

/// A CSR with weights, owned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightedCsr {
    pub offsets: Vec<usize>,
    pub columns: Vec<u32>,
    pub weights: Vec<f32>,
}

impl WeightedCsr {
    fn from_rows(rows: Vec<Vec<(u32, f32)>>) -> Self {
        let mut out = WeightedCsr {
            offsets: vec![0],
            ..Default::default()
        };
        for row in rows {
            for (c, w) in row {
                out.columns.push(c);
                out.weights.push(w);
            }
            out.offsets.push(out.columns.len());
        }
        out
    }

    pub fn view(&self) -> Weighted<'_> {
        Weighted {
            rows: CsrRef {
                offsets: &self.offsets,
                columns: &self.columns,
            },
            weights: &self.weights,
        }
    }

    pub(crate) fn tensors(&self, column: &str) -> Vec<(String, Tensor)> {
        vec![
            (
                "offsets".to_string(),
                Tensor::i64(self.offsets.iter().map(|&o| o as i64).collect()),
            ),
            (
                column.to_string(),
                Tensor::i64(self.columns.iter().map(|&c| c as i64).collect()),
            ),
            ("weights".to_string(), Tensor::f32(self.weights.clone())),
        ]
    }

    pub(crate) fn read(b: &BundleDir, file: &str, column: &str, weights: &str) -> Result<Self> {
        let t = b.tensors(file)?;
        let offsets = t.i64_1d("offsets")?;
        // Row count and column bound are checked by the caller against the id lists.
        let rows = offsets.len().saturating_sub(1);
        let csr = Csr::new(offsets, t.i64_1d(column)?, rows, u32::MAX as usize)
            .map_err(|m| t.error(column, m))?;
        let weights = parallel(&t, weights, t.f32_1d(weights)?, &csr)?;
        let (offsets, columns) = csr.into_parts();
        Ok(WeightedCsr {
            offsets,
            columns,
            weights,
        })
    }
}

pub struct Attribute {
    pub tag_names: Vec<String>,
    pub item_tags: WeightedCsr,
    pub prior: Vec<f32>,
    pub tag_items: WeightedCsr,
    pub related: WeightedCsr,
    pub new_item_prior: f32,
    pub prior_power: f64,
    /// The queue settings recall runs with (the CRD defaults unless a RecallQueue gives them).
    pub settings: AttributeSettings,
}

/// Every item's tag names: categories then entities, each once.
fn tag_sets(ds: &Dataset, names: &mut IdMap) -> Vec<Vec<u32>> {
    (0..ds.n_items())
        .map(|i| {
            let cats = ds.item_categories[i]
                .iter()
                .map(|&c| ds.category_names[c as usize].as_str());
            let ents = ds.item_entities[i]
                .iter()
                .map(|&e| ds.entity_names[e as usize].as_str());
            let mut tags: Vec<u32> = cats.chain(ents).map(|n| names.intern(n)).collect();
            tags.sort_unstable();
            tags.dedup();
            tags
        })
        .collect()
}

/// Quality priors from training counts; items without interactions get the median prior of
/// those with some (returned second).
pub fn priors(counts: &[u32], power: f64) -> (Vec<f32>, f32) {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    let raw = |n: u32| ((1.0 + n as f64) / (1.0 + max)).powf(power) as f32;
    let mut trained: Vec<f32> = counts.iter().filter(|&&n| n > 0).map(|&n| raw(n)).collect();
    trained.sort_by(f32::total_cmp);
    let median = trained.get(trained.len() / 2).copied().unwrap_or(1.0);
    let prior = counts
        .iter()
        .map(|&n| if n > 0 { raw(n) } else { median })
        .collect();
    (prior, median)
}

/// Cosine co-occurrence neighbours of every tag over `docs` (tag sets), rows summing to 1.
pub fn related_tags(docs: &[&[u32]], n_tags: usize) -> WeightedCsr {
    let mut df = vec![0u32; n_tags];
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    for doc in docs {
        for (x, &a) in doc.iter().enumerate() {
            df[a as usize] += 1;
            for &b in &doc[x + 1..] {
                *pairs.entry((a.min(b), a.max(b))).or_default() += 1;
            }
        }
    }
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_tags];
    for ((a, b), c) in pairs {
        if c < MIN_COOCCURRENCE {
            continue;
        }
        let cos = c as f64 / ((df[a as usize] as f64) * (df[b as usize] as f64)).sqrt();
        rows[a as usize].push((b, cos as f32));
        rows[b as usize].push((a, cos as f32));
    }
    for row in &mut rows {
        row.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        row.truncate(RELATED_PER_TAG);
        let sum: f32 = row.iter().map(|r| r.1).sum();
        for r in row.iter_mut() {
            r.1 /= sum;
        }
    }
    WeightedCsr::from_rows(rows)
}

pub fn train(ctx: &Context) -> Result<Attribute> {
    let ds = ctx.ds;
    let n_items = ds.n_items();
    let mut names = IdMap::default();
    let raw_sets = tag_sets(ds, &mut names);
    if raw_sets.iter().all(Vec::is_empty) {
        return Err(Error::InvalidInput(format!(
            "attribute needs item tags and dataset {} has none (ML-100K genres and KG, LastFM tags, a categories column in items.csv, or an item_tags.csv)",
            ds.name
        )));
    }
    // KG subjects without interactions, in the same tag space.
    let kg_docs: Vec<Vec<u32>> = ds
        .kg_docs
        .iter()
        .map(|doc| {
            let mut d: Vec<u32> = doc
                .iter()
                .map(|&e| names.intern(&ds.entity_names[e as usize]))
                .collect();
            d.sort_unstable();
            d.dedup();
            d
        })
        .collect();
    // Keep tags two documents share; renumber them densely in name order of first use.
    let mut df = vec![0u32; names.len()];
    for doc in raw_sets.iter().chain(&kg_docs) {
        for &t in doc {
            df[t as usize] += 1;
        }
    }
    let mut kept = IdMap::default();
    let remap: Vec<Option<u32>> = names
        .ids()
        .iter()
        .zip(&df)
        .map(|(name, &d)| (d >= 2).then(|| kept.intern(name)))
        .collect();
    let keep =
        |doc: &[u32]| -> Vec<u32> { doc.iter().filter_map(|&t| remap[t as usize]).collect() };
    let sets: Vec<Vec<u32>> = raw_sets.iter().map(|d| keep(d)).collect();
    let kg: Vec<Vec<u32>> = kg_docs.iter().map(|d| keep(d)).collect();
    let n_tags = kept.len();

    let n_docs = sets.iter().chain(&kg).filter(|d| !d.is_empty()).count() as f64;
    let mut tag_df = vec![0u32; n_tags];
    for doc in sets.iter().chain(&kg) {
        for &t in doc {
            tag_df[t as usize] += 1;
        }
    }
    let idf: Vec<f64> = tag_df
        .iter()
        .map(|&d| (1.0 + n_docs / d.max(1) as f64).ln())
        .collect();
    let item_rows: Vec<Vec<(u32, f32)>> = sets
        .iter()
        .map(|tags| {
            let norm = tags
                .iter()
                .map(|&t| idf[t as usize].powi(2))
                .sum::<f64>()
                .sqrt();
            tags.iter()
                .map(|&t| (t, (idf[t as usize] / norm) as f32))
                .collect()
        })
        .collect();

    let prior_power = ctx
        .opts
        .params
        .f64("prior_power", DEFAULT_PRIOR_POWER)
        .max(0.0);
    let (prior, new_item_prior) = priors(&ctx.history.item_counts(n_items), prior_power);
    let item_tags = WeightedCsr::from_rows(item_rows);
    let tag_items = postings(&item_tags, &prior, n_tags);
    let docs: Vec<&[u32]> = sets.iter().chain(&kg).map(Vec::as_slice).collect();
    Ok(Attribute {
        tag_names: kept.ids().to_vec(),
        item_tags,
        prior,
        tag_items,
        related: related_tags(&docs, n_tags),
        new_item_prior,
        prior_power,
        settings: AttributeSettings::default(),
    })
}

/// The inverted index: per tag, its items scored tag weight × prior, best first (ties: lower
/// item index).
pub fn postings(item_tags: &WeightedCsr, prior: &[f32], n_tags: usize) -> WeightedCsr {
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_tags];
    let view = item_tags.view();
    for (i, &p) in prior.iter().enumerate() {
        for (t, w) in view.row(i) {
            if let Some(row) = rows.get_mut(t as usize) {
                row.push((i as u32, w * p));
            }
        }
    }
    for row in &mut rows {
        row.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    }
    WeightedCsr::from_rows(rows)
}

impl Attribute {
    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let tag_names = b.lines(files::TAG_NAMES)?;
        let item_tags = WeightedCsr::read(b, files::ITEM_TAGS, "tags", "weights")?;
        let prior = b.tensors(files::ITEM_TAGS)?.f32_1d("prior")?;
        let tag_items = WeightedCsr::read(b, files::TAG_ITEMS, "items", "scores")?;
        let related = WeightedCsr::read(b, files::RELATED_TAGS, "related", "weights")?;
        let n_tags = tag_names.len();
        if item_tags.offsets.len() != n_items + 1
            || prior.len() != n_items
            || tag_items.offsets.len() != n_tags + 1
            || related.offsets.len() != n_tags + 1
            || item_tags.columns.iter().any(|&t| t as usize >= n_tags)
            || tag_items.columns.iter().any(|&i| i as usize >= n_items)
        {
            return Err(Error::Bundle {
                dir: b.dir.clone(),
                problem: "attribute tensors do not match items.txt and tags.txt".into(),
            });
        }
        let new_item_prior = b.manifest.params[params::NEW_ITEM_PRIOR]
            .as_f64()
            .unwrap_or(1.0) as f32;
        Ok(Attribute {
            tag_names,
            item_tags,
            prior,
            tag_items,
            related,
            new_item_prior,
            prior_power: b.manifest.params["prior_power"]
                .as_f64()
                .unwrap_or(DEFAULT_PRIOR_POWER),
            settings: AttributeSettings::default(),
        })
    }
}

impl Recaller for Attribute {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let (items, postings, related) = (
            self.item_tags.view(),
            self.tag_items.view(),
            self.related.view(),
        );
        Ok(recall_each(queries, |q| {
            kan_core::attribute::recall(
                |i| items.row(i as usize),
                &[postings],
                Some(related),
                &self.settings,
                q.history,
                q.exclude,
                k,
            )
        }))
    }
}

impl Model for Attribute {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        w.lines(files::TAG_NAMES, &self.tag_names)?;
        let mut item_tags = self.item_tags.tensors("tags");
        item_tags.push(("prior".to_string(), Tensor::f32(self.prior.clone())));
        w.tensors(files::ITEM_TAGS, &item_tags)?;
        let mut tag_items = self.tag_items.tensors("items");
        if let Some(scores) = tag_items.last_mut() {
            scores.0 = "scores".to_string();
        }
        w.tensors(files::TAG_ITEMS, &tag_items)?;
        w.tensors(files::RELATED_TAGS, &self.related.tensors("related"))?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        let mut p = json!({
            "tags": self.tag_names.len(),
            "prior": "((1 + n) / (1 + n_max))^prior_power; median for items without interactions",
            "prior_power": self.prior_power,
            "related_per_tag": RELATED_PER_TAG,
            "min_cooccurrence": MIN_COOCCURRENCE,
        });
        if let Some(obj) = p.as_object_mut() {
            obj.insert(params::NEW_ITEM_PRIOR.into(), self.new_item_prior.into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_without_interactions_get_the_median_prior_of_trained_items() {
        let (prior, median) = priors(&[0, 1, 3, 7], 1.0);
        assert_eq!(prior[1..], [0.25, 0.5, 1.0]);
        assert_eq!((prior[0], median), (0.5, 0.5));
    }

    #[test]
    fn related_tags_need_two_shared_documents_and_rows_sum_to_one() {
        // Tags 0 and 1 share two documents, 0 and 2 one.
        let docs: Vec<&[u32]> = vec![&[0, 1], &[0, 1, 2], &[2]];
        let r = related_tags(&docs, 3);
        let row = |t: usize| r.view().row(t).collect::<Vec<_>>();
        assert_eq!(row(0), [(1, 1.0)]);
        assert_eq!(row(1), [(0, 1.0)]);
        assert!(row(2).is_empty());
    }

    #[test]
    fn postings_rank_a_tags_items_by_weight_times_prior() {
        let item_tags = WeightedCsr::from_rows(vec![vec![(0, 1.0)], vec![(0, 0.5)], vec![]]);
        let p = postings(&item_tags, &[0.2, 1.0, 1.0], 1);
        assert_eq!(p.view().row(0).collect::<Vec<_>>(), [(1, 0.5), (0, 0.2)]);
    }
}
