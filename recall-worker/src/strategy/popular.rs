//! Popular recall: time-decayed popularity lists computed offline. The first `segmentBy` key the
//! request context carries a value for, and the bundle has a list for, picks the segment list;
//! the global list follows it (and is used alone when no segment matches). Cold start: the same.
//!
//! Trending mode (`popular.trending` with `spec.signals`): the online store's decayed counts of
//! the window — the segment's, then the global — come first, the bundle's lists fill the rest.
//! Items neither the bundle nor `POST /v1/items` knows are skipped. Store down: the bundle's
//! lists, degraded. Items in the user's history are not recalled again (as every other strategy
//! does).
//!
//! Items added after training (`POST /v1/items`) join the catalogue: trending can return them as
//! soon as users engage, and with `newItems: N` up to N of them, newest first, lead every answer
//! (fresh arrivals) before anyone has. Popular has no tag vocabulary: an added item's tags are
//! kept but not read, and a content vector is refused.

use std::collections::HashMap;

use kan_core::ItemSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::{PopularSettings, TrendingSettings};
use kan_api::events::{GLOBAL_SEGMENT, segment_name};
use kan_api::wire::NewItem;

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, TensorFile};
use crate::error::{Error, Result};
use crate::index::Hit;

pub struct Popular {
    bundle: Arc<Bundle>,
    /// The bundle's lists, shared by every catalogue version.
    lists: Arc<Lists>,
    /// The bundle's items, then the items added after training; `None` while none were added.
    catalogue: Option<Catalogue>,
    /// Items added after training, in the order first posted (item `n + j` is `added[j]`).
    added: Vec<NewItem>,
    segment_by: Vec<String>,
    trending: Option<TrendingSettings>,
    new_items: usize,
}

struct Lists {
    global: Vec<Hit>,
    /// `key=value` → list.
    segments: HashMap<String, Vec<Hit>>,
}

fn read_list(file: &TensorFile, prefix: &str, n: usize) -> Result<Vec<Hit>> {
    let items = file.i64_1d(&format!("{prefix}/items"))?;
    let scores = file.f32_1d(&format!("{prefix}/scores"))?;
    if items.len() != scores.len() {
        return Err(file
            .error(&format!("{prefix}/scores"), "needs one score per item")
            .into());
    }
    if let Some(bad) = items.iter().find(|&&i| i < 0 || i as usize >= n) {
        return Err(file
            .error(
                &format!("{prefix}/items"),
                format!("item index {bad} is out of range 0..{n}"),
            )
            .into());
    }
    Ok(items
        .into_iter()
        .zip(scores)
        .map(|(i, score)| Hit {
            item: i as u32,
            score,
        })
        .collect())
}

impl Popular {
    pub fn new(bundle: Arc<Bundle>, settings: &PopularSettings) -> Result<Self> {
        let file = bundle.tensors(files::POPULAR)?;
        let n = bundle.items.len();
        let global = read_list(&file, "global", n)?;
        let mut segments = HashMap::new();
        for name in file.names() {
            if let Some(segment) = name
                .strip_prefix("segment/")
                .and_then(|s| s.strip_suffix("/items"))
            {
                segments.insert(
                    segment.to_string(),
                    read_list(&file, &format!("segment/{segment}"), n)?,
                );
            }
        }
        Ok(Self {
            bundle,
            lists: Arc::new(Lists { global, segments }),
            catalogue: None,
            added: Vec::new(),
            segment_by: settings.segment_by.clone(),
            trending: settings.trending,
            new_items: usize::try_from(settings.new_items).unwrap_or(0),
        })
    }

