//! Popular recall: time-decayed popularity lists computed offline. The first `segmentBy` key the
//! request context carries a value for, and the bundle has a list for, picks the segment list;
//! the global list follows it (and is used alone when no segment matches). Cold start: the same.
//!
//! Trending mode (`popular.trending` with `spec.signals`): the online store's decayed counts of
//! the window — the segment's, then the global — come first, the bundle's lists fill the rest.
//! Items the bundle does not know are skipped. Store down: the bundle's lists, degraded.
//! Items in the user's history are not recalled again (as every other strategy does).

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::{PopularSettings, TrendingSettings};
use kan_api::events::{GLOBAL_SEGMENT, segment_name};

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, TensorFile};
use crate::error::Result;
use crate::index::Hit;

pub struct Popular {
    bundle: Arc<Bundle>,
    global: Vec<Hit>,
    /// `key=value` → list.
    segments: HashMap<String, Vec<Hit>>,
    segment_by: Vec<String>,
    trending: Option<TrendingSettings>,
}

fn read_list(file: &TensorFile, prefix: &str, n: usize) -> Result<Vec<Hit>> {
    let items = file.i64_1d(&format!("{prefix}/items"))?;
    let scores = file.f32_1d(&format!("{prefix}/scores"))?;
    if items.len() != scores.len() {
        return Err(file.error(&format!("{prefix}/scores"), "needs one score per item"));
    }
    if let Some(bad) = items.iter().find(|&&i| i < 0 || i as usize >= n) {
        return Err(file.error(
            &format!("{prefix}/items"),
            &format!("item index {bad} is out of range 0..{n}"),
        ));
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
            global,
            segments,
            segment_by: settings.segment_by.clone(),
            trending: settings.trending,
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
            hits.extend(items.into_iter().filter_map(|(id, count)| {
                self.bundle.items.get(&id).map(|item| Hit {
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
                .and_then(|v| self.segments.get(&format!("{key}={v}")))
        })
    }
}

impl Strategy for Popular {
    fn name(&self) -> &'static str {
        "popular"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let segment = self
                .segment(query.context)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let exclude = query.exclude_with_history();
            let trending = self.trending(query, query.k + exclude.len()).await;
            Ok(kan_core::popular::recall(
                [trending.as_slice(), segment, &self.global],
                |item| exclude.contains(&item),
                query.k,
            ))
        })
    }
}
