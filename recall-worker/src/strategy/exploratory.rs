//! Exploratory recall: items outside the user's dominant interests, Thompson-sampled from each
//! item's Beta quality prior. The user's `dominantInterests` most frequent history categories are
//! excluded; items without one of them are candidates, scored by a draw from Beta(α, β).
//! The draws are seeded by (user, UTC day, spec seed), so a user sees the same list all day and a
//! new one the next day. Cold start: with no history every category is eligible.
//!
//! Items added after training (`POST /v1/items`) are sampled too: their categories are the tags
//! that name one of the bundle's, their prior that of an item nobody engaged with yet.
//!
//! Only a pool is sampled: the first `max(50·k, 10 000)` eligible items in a fixed order, best
//! optimistic bound (prior mean + 2 sd) first. Drawing for every item cost 671 ms p50 per request
//! at 1M items (BENCHMARKS.md, Worker); an item outside the pool would need a draw beyond the bound
//! of tens of thousands of better-or-as-uncertain items to reach the top k, so the list barely
//! changes while the cost stops growing with the catalogue.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::ExploratorySettings;
use kan_api::wire::NewItem;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Beta, Distribution};

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr};
use crate::error::{Error, Result};
use crate::index::{Hit, top_k};

/// Smallest pool of sampled items, and pool items per candidate wanted.
const POOL_MIN: usize = 10_000;
const POOL_PER_CANDIDATE: usize = 50;

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
    priors: Vec<Beta<f32>>,
    /// Items by optimistic bound, best first: the order pools are taken and draws are made in.
    order: Vec<u32>,
    dominant: usize,
    seed: i64,
}