    /// A copy whose catalogue also holds `items` (every item added so far), any tags or none.
    /// Strict: an id the bundle has or a vector is an error naming its field; lenient (reloading
    /// a stored catalogue against a new bundle): such an id is skipped, a vector ignored.
    pub fn with_added(&self, items: &[NewItem], strict: bool) -> Result<Self> {
        let mut kept = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let fault = if self.bundle.items.get(&item.id).is_some() {
                Some((
                    format!("items[{i}].id"),
                    format!("'{}' is an item of the bundle already", item.id),
                ))
            } else if item.vector.is_some() && strict {
                Some((
                    format!("items[{i}].vector"),
                    "a popular queue ranks by engagement and has no item vectors: leave vector out"
                        .to_string(),
                ))
            } else {
                None
            };
            match fault {
                Some((field, message)) if strict => {
                    return Err(Error::InvalidRequest { field, message });
                }
                Some(_) => continue,
                None => kept.push(item.clone()),
            }
        }
        let n = self.bundle.items.len() as u32;
        let mut ids: Vec<String> = (0..n)
            .filter_map(|i| self.bundle.items.id(i).map(str::to_string))
            .collect();
        ids.extend(kept.iter().map(|it| it.id.clone()));
        Ok(Self {
            bundle: self.bundle.clone(),
            lists: self.lists.clone(),
            catalogue: Some(Catalogue::new(ids)?),
            added: kept,
            segment_by: self.segment_by.clone(),
            trending: self.trending,
            new_items: self.new_items,
        })
    }

    /// The store's trending items for the request (its segment's, then the global), as hits
    /// scored by their decayed counts; empty without a store or trending mode.
    async fn trending(&self, query: &Query<'_>, take: usize) -> Vec<Hit> {
        let (Some(settings), Some(fresh)) = (self.trending, query.fresh) else {
            return Vec::new();
        };
        let window = kan_signals::Window {
            window_ms: i64::from(settings.window_minutes) * 60_000,
            half_life_ms: i64::from(settings.half_life_minutes) * 60_000,
        };
        let segment = self
            .segment_by
            .iter()
            .find_map(|key| query.context.get(key).map(|v| segment_name(key, v)));
        let now_ms = query.now.saturating_mul(1000);
        let mut hits = Vec::new();
        for segment in segment.iter().map(String::as_str).chain([GLOBAL_SEGMENT]) {
            let read = fresh.store().trending(segment, now_ms, window, take);
            let Some(items) = fresh.read(read).await else {
                break;
            };
            let catalogue = self.catalogue();
            hits.extend(items.into_iter().filter_map(|(id, count)| {
                catalogue.get(&id).map(|item| Hit {
                    item,
                    score: count as f32,
                })
            }));
        }
        hits
    }

    /// The segment list chosen for a request context, if any.
    fn segment(&self, context: &std::collections::BTreeMap<String, String>) -> Option<&Vec<Hit>> {
        self.segment_by.iter().find_map(|key| {
            context
                .get(key)
                .and_then(|v| self.lists.segments.get(&format!("{key}={v}")))
        })
    }
}

/// Fresh arrivals: up to `n` of the `added` items numbered from `first`, newest (last posted)
/// first, without `excluded` ones; each scored `score`.
fn fresh_arrivals(first: u32, added: usize, n: usize, excluded: &ItemSet, score: f32) -> Vec<Hit> {
    (first..first + added as u32)
        .rev()
        .filter(|item| !excluded.contains(item))
        .take(n)
        .map(|item| Hit { item, score })
        .collect()
}

impl Strategy for Popular {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn catalogue(&self) -> &Catalogue {
        self.catalogue.as_ref().unwrap_or(&self.bundle.items)
    }

    fn with_added(&self, items: &[NewItem], strict: bool) -> Option<Result<Arc<dyn Strategy>>> {
        Some(Popular::with_added(self, items, strict).map(|p| Arc::new(p) as Arc<dyn Strategy>))
    }

    fn added(&self) -> &[NewItem] {
        &self.added
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let segment = self
                .segment(query.context)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let exclude = query.exclude_with_history();
            let trending = self.trending(query, query.k + exclude.len()).await;
            let lists = [trending.as_slice(), segment, &self.lists.global];
            let ranked = kan_core::popular::recall(lists, |item| exclude.contains(&item), query.k);
            let wanted = self.new_items.min(query.k);
            if wanted == 0 || self.added.is_empty() {
                return Ok(ranked);
            }
            // Fresh arrivals lead; they score as the best ranked item, so a gateway merging by
            // score keeps them at the top as the list order says.
            let top = ranked.first().map_or(1.0, |h| h.score);
            let first = self.bundle.items.len() as u32;
            let fresh = fresh_arrivals(first, self.added.len(), wanted, &exclude, top);
            Ok(kan_core::popular::recall(
                [fresh.as_slice(), &ranked],
                |_| false,
                query.k,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_arrivals_are_the_newest_added_items_the_user_may_get() {
        let excluded = ItemSet::from_iter([13]);
        let items: Vec<u32> = fresh_arrivals(10, 5, 3, &excluded, 2.0)
            .iter()
            .map(|h| h.item)
            .collect();
        assert_eq!(items, [14, 12, 11]);
        assert!(fresh_arrivals(10, 5, 0, &excluded, 2.0).is_empty());
        assert!(fresh_arrivals(10, 0, 3, &excluded, 2.0).is_empty());
    }
}
