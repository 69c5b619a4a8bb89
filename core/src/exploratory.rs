//! Exploratory recall: items outside the user's dominant interests, Thompson-sampled from each
//! item's Beta quality prior.
//!
//! 1. The user's `dominantInterests` most frequent history categories are excluded; items
//!    without one of them are candidates. With no history every category is eligible.
//! 2. Each candidate is scored by a draw θ from its Beta(α, β). The draws are seeded by
//!    (user, UTC day, spec seed) ([`exploration_seed`]), so a user sees the same list all day
//!    and a new one the next day.
//! 3. Interest expansion (optional, `kgExpansion`): the user's category counts are spread
//!    `kgHops` rounds over the related-category graph (KG or co-occurrence neighbours, the same
//!    spreading as the attribute queue's, [`crate::attribute::expand`]); an item's affinity is
//!    the strongest weight reached by one of its categories, outside the dominant ones, relative
//!    to the strongest reached at all (0..=1), and its score is θ × (1 + affinity): next-door
//!    interests come first at equal luck, far ones are still drawn.
//!
//! Only a pool is sampled: the first `max(50·k, 10 000)` eligible items in a fixed order, best
//! optimistic bound (prior mean + 2 sd) first. Drawing for every item cost 671 ms p50 per
//! request at 1M items (BENCHMARKS.md, Worker); an item outside the pool would need a draw beyond
//! the bound of tens of thousands of better-or-as-uncertain items to reach the top k, so the list
//! barely changes while the cost stops growing with the catalogue.

use std::collections::BTreeMap;

use kan_api::crd::ExploratorySettings;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Beta, Distribution};

use crate::CsrRef;
use crate::attribute::{Weighted, expand};
use crate::rank::{Hit, top_k_of, with_scores};

/// Smallest pool of sampled items, and pool items per candidate wanted.
const POOL_MIN: usize = 10_000;
const POOL_PER_CANDIDATE: usize = 50;

