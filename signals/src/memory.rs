//! The in-process store: `kan up`'s embedded default. Everything lives in one mutex-guarded
//! state; the lists are bounded like Redis's, trending buckets older than the longest window are
//! dropped, and applied ids expire after [`crate::IDEMPOTENCE_TTL`]. Not durable: a restart
//! forgets everything (the bundle's data remains).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use futures::future::BoxFuture;
use kan_api::events::{Action, Event};
use kan_core::fresh;

use crate::{
    Appended, ENGAGEMENTS_MAX, Engagement, HISTORY_MAX, IDEMPOTENCE_TTL, Result, SignalStore,
    Window, in_time_order,
};

#[derive(Default)]
struct State {
    history: HashMap<String, VecDeque<String>>,
    engagements: HashMap<String, VecDeque<Engagement>>,
    follows: HashMap<String, HashSet<String>>,
    /// (segment, bucket) → item → weighted count.
    trending: HashMap<(String, i64), HashMap<String, f64>>,
    /// Applied ids and when they were applied, oldest first, for expiry.
    applied: HashSet<String>,
    applied_order: VecDeque<(Instant, String)>,
    newest_bucket: i64,
}

/// See the module docs.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn push_bounded<T>(list: &mut VecDeque<T>, value: T, max: usize) {
    list.push_front(value);
    list.truncate(max);
}

impl State {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.applied_order.front() {
            if now.duration_since(*at) < IDEMPOTENCE_TTL {
                break;
            }
            if let Some((_, id)) = self.applied_order.pop_front() {
                self.applied.remove(&id);
            }
        }
        let oldest = self.newest_bucket - fresh::MAX_WINDOW_MS / fresh::BUCKET_MS;
        self.trending.retain(|(_, bucket), _| *bucket >= oldest);
    }

    fn apply(&mut self, event: &Event) {
        match (event.action, &event.item_id, &event.target) {
            (Action::Follow, _, Some(target)) => {
                self.follows
                    .entry(event.user_id.clone())
                    .or_default()
                    .insert(target.clone());
            }
            (Action::Unfollow, _, Some(target)) => {
                if let Some(set) = self.follows.get_mut(&event.user_id) {
                    set.remove(target);
                }
            }
            (_, Some(item), _) => {
                let weight = event.effective_weight();
                push_bounded(
                    self.history.entry(event.user_id.clone()).or_default(),
                    item.clone(),
                    HISTORY_MAX,
                );
                push_bounded(
                    self.engagements.entry(event.user_id.clone()).or_default(),
                    Engagement {
                        item_id: item.clone(),
                        ts_ms: event.ts,
                        weight,
                    },
                    ENGAGEMENTS_MAX,
                );
                let bucket = fresh::bucket_of(event.ts);
                self.newest_bucket = self.newest_bucket.max(bucket);
                for segment in event.segments() {
                    *self
                        .trending
                        .entry((segment, bucket))
                        .or_default()
                        .entry(item.clone())
                        .or_default() += f64::from(weight);
                }
            }
            // The parser guarantees an item on engagements and a target on edges.
            _ => {}
        }
    }
}

impl SignalStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn append<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<Appended>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut state = self.lock();
            state.expire(now);
            let mut appended = Appended::default();
            for event in in_time_order(events) {
                if !state.applied.insert(event.id.clone()) {
                    appended.duplicates += 1;
                    continue;
                }
                state.applied_order.push_back((now, event.id.clone()));
                state.apply(event);
                appended.stored += 1;
            }
            Ok(appended)
        })
    }

    fn history<'a>(&'a self, user: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .history
                .get(user)
                .map(|h| h.iter().take(limit).cloned().collect())
                .unwrap_or_default())
        })
    }

    fn following<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<String>>> {
        Box::pin(async move {
            Ok(self
                .lock()
                .follows
                .get(user)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn engagements<'a>(
        &'a self,
        users: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Vec<Engagement>>>> {
        Box::pin(async move {
            let state = self.lock();
            Ok(users
                .iter()
                .map(|u| {
                    state
                        .engagements
                        .get(u)
                        .map(|e| e.iter().take(limit).cloned().collect())
                        .unwrap_or_default()
                })
                .collect())
        })
    }

    fn trending<'a>(
        &'a self,
        segment: &'a str,
        now_ms: i64,
        window: Window,
        k: usize,
    ) -> BoxFuture<'a, Result<Vec<(String, f64)>>> {
        Box::pin(async move {
            let state = self.lock();
            let buckets: Vec<(f64, Vec<(String, f64)>)> =
                fresh::window(now_ms, window.window_ms, window.half_life_ms)
                    .into_iter()
                    .filter_map(|(bucket, weight)| {
                        state
                            .trending
                            .get(&(segment.to_string(), bucket))
                            .map(|counts| {
                                (
                                    weight,
                                    counts.iter().map(|(i, c)| (i.clone(), *c)).collect(),
                                )
                            })
                    })
                    .collect();
            Ok(fresh::combine(
                buckets.iter().map(|(w, c)| (*w, c.as_slice())),
                k,
            ))
        })
    }
}
