//! Attribute recall over the bundle's tag index; the kernel (profile, recency decay, KG
//! expansion, per-tag cap, inverted-index scoring) is the core's
//! [`kan_core::attribute::recall`], the one `kan eval` scores.
//!
//! Items added after training (`POST /v1/items`) extend the catalogue past the bundle's items:
//! their tags form a second, small inverted index searched beside the bundle's, each scored with
//! the bundle's `new_item_prior`. Adding items builds a new strategy value sharing the bundle
//! part, swapped in whole, so a request sees the old or the new catalogue, never half of one.
//! Cold start: no history, no candidates.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::{files, params};
use kan_api::crd::AttributeSettings;
use kan_api::wire::NewItem;
use kan_core::attribute::Weighted;

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr, parallel};
use crate::error::{Error, Result};
use crate::index::Hit;

/// What the bundle gives, shared by every catalogue version.
struct Base {
    bundle: Arc<Bundle>,
    tag_index: HashMap<String, u32>,
    item_tags: Csr,
    item_weights: Vec<f32>,
    tag_items: Csr,
    tag_scores: Vec<f32>,
    related: Csr,
    related_weights: Vec<f32>,
    new_item_prior: f32,
}

/// Items added after training: their tags (IDF-free: each of an item's `n` tags weighs
/// `1/√n`, the L2 normalisation the trainer applies) and the inverted index over them.
#[derive(Default)]
struct Fresh {
    items: Vec<NewItem>,
    /// Row `j` is added item `n_bundle + j`.
    tags: Vec<Vec<(u32, f32)>>,
    /// CSR over tags (as many rows as the bundle has tags).
    offsets: Vec<usize>,
    columns: Vec<u32>,
    scores: Vec<f32>,
}

pub struct Attribute {
    base: Arc<Base>,
    fresh: Fresh,
    catalogue: Catalogue,
    settings: AttributeSettings,
}

impl Attribute {
    pub fn new(bundle: Arc<Bundle>, settings: &AttributeSettings) -> Result<Self> {
        let n = bundle.items.len();
        let names = read_lines(&bundle, files::TAG_NAMES)?;
        let n_tags = names.len();
        let file = bundle.tensors(files::ITEM_TAGS)?;
        let item_tags = file.csr(n, "tags", n_tags)?;
        let item_weights = parallel(&file, "weights", file.f32_1d("weights")?, &item_tags)?;
        let prior = file.f32_1d("prior")?;
        if prior.len() != n {
            return Err(file
                .error("prior", format!("needs one value per item ({n})"))
                .into());
        }
        let file = bundle.tensors(files::TAG_ITEMS)?;
        let tag_items = file.csr(n_tags, "items", n)?;
        let tag_scores = parallel(&file, "scores", file.f32_1d("scores")?, &tag_items)?;
        let file = bundle.tensors(files::RELATED_TAGS)?;
        let related = file.csr(n_tags, "related", n_tags)?;
        let related_weights = parallel(&file, "weights", file.f32_1d("weights")?, &related)?;
        let new_item_prior = bundle
            .manifest
            .params
            .get(params::NEW_ITEM_PRIOR)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(1.0) as f32;
        let tag_index = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| (name, i as u32))
            .collect();
        let catalogue = bundle.items.clone();
        let base = Base {
            bundle,
            tag_index,
            item_tags,
            item_weights,
            tag_items,
            tag_scores,
            related,
            related_weights,
            new_item_prior,
        };
        Ok(Self {
            fresh: Fresh::index(
                Vec::new(),
                Vec::new(),
                n_tags,
                n as u32,
                base.new_item_prior,
            ),
            base: Arc::new(base),
            catalogue,
            settings: settings.clone(),
        })
    }

    /// A copy serving `items` (all items added so far) beside the bundle's. Strict: an id the
    /// bundle has or an unknown tag is an error naming `items[i]...`. Lenient (reloading a
    /// persisted catalogue against a new bundle): such items or tags are skipped.
    pub fn with_added(&self, items: &[NewItem], strict: bool) -> Result<Self> {
        let bundle = &self.base.bundle;
        let mut kept = Vec::with_capacity(items.len());
        let mut rows = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if bundle.items.get(&item.id).is_some() {
                if strict {
                    return Err(invalid(
                        format!("items[{i}].id"),
                        format!("'{}' is an item of the bundle already", item.id),
                    ));
                }
                continue;
            }
            if item.vector.is_some() && strict {
                return Err(invalid(
                    format!("items[{i}].vector"),
                    "an attribute queue recalls by tags and has no item vectors: leave vector out",
                ));
            }
            let mut tags = Vec::with_capacity(item.tags.len());
            for (j, name) in item.tags.iter().enumerate() {
                match self.base.tag_index.get(name) {
                    Some(&t) => tags.push(t),
                    None if strict => {
                        return Err(invalid(
                            format!("items[{i}].tags[{j}]"),
                            format!(
                                "unknown tag '{name}': the bundle's tags are listed in {}",
                                files::TAG_NAMES
                            ),
                        ));
                    }
                    None => {}
                }
            }
            tags.sort_unstable();
            tags.dedup();
            if tags.is_empty() {
                if strict {
                    return Err(invalid(
                        format!("items[{i}].tags"),
                        format!(
                            "an attribute queue recalls by tags: name at least one of {}",
                            files::TAG_NAMES
                        ),
                    ));
                }
                continue;
            }
            let w = 1.0 / (tags.len() as f32).sqrt();
            rows.push(tags.into_iter().map(|t| (t, w)).collect());
            kept.push(item.clone());
        }
        let mut ids: Vec<String> = (0..bundle.items.len() as u32)
            .filter_map(|i| bundle.items.id(i).map(str::to_string))
            .collect();
        ids.extend(kept.iter().map(|it| it.id.clone()));
        let catalogue = Catalogue::new(ids)?;
        Ok(Self {
            base: self.base.clone(),
            fresh: Fresh::index(
                kept,
                rows,
                self.base.tag_index.len(),
                bundle.items.len() as u32,
                self.base.new_item_prior,
            ),
            catalogue,
            settings: self.settings.clone(),
        })
    }
}

