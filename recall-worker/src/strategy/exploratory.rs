//! Exploratory recall: items outside the user's dominant interests, Thompson-sampled from each
//! item's Beta quality prior, optionally favouring categories next to the user's (interest
//! expansion over the bundle's related-category graph). The kernel is
//! [`kan_core::exploratory::recall`]; this module loads the bundle and the queue's settings.
//! The draws are seeded by (user, UTC day of the wall clock, spec seed), so a user sees the
//! same list all day and a new one the next day.
//!
//! Items added after training (`POST /v1/items`) are sampled too: their categories are the tags
//! that name one of the bundle's, their prior that of an item nobody engaged with yet.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::ExploratorySettings;
use kan_api::wire::NewItem;
use kan_core::attribute::Weighted;
use kan_core::exploratory::{Model, Priors, exploration_seed, new_item_beta};

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr, parallel};
use crate::error::{Error, Result};
use crate::index::Hit;

pub struct Exploratory {
    bundle: Arc<Bundle>,
    /// The bundle's items, then the items added after training (`POST /v1/items`); `None`
    /// while none were added (the bundle's catalogue serves).
    catalogue: Option<Catalogue>,
    /// Category names (`categories.txt`): an added item's tags that name one are its categories.
    category_index: Arc<HashMap<String, u32>>,
    /// The bundle's item → categories, and the bundle's Beta prior parameters.
    trained: Arc<Trained>,
    added: Vec<NewItem>,
    categories: Csr,
    priors: Priors,
    /// Category → related categories (`related_tags.safetensors`), rows summing to 1; `None`
    /// for bundles trained before the graph was written (expansion then refuses to start).
    related: Option<Arc<(Csr, Vec<f32>)>>,
    settings: ExploratorySettings,
}

impl Exploratory {
    pub fn new(bundle: Arc<Bundle>, settings: &ExploratorySettings) -> Result<Self> {
        let file = bundle.tensors(files::CATEGORIES)?;
        let n = bundle.items.len();
        let categories = file.csr(n, "categories", u32::MAX as usize)?;
        let alpha = file.f32_1d("alpha")?;
        let beta = file.f32_1d("beta")?;
        if alpha.len() != n || beta.len() != n {
            return Err(file
                .error(
                    "alpha",
                    format!("alpha and beta need one value per item ({n})"),
                )
                .into());
        }
        let priors = Priors::new(&alpha, &beta).map_err(|e| file.error("alpha", e.to_string()))?;
        let names_path = bundle.require(files::CATEGORY_NAMES)?;
        let names = std::fs::read_to_string(&names_path).map_err(|e| Error::io(&names_path, e))?;
        let category_index: HashMap<String, u32> = names
            .lines()
            .enumerate()
            .map(|(c, name)| (name.to_string(), c as u32))
            .collect();
        let related = if bundle.has_file(files::RELATED_TAGS) {
            let n_categories = category_index.len();
            let file = bundle.tensors(files::RELATED_TAGS)?;
            let related = file.csr(n_categories, "related", n_categories)?;
            let weights = parallel(&file, "weights", file.f32_1d("weights")?, &related)?;
            Some(Arc::new((related, weights)))
        } else if settings.kg_expansion {
            return Err(Error::Bundle(format!(
                "strategy.exploratory.kgExpansion needs the related-category graph ({}), which this bundle predates: retrain it",
                files::RELATED_TAGS
            )));
        } else {
            None
        };
        Ok(Self {
            catalogue: None,
            bundle,
            category_index: Arc::new(category_index),
            trained: Arc::new(Trained {
                categories: categories.clone(),
                new_item_beta: new_item_beta(&alpha, &beta),
                alpha,
                beta,
            }),
            added: Vec::new(),
            categories,
            priors,
            related,
            settings: settings.clone(),
        })
    }