impl Exploratory {
    pub fn new(bundle: Arc<Bundle>, settings: &ExploratorySettings) -> Result<Self> {
        let file = bundle.tensors(files::CATEGORIES)?;
        let n = bundle.items.len();
        let categories = file.csr(n, "categories", u32::MAX as usize)?;
        let alpha = file.f32_1d("alpha")?;
        let beta = file.f32_1d("beta")?;
        if alpha.len() != n || beta.len() != n {
            return Err(file.error(
                "alpha",
                &format!("alpha and beta need one value per item ({n})"),
            ));
        }
        let priors = alpha
            .iter()
            .zip(&beta)
            .enumerate()
            .map(|(i, (&a, &b))| {
                Beta::new(a, b).map_err(|_| {
                    file.error(
                        "alpha",
                        &format!("item {i}: Beta({a}, {b}) needs alpha > 0 and beta > 0"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let names_path = bundle.require(files::CATEGORY_NAMES)?;
        let names = std::fs::read_to_string(&names_path).map_err(|e| Error::io(&names_path, e))?;
        let category_index = names
            .lines()
            .enumerate()
            .map(|(c, name)| (name.to_string(), c as u32))
            .collect();
        Ok(Self {
            catalogue: None,
            bundle,
            category_index: Arc::new(category_index),
            trained: Arc::new(Trained {
                categories: categories.clone(),
                new_item_beta: new_item_beta(&alpha, &beta),
                alpha: alpha.clone(),
                beta: beta.clone(),
            }),
            added: Vec::new(),
            categories,
            priors,
            order: optimistic_order(&alpha, &beta),
            dominant: settings.dominant_interests.max(0) as usize,
            seed: settings.seed,
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
        let priors = alpha
            .iter()
            .zip(&beta)
            .map(|(&a, &b)| Beta::new(a, b).map_err(|_| Error::Bundle(format!("Beta({a}, {b})"))))
            .collect::<Result<Vec<_>>>()?;
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
            order: optimistic_order(&alpha, &beta),
            dominant: self.dominant,
            seed: self.seed,
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

/// 1 + the median reach of the trained items (their prior is Beta(1 + engagements,
/// 1 + reach − engagements)): a new item is one nobody engaged with yet, among a typical
/// audience.
fn new_item_beta(alpha: &[f32], beta: &[f32]) -> f32 {
    let mut reach: Vec<f32> = alpha
        .iter()
        .zip(beta)
        .map(|(a, b)| (a + b - 2.0).max(0.0))
        .collect();
    if reach.is_empty() {
        return 1.0;
    }
    let mid = reach.len() / 2;
    let (_, median, _) = reach.select_nth_unstable_by(mid, f32::total_cmp);
    1.0 + *median
}

/// FNV-1a, 64 bits: stable across processes and Rust versions (unlike `DefaultHasher`).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The sampling seed of a user on a UTC day.
pub fn exploration_seed(user_id: &str, now: i64, seed: i64) -> u64 {
    let day = now.div_euclid(86_400);
    let mut bytes = user_id.as_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(&day.to_le_bytes());
    bytes.extend_from_slice(&seed.to_le_bytes());
    stable_hash(&bytes)
}

/// Item indices by the optimistic bound of their Beta(α, β) prior (mean + 2 sd), best first; ties
/// keep the lower index first.
pub fn optimistic_order(alpha: &[f32], beta: &[f32]) -> Vec<u32> {
    let bound: Vec<f64> = alpha
        .iter()
        .zip(beta)
        .map(|(&a, &b)| {
            let (a, b) = (a as f64, b as f64);
            let n = a + b;
            a / n + 2.0 * (a * b / (n * n * (n + 1.0))).sqrt()
        })
        .collect();
    let mut order: Vec<u32> = (0..alpha.len() as u32).collect();
    order.sort_by(|&x, &y| {
        bound[y as usize]
            .total_cmp(&bound[x as usize])
            .then(x.cmp(&y))
    });
    order
}

/// The `n` most frequent categories of the history (ties: lower category index).
pub fn dominant_categories(categories: &Csr, history: &[u32], n: usize) -> HashSet<u32> {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &item in history {
        for &c in categories.row(item as usize) {
            *counts.entry(c).or_default() += 1;
        }
    }
    let mut ranked: Vec<(u32, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(n).map(|(c, _)| c).collect()
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
            let dominant = dominant_categories(&self.categories, &query.history, self.dominant);
            let exclude = query.exclude_with_history();
            let mut rng =
                StdRng::seed_from_u64(exploration_seed(query.user_id, query.now, self.seed));
            // Every walked item draws, eligible or not, so a draw depends only on the seed and the
            // item (its place in `order`), not on this request's exclusions.
            let pool = (query.k * POOL_PER_CANDIDATE).max(POOL_MIN);
            let mut hits = Vec::with_capacity(pool.min(self.order.len()));
            for &item in &self.order {
                if hits.len() == pool {
                    break;
                }
                let theta = self.priors[item as usize].sample(&mut rng);
                let eligible = !exclude.contains(&item)
                    && !self
                        .categories
                        .row(item as usize)
                        .iter()
                        .any(|c| dominant.contains(c));
                if eligible {
                    hits.push(Hit { item, score: theta });
                }
            }
            Ok(top_k(hits.into_iter(), query.k))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_change_with_the_day_and_user_but_not_within_a_day() {
        let day = 20_000 * 86_400;
        assert_eq!(
            exploration_seed("u1", day + 10, 7),
            exploration_seed("u1", day + 80_000, 7)
        );
        assert_ne!(
            exploration_seed("u1", day, 7),
            exploration_seed("u1", day + 86_400, 7)
        );
        assert_ne!(
            exploration_seed("u1", day, 7),
            exploration_seed("u2", day, 7)
        );
        assert_ne!(
            exploration_seed("u1", day, 7),
            exploration_seed("u1", day, 8)
        );
    }

    #[test]
    fn a_new_item_gets_the_median_reach_of_the_trained_items_as_its_beta() {
        // Reaches (α + β − 2): 0, 4, 10.
        assert_eq!(new_item_beta(&[1.0, 3.0, 6.0], &[1.0, 3.0, 6.0]), 5.0);
        assert_eq!(new_item_beta(&[], &[]), 1.0);
    }

    #[test]
    fn confident_good_items_and_uncertain_items_come_before_confident_poor_ones() {
        // 0: confident poor (1/100), 1: uncertain (1/1), 2: confident good (90/10)
        let order = optimistic_order(&[1.0, 1.0, 90.0], &[99.0, 1.0, 10.0]);
        assert_eq!(order, vec![1, 2, 0]);
    }

    #[test]
    fn dominant_categories_are_the_most_frequent_in_the_history() {
        // items 0,1 -> category 5; item 2 -> category 9; item 3 -> categories 9, 4
        let csr = Csr::new(vec![0, 1, 2, 3, 5], vec![5, 5, 9, 9, 4], 4, 10).unwrap();
        assert_eq!(
            dominant_categories(&csr, &[0, 1, 2, 3], 2),
            HashSet::from([5, 9])
        );
        assert!(dominant_categories(&csr, &[], 3).is_empty());
    }
}