impl Fresh {
    /// Indexes added items; postings hold catalogue indices (`first` + position).
    fn index(
        items: Vec<NewItem>,
        tags: Vec<Vec<(u32, f32)>>,
        n_tags: usize,
        first: u32,
        prior: f32,
    ) -> Self {
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_tags];
        for (j, row) in tags.iter().enumerate() {
            for &(t, w) in row {
                if let Some(p) = postings.get_mut(t as usize) {
                    p.push((first + j as u32, w * prior));
                }
            }
        }
        let mut out = Fresh {
            items,
            tags,
            offsets: vec![0],
            ..Fresh::default()
        };
        for mut p in postings {
            p.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
            for (i, s) in p {
                out.columns.push(i);
                out.scores.push(s);
            }
            out.offsets.push(out.columns.len());
        }
        out
    }
}

fn invalid(field: String, message: impl Into<String>) -> Error {
    Error::InvalidRequest {
        field,
        message: message.into(),
    }
}

fn read_lines(bundle: &Bundle, name: &str) -> Result<Vec<String>> {
    let path = bundle.require(name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(text.lines().map(str::to_string).collect())
}

impl Strategy for Attribute {
    fn name(&self) -> &'static str {
        "attribute"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    fn with_added(&self, items: &[NewItem], strict: bool) -> Option<Result<Arc<dyn Strategy>>> {
        Some(Attribute::with_added(self, items, strict).map(|a| Arc::new(a) as Arc<dyn Strategy>))
    }

    fn added(&self) -> &[NewItem] {
        &self.fresh.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let base = &self.base;
            let n_bundle = base.bundle.items.len() as u32;
            let items = Weighted {
                rows: base.item_tags.view(),
                weights: &base.item_weights,
            };
            let tags_of = |i: u32| -> Box<dyn Iterator<Item = (u32, f32)> + '_> {
                if i < n_bundle {
                    Box::new(items.row(i as usize))
                } else {
                    let row = self.fresh.tags.get((i - n_bundle) as usize);
                    Box::new(row.into_iter().flatten().copied())
                }
            };
            let postings = [
                Weighted {
                    rows: base.tag_items.view(),
                    weights: &base.tag_scores,
                },
                Weighted {
                    rows: kan_core::CsrRef {
                        offsets: &self.fresh.offsets,
                        columns: &self.fresh.columns,
                    },
                    weights: &self.fresh.scores,
                },
            ];
            let related = Weighted {
                rows: base.related.view(),
                weights: &base.related_weights,
            };
            let excluded: Vec<u32> = query.exclude.iter().copied().collect();
            Ok(kan_core::attribute::recall(
                tags_of,
                &postings,
                Some(related),
                &self.settings,
                &query.history,
                &excluded,
                query.k,
            ))
        })
    }
}