    /// A copy that also samples `items` (every item added so far). Their categories are the
    /// tags that name one of the bundle's categories; their prior is that of a trained item
    /// nobody engaged with, Beta(1, median reach + 1). Strict: an id the bundle has, a vector, or
    /// an item without a known category is an error naming its field; lenient (reloading a
    /// stored catalogue against a new bundle): such items are skipped.
    pub fn with_added(&self, items: &[NewItem], strict: bool) -> Result<Self> {
        let trained = &self.trained;
        let n = trained.alpha.len();
        let mut kept = Vec::with_capacity(items.len());
        let mut offsets: Vec<i64> = Vec::with_capacity(n + items.len() + 1);
        let mut columns: Vec<i64> = Vec::with_capacity(trained.categories.nnz());
        offsets.push(0);
        for row in 0..n {
            columns.extend(trained.categories.row(row).iter().map(|&c| i64::from(c)));
            offsets.push(columns.len() as i64);
        }
        for (i, item) in items.iter().enumerate() {
            let fault = if self.bundle.items.get(&item.id).is_some() {
                Some((
                    format!("items[{i}].id"),
                    format!("'{}' is an item of the bundle already", item.id),
                ))
            } else if item.vector.is_some() {
                Some((
                    format!("items[{i}].vector"),
                    "an exploratory queue samples by category and has no item vectors: leave vector out".to_string(),
                ))
            } else {
                None
            };
            let mut cats: Vec<u32> = item
                .tags
                .iter()
                .filter_map(|t| self.category_index.get(t).copied())
                .collect();
            cats.sort_unstable();
            cats.dedup();
            let fault = fault.or_else(|| {
                cats.is_empty().then(|| {
                    (
                        format!("items[{i}].tags"),
                        format!(
                            "no tag names a category of the bundle ({}); an exploratory queue samples items by category",
                            files::CATEGORY_NAMES
                        ),
                    )
                })
            });
            match fault {
                Some((field, message)) if strict => {
                    return Err(Error::InvalidRequest { field, message });
                }
                Some(_) => continue,
                None => {}
            }
            columns.extend(cats.iter().map(|&c| i64::from(c)));
            offsets.push(columns.len() as i64);
            kept.push(item.clone());
        }
        let rows = n + kept.len();
        let categories = Csr::new(offsets, columns, rows, u32::MAX as usize)
            .map_err(|m| Error::Bundle(format!("added items' categories: {m}")))?;
        let mut alpha = trained.alpha.clone();
        let mut beta = trained.beta.clone();
        alpha.resize(rows, 1.0);
        beta.resize(rows, trained.new_item_beta);
        let priors =
            Priors::new(&alpha, &beta).map_err(|e| Error::Bundle(format!("added items: {e}")))?;
        let mut ids: Vec<String> = (0..n as u32)
            .filter_map(|i| self.bundle.items.id(i).map(str::to_string))
            .collect();
        ids.extend(kept.iter().map(|it| it.id.clone()));
        Ok(Self {
            bundle: self.bundle.clone(),
            catalogue: Some(Catalogue::new(ids)?),
            category_index: self.category_index.clone(),
            trained: self.trained.clone(),
            added: kept,
            categories,
            priors,
            related: self.related.clone(),
            settings: self.settings.clone(),
        })
    }
}

/// What [`Exploratory::with_added`] rebuilds from.
struct Trained {
    categories: Csr,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    /// β of a new item's prior: 1 + the median reach (α + β − 2) of the trained items.
    new_item_beta: f32,
}

impl Strategy for Exploratory {
    fn name(&self) -> &'static str {
        "exploratory"
    }

    fn catalogue(&self) -> &Catalogue {
        self.catalogue.as_ref().unwrap_or(&self.bundle.items)
    }

    fn with_added(&self, items: &[NewItem], strict: bool) -> Option<Result<Arc<dyn Strategy>>> {
        Some(Exploratory::with_added(self, items, strict).map(|e| Arc::new(e) as Arc<dyn Strategy>))
    }

    fn added(&self) -> &[NewItem] {
        &self.added
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let model = Model {
                categories: self.categories.view(),
                priors: &self.priors,
                related: self.related.as_deref().map(|(rows, weights)| Weighted {
                    rows: rows.view(),
                    weights,
                }),
            };
            let seed = exploration_seed(query.user_id, query.now, self.settings.seed);
            Ok(kan_core::exploratory::recall(
                model,
                &self.settings,
                &query.history,
                |item| query.exclude.contains(&item),
                seed,
                query.k,
            ))
        })
    }
}