/// An item whose prior is not a Beta distribution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("item {item}: Beta({alpha}, {beta}) needs alpha > 0 and beta > 0")]
pub struct InvalidPrior {
    pub item: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// Every item's Beta prior and the order pools are taken in (best optimistic bound first).
#[derive(Debug, Clone)]
pub struct Priors {
    dists: Vec<Beta<f32>>,
    order: Vec<u32>,
}

impl Priors {
    /// Priors Beta(`alpha[i]`, `beta[i]`); the two slices have one value per item.
    pub fn new(alpha: &[f32], beta: &[f32]) -> Result<Self, InvalidPrior> {
        let dists = alpha
            .iter()
            .zip(beta)
            .enumerate()
            .map(|(item, (&a, &b))| {
                Beta::new(a, b).map_err(|_| InvalidPrior {
                    item,
                    alpha: a,
                    beta: b,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dists,
            order: optimistic_order(alpha, beta),
        })
    }

    pub fn len(&self) -> usize {
        self.dists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dists.is_empty()
    }
}

/// What the kernel reads: item → categories, the priors, and (for expansion) category →
/// related categories, rows summing to 1.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    pub categories: CsrRef<'a>,
    pub priors: &'a Priors,
    pub related: Option<Weighted<'a>>,
}

/// β of a new item's prior: 1 + the median reach (α + β − 2) of the trained items (their prior
/// is Beta(1 + engagements, 1 + reach − engagements)): a new item is one nobody engaged with
/// yet, among a typical audience.
pub fn new_item_beta(alpha: &[f32], beta: &[f32]) -> f32 {
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

/// The sampling seed of a user on the UTC day of `now` (unix seconds).
pub fn exploration_seed(user_id: &str, now: i64, seed: i64) -> u64 {
    let day = now.div_euclid(86_400);
    let mut bytes = user_id.as_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(&day.to_le_bytes());
    bytes.extend_from_slice(&seed.to_le_bytes());
    stable_hash(&bytes)
}

/// Item indices by the optimistic bound of their Beta(α, β) prior (mean + 2 sd), best first;
/// ties keep the lower index first.
fn optimistic_order(alpha: &[f32], beta: &[f32]) -> Vec<u32> {
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

/// How often each category appears in the history (every history item counts once per
/// category it has).
fn category_counts(categories: CsrRef<'_>, history: &[u32]) -> BTreeMap<u32, f32> {
    // Counted densely (a tree insert per history item showed in the platform's profile); only
    // the few distinct categories go into the ordered map.
    with_scores(|counts| {
        for &item in history {
            for &c in categories.row(item as usize) {
                counts.add(c, 1.0);
            }
        }
        counts.entries().map(|h| (h.item, h.score)).collect()
    })
}

/// The `n` most frequent categories of the history (ties: lower category index), in that
/// order. A short list: membership is a scan, cheaper than hashing for a few entries.
pub fn dominant_categories(categories: CsrRef<'_>, history: &[u32], n: usize) -> Vec<u32> {
    dominant(&category_counts(categories, history), n)
}

fn dominant(counts: &BTreeMap<u32, f32>, n: usize) -> Vec<u32> {
    let mut ranked: Vec<(u32, f32)> = counts.iter().map(|(&c, &w)| (c, w)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(n).map(|(c, _)| c).collect()
}

/// Category → affinity in (0, 1]: the user's category counts spread over `related`, without
/// the dominant categories, relative to the strongest. Empty when nothing is reached.
pub fn affinities(
    counts: BTreeMap<u32, f32>,
    related: Weighted<'_>,
    dominant: &[u32],
    settings: &ExploratorySettings,
) -> BTreeMap<u32, f32> {
    let counts: Vec<Hit> = counts
        .into_iter()
        .map(|(item, score)| Hit { item, score })
        .collect();
    let mut reached: BTreeMap<u32, f32> =
        expand(&counts, related, settings.kg_hops, settings.kg_hop_decay)
            .into_iter()
            .map(|h| (h.item, h.score))
            .collect();
    reached.retain(|c, w| !dominant.contains(c) && w.is_finite() && *w > 0.0);
    let strongest = reached.values().copied().fold(0.0f32, f32::max);
    if strongest > 0.0 {
        for w in reached.values_mut() {
            *w /= strongest;
        }
    }
    reached
}

/// Item `item`'s draw from its prior for the user whose draw seed is `seed`. Each item has its
/// own small generator seeded by (seed, item), so a draw depends only on those two — not on the
/// walk's order or on which other items this request skips — and ineligible items cost nothing.
pub fn draw(prior: &Beta<f32>, seed: u64, item: u32) -> f32 {
    // Distinct items get far-apart seeds (golden-ratio multiple); SmallRng's seeding then
    // scrambles them through SplitMix64.
    let mut rng =
        SmallRng::seed_from_u64(seed ^ (item as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    prior.sample(&mut rng)
}

/// The `k` exploratory items for a user: the whole kernel, as the worker and `kan eval` run it.
/// `seed` is the user's draw seed ([`exploration_seed`]); history items and `excluded` ones are
/// never recalled.
pub fn recall(
    model: Model<'_>,
    settings: &ExploratorySettings,
    history: &[u32],
    excluded: impl Fn(u32) -> bool,
    seed: u64,
    k: usize,
) -> Vec<Hit> {
    let counts = category_counts(model.categories, history);
    let dominant = dominant(&counts, settings.dominant_interests.max(0) as usize);
    let affinity = match model.related {
        Some(related) if settings.kg_expansion => {
            Some(affinities(counts, related, &dominant, settings))
        }
        _ => None,
    };
    // Sorted for binary search: the walk asks once per item, and SipHashing each ask cost
    // more than the lookups themselves (perf, `kan bench platform`).
    let mut seen = history.to_vec();
    seen.sort_unstable();
    let pool = k.saturating_mul(POOL_PER_CANDIDATE).max(POOL_MIN);
    let mut hits = Vec::with_capacity(pool.min(model.priors.len()));
    for &item in &model.priors.order {
        if hits.len() == pool {
            break;
        }
        let cats = model.categories.row(item as usize);
        if cats.iter().any(|c| dominant.contains(c))
            || seen.binary_search(&item).is_ok()
            || excluded(item)
        {
            continue;
        }
        let theta = draw(&model.priors.dists[item as usize], seed, item);
        let boost = affinity.as_ref().map_or(0.0, |a| {
            cats.iter()
                .filter_map(|c| a.get(c).copied())
                .fold(0.0f32, f32::max)
        });
        hits.push(Hit {
            item,
            score: theta * (1.0 + boost),
        });
    }
    top_k_of(hits, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Items 0, 1 → category 0; item 2 → category 1; item 3 → category 2; item 4 → categories
    // 1, 2.
    const OFFSETS: [usize; 6] = [0, 1, 2, 3, 4, 6];
    const CATS: [u32; 6] = [0, 0, 1, 2, 1, 2];
    // Related: 0 → 1 (1.0); 1 → 0 (1.0); 2 → nothing.
    const REL_OFFSETS: [usize; 4] = [0, 1, 2, 2];
    const REL: [u32; 2] = [1, 0];
    const REL_W: [f32; 2] = [1.0, 1.0];

    fn categories() -> CsrRef<'static> {
        CsrRef {
            offsets: &OFFSETS,
            columns: &CATS,
        }
    }

    fn related() -> Weighted<'static> {
        Weighted {
            rows: CsrRef {
                offsets: &REL_OFFSETS,
                columns: &REL,
            },
            weights: &REL_W,
        }
    }

    fn settings(dominant: i32, kg: bool) -> ExploratorySettings {
        ExploratorySettings {
            dominant_interests: dominant,
            kg_expansion: kg,
            ..Default::default()
        }
    }

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
    fn an_invalid_prior_names_its_item() {
        let err = Priors::new(&[1.0, 0.0], &[1.0, 1.0]).unwrap_err();
        assert_eq!(err.item, 1);
    }

    #[test]
    fn dominant_categories_are_the_most_frequent_in_the_history() {
        assert_eq!(dominant_categories(categories(), &[0, 1, 2, 4], 2), [0, 1]);
        assert!(dominant_categories(categories(), &[], 3).is_empty());
    }

    #[test]
    fn dominant_history_and_excluded_items_are_never_recalled_and_draws_are_seeded() {
        let priors = Priors::new(&[2.0; 5], &[2.0; 5]).unwrap();
        let model = Model {
            categories: categories(),
            priors: &priors,
            related: None,
        };
        // History 0, 1: category 0 dominates; item 3 excluded.
        let got = recall(model, &settings(1, false), &[0, 1], |i| i == 3, 9, 10);
        let mut items: Vec<u32> = got.iter().map(|h| h.item).collect();
        items.sort_unstable();
        assert_eq!(items, [2, 4]);
        assert_eq!(
            got,
            recall(model, &settings(1, false), &[0, 1], |i| i == 3, 9, 10)
        );
        // No history: everything is eligible.
        assert_eq!(
            recall(model, &settings(1, false), &[], |_| false, 9, 10).len(),
            5
        );
    }

    #[test]
    fn an_items_score_does_not_depend_on_which_other_items_are_skipped() {
        let priors = Priors::new(&[2.0; 5], &[3.0; 5]).unwrap();
        let model = Model {
            categories: categories(),
            priors: &priors,
            related: None,
        };
        let all = recall(model, &settings(0, false), &[], |_| false, 11, 10);
        let fewer = recall(
            model,
            &settings(0, false),
            &[],
            |i| i == 0 || i == 3,
            11,
            10,
        );
        assert_eq!(fewer.len(), 3);
        for h in &fewer {
            assert!(
                all.contains(h),
                "{h:?} drew differently once others were skipped"
            );
        }
    }

    #[test]
    fn per_item_draws_follow_the_beta_prior() {
        // Beta(2, 5): mean 2/7, variance 10/392. Draws over many users' seeds for one item and
        // over many items for one seed must both match it.
        let prior = Beta::new(2.0f32, 5.0).unwrap();
        let moments = |xs: Vec<f32>| {
            let n = xs.len() as f64;
            let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            (mean, var)
        };
        let by_seed = moments(
            (0..20_000u64)
                .map(|u| draw(&prior, exploration_seed(&format!("u{u}"), 0, 1), 7))
                .collect(),
        );
        let by_item = moments((0..20_000u32).map(|i| draw(&prior, 42, i)).collect());
        for (mean, var) in [by_seed, by_item] {
            assert!((mean - 2.0 / 7.0).abs() < 0.005, "mean {mean}");
            assert!((var - 10.0 / 392.0).abs() < 0.002, "variance {var}");
        }
    }

    #[test]
    fn expansion_scales_items_of_related_categories_up_to_twice() {
        let priors = Priors::new(&[2.0; 5], &[2.0; 5]).unwrap();
        let plain = Model {
            categories: categories(),
            priors: &priors,
            related: None,
        };
        let expanded = Model {
            related: Some(related()),
            ..plain
        };
        // History: item 0 (category 0, dominant). Category 1 is related to it; category 2 is not.
        let base = recall(plain, &settings(1, true), &[0], |_| false, 3, 10);
        let boosted = recall(expanded, &settings(1, true), &[0], |_| false, 3, 10);
        let score = |hits: &[Hit], item: u32| hits.iter().find(|h| h.item == item).unwrap().score;
        // Item 2 (category 1) and item 4 (categories 1, 2) reach category 1 with affinity 1.
        assert!((score(&boosted, 2) - 2.0 * score(&base, 2)).abs() < 1e-6);
        assert!((score(&boosted, 4) - 2.0 * score(&base, 4)).abs() < 1e-6);
        assert_eq!(score(&boosted, 3), score(&base, 3));
        // Off by setting, the related graph is ignored.
        assert_eq!(
            recall(expanded, &settings(1, false), &[0], |_| false, 3, 10),
            base
        );
    }

    #[test]
    fn affinities_leave_out_dominant_categories_and_peak_at_one() {
        let counts = BTreeMap::from([(0, 3.0), (1, 1.0)]);
        let a = affinities(counts, related(), &[0], &settings(1, true));
        assert!(!a.contains_key(&0));
        assert_eq!(a.get(&1), Some(&1.0));
    }
}
