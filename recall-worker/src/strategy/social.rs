//! Social recall: what the user's strongest friends engaged with recently. An item scores
//! `Σ strength(friend) · 0.5^(age / halfLife)` over the friends (at most `maxFriends`, strongest
//! first) who engaged with it; ages are measured from the bundle's `reference_time` (so offline
//! data keeps its shape), engagements without a timestamp count fully. The user's own history is
//! not recalled. Cold start: an unknown user or one without friends gets no candidates.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kan_api::bundle::files;
use kan_api::crd::SocialSettings;

use super::{Query, Strategy};
use crate::bundle::{Bundle, Catalogue, Csr, UserHistory, parallel};
use crate::error::{Error, Result};
use crate::index::{Hit, top_k};

pub struct Social {
    bundle: Arc<Bundle>,
    friends: Csr,
    strength: Vec<f32>,
    max_friends: usize,
    half_life_secs: f64,
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
            max_friends: settings.max_friends.max(1) as usize,
            half_life_secs: settings.half_life_hours * 3600.0,
        })
    }
}

/// Decay factor of an engagement at `ts` seen at `now`; unknown times (0) count fully.
pub fn decay(ts: i64, now: i64, half_life_secs: f64) -> f32 {
    if ts <= 0 || half_life_secs <= 0.0 {
        return 1.0;
    }
    let age = (now - ts).max(0) as f64;
    0.5f64.powf(age / half_life_secs) as f32
}

fn score(
    friends: &[u32],
    strength: &[f32],
    history: &UserHistory,
    now: i64,
    half_life_secs: f64,
) -> HashMap<u32, f32> {
    let mut scores: HashMap<u32, f32> = HashMap::new();
    for (&friend, &s) in friends.iter().zip(strength) {
        for (&item, &ts) in history.items(friend).iter().zip(history.timestamps(friend)) {
            *scores.entry(item).or_default() += s * decay(ts, now, half_life_secs);
        }
    }
    scores
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
            let (Some(user), Some(history)) = (query.user, self.bundle.history.as_ref()) else {
                return Ok(Vec::new());
            };
            let range = self.friends.range(user as usize);
            let n = range.len().min(self.max_friends);
            let friends = &self.friends.row(user as usize)[..n];
            let strength = &self.strength[range][..n];
            let now = self.bundle.reference_time().unwrap_or(query.now);
            let exclude = query.exclude_with_history();
            let scores = score(friends, strength, history, now, self.half_life_secs);
            let hits = scores
                .into_iter()
                .filter(|(i, _)| !exclude.contains(i))
                .map(|(item, score)| Hit { item, score });
            Ok(top_k(hits, query.k))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engagements_lose_half_their_weight_per_half_life() {
        assert_eq!(decay(1000, 1000 + 3600, 3600.0), 0.5);
        assert_eq!(
            decay(0, 5000, 3600.0),
            1.0,
            "unknown timestamps count fully"
        );
        assert_eq!(
            decay(9000, 5000, 3600.0),
            1.0,
            "future engagements are not boosted"
        );
    }
}
