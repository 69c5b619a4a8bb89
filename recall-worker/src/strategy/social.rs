//! Social recall over the bundle's friend graph and stored engagements; the kernel is the
//! core's [`kan_core::social::recall`], the one `kan eval` scores. Engagements are aged from the
//! bundle's `params.reference_time` (the latest training interaction), so a bundle trained on
//! old data keeps its shape; a bundle without one is aged from the wall clock. Cold start: an
//! unknown user or one without friends gets no candidates.
//!
//! With an online store (`spec.signals`), the friends' fresh engagements join the bundle's in
//! the same sums ([`kan_core::social::recall_with_fresh`]): the bundle's friends plus the users
//! the user follows in the store (tie strength 1), each with their latest
//! [`FRESH_PER_FRIEND`] engagements aged from the wall clock. A user the bundle does not know
//! gets their followees' items. Store down: the bundle's answer, marked degraded.

use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::SocialSettings;
use kan_core::social::{self as kernel, Fresh, FreshEngagement, FreshFriend, Friends, Request};

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr, parallel};
use crate::error::{Error, Result};
use crate::index::Hit;

/// Fresh engagements read per friend.
pub const FRESH_PER_FRIEND: usize = 50;

pub struct Social {
    bundle: Arc<Bundle>,
    friends: Csr,
    strength: Vec<f32>,
    settings: SocialSettings,
}

impl Social {
    pub fn new(bundle: Arc<Bundle>, settings: &SocialSettings) -> Result<Self> {
        if bundle.history.is_none() {
            return Err(Error::Bundle(format!(
                "a social bundle needs {} (the friends' engagements)",
                files::USER_HISTORY
            )));
        }
        let file = bundle.tensors(files::FRIENDS)?;
        let users = bundle.users.len();
        let friends = file.csr(users, "friends", users)?;
        let strength = parallel(&file, "strength", file.f32_1d("strength")?, &friends)?;
        Ok(Self {
            bundle,
            friends,
            strength,
            settings: settings.clone(),
        })
    }
}

impl Strategy for Social {
    fn name(&self) -> &'static str {
        "social"
    }

    fn catalogue(&self) -> &Catalogue {
        &self.bundle.items
    }

    fn recall<'a>(&'a self, query: &'a Query<'a>) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move {
            let Some(history) = self.bundle.history.as_ref() else {
                return Ok(Vec::new());
            };
            let excluded: Vec<u32> = query.exclude.iter().copied().collect();
            let graph = Friends {
                friends: self.friends.view(),
                strength: &self.strength,
            };
            let request = Request {
                user: query.user,
                history: &query.history,
                excluded: &excluded,
                now: kan_core::clock::now(self.bundle.reference_time(), query.now),
                k: query.k,
            };
            let fresh = self.fresh_friends(query).await;
            let friends: Vec<FreshFriend<'_>> = fresh
                .iter()
                .map(|(strength, engagements)| FreshFriend {
                    strength: *strength,
                    engagements,
                })
                .collect();
            Ok(kernel::recall_with_fresh(
                graph,
                history.engagements(),
                &self.settings,
                request,
                Fresh {
                    friends: &friends,
                    now: query.now,
                },
            ))
        })
    }
}

impl Social {
    /// The friends' fresh engagements (tie strength, engagements in the bundle's item space);
    /// empty without a store or when it is down.
    async fn fresh_friends(&self, query: &Query<'_>) -> Vec<(f32, Vec<FreshEngagement>)> {
        let Some(fresh) = query.fresh else {
            return Vec::new();
        };
        let max = self.settings.max_friends.max(1) as usize;
        let mut friends: Vec<(String, f32)> = Vec::new();
        if let Some(user) = query.user {
            let range = self.friends.view().range(user as usize);
            let ids = self.friends.row(user as usize).iter().take(max);
            for (&friend, &strength) in ids.zip(self.strength.get(range).unwrap_or_default()) {
                if let Some(id) = self.bundle.users.id(friend) {
                    friends.push((id.to_string(), strength));
                }
            }
        }
        let Some(followed) = fresh.read(fresh.store().following(query.user_id)).await else {
            return Vec::new();
        };
        let mut followed: Vec<String> = followed
            .into_iter()
            .filter(|f| f != query.user_id && !friends.iter().any(|(id, _)| id == f))
            .collect();
        followed.sort();
        friends.extend(followed.into_iter().take(max).map(|f| (f, 1.0)));
        if friends.is_empty() {
            return Vec::new();
        }
        let ids: Vec<String> = friends.iter().map(|(id, _)| id.clone()).collect();
        let Some(lists) = fresh
            .read(fresh.store().engagements(&ids, FRESH_PER_FRIEND))
            .await
        else {
            return Vec::new();
        };
        let catalogue = &self.bundle.items;
        friends
            .iter()
            .zip(lists)
            .map(|((_, strength), list)| {
                let engagements = list
                    .iter()
                    .filter_map(|e| {
                        catalogue.get(&e.item_id).map(|item| FreshEngagement {
                            item,
                            ts: e.ts_ms.div_euclid(1000),
                            weight: e.weight,
                        })
                    })
                    .collect();
                (*strength, engagements)
            })
            .collect()
    }
}
