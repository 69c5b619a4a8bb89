//! Social recall: what the user's strongest friends engaged with. An item scores
//! `Σ strength(friend) · 0.5^(age / halfLife)` over the first `maxFriends` friends (strongest
//! first) who engaged with it. Ages are measured from the bundle's reference time — the latest
//! training interaction, see [`crate::clock`] — so a bundle trained on old data keeps its
//! shape instead of decaying to zero against today's clock; engagements without a timestamp
//! count fully. The user's own history is not recalled. An unknown user, or one without
//! friends, gets no candidates.

use kan_api::crd::SocialSettings;

use crate::CsrRef;
use crate::rank::{Hit, with_scores};

/// Decay factor of an engagement at `ts` seen at `now`; unknown times (0) count fully, and
/// engagements after `now` are not boosted.
pub fn decay(ts: i64, now: i64, half_life_secs: f64) -> f32 {
    if ts <= 0 || half_life_secs <= 0.0 {
        return 1.0;
    }
    let age = now.saturating_sub(ts).max(0) as f64;
    0.5f64.powf(age / half_life_secs) as f32
}

/// The users' engagements: item lists (most recent first) and a parallel array of timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Engagements<'a> {
    pub items: CsrRef<'a>,
    pub timestamps: &'a [i64],
}

/// A user's friend graph: friend lists (strongest first) and a parallel array of tie strengths.
#[derive(Debug, Clone, Copy)]
pub struct Friends<'a> {
    pub friends: CsrRef<'a>,
    pub strength: &'a [f32],
}

/// One request: the user (None when unknown), their history and the items not to return.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: Option<u32>,
    pub history: &'a [u32],
    pub excluded: &'a [u32],
    /// Unix seconds engagements are aged from (see [`crate::clock::now`]).
    pub now: i64,
    pub k: usize,
}

/// One fresh engagement of a friend, read from the online store (not the bundle).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FreshEngagement {
    pub item: u32,
    /// Unix seconds.
    pub ts: i64,
    /// The event's weight (its action's default unless the caller set one).
    pub weight: f32,
}

/// A friend's fresh engagements with the tie strength they count with.
#[derive(Debug, Clone, Copy)]
pub struct FreshFriend<'a> {
    pub strength: f32,
    pub engagements: &'a [FreshEngagement],
}

/// What happened since the bundle was trained: fresh engagements are aged from the wall clock
/// `now` (they are real time), the bundle's from its reference time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fresh<'a> {
    pub friends: &'a [FreshFriend<'a>],
    /// Wall-clock unix seconds.
    pub now: i64,
}

/// The `k` best items for the request's user, best first.
pub fn recall(
    graph: Friends<'_>,
    engagements: Engagements<'_>,
    settings: &SocialSettings,
    request: Request<'_>,
) -> Vec<Hit> {
    recall_with_fresh(graph, engagements, settings, request, Fresh::default())
}

/// [`recall`] with the friends' fresh engagements added to the same sums: an item scores
/// `Σ strength · weight · 0.5^(age / halfLife)` over its fresh engagements on top of the bundle's
/// score. A user the bundle does not know still gets the items of the friends they follow in
/// the store.
pub fn recall_with_fresh(
    graph: Friends<'_>,
    engagements: Engagements<'_>,
    settings: &SocialSettings,
    request: Request<'_>,
    fresh: Fresh<'_>,
) -> Vec<Hit> {
    if request.user.is_none() && fresh.friends.is_empty() {
        return Vec::new();
    }
    let half_life_secs = settings.half_life_hours * 3600.0;
    let range = request
        .user
        .map_or(0..0, |user| graph.friends.range(user as usize));
    let n = range.len().min(settings.max_friends.max(1) as usize);
    let friends = &graph.friends.columns[range.clone()][..n];
    let strength = graph.strength.get(range).unwrap_or_default();
    with_scores(|scores| {
        for (&friend, &s) in friends.iter().zip(strength) {
            let rows = engagements.items.range(friend as usize);
            let times = engagements.timestamps.get(rows.clone()).unwrap_or_default();
            for (&item, &ts) in engagements.items.columns[rows].iter().zip(times) {
                let w = s * decay(ts, request.now, half_life_secs);
                if w.is_finite() {
                    scores.add(item, w);
                }
            }
        }
        for friend in fresh.friends {
            for e in friend.engagements {
                let w = friend.strength * e.weight * decay(e.ts, fresh.now, half_life_secs);
                if w.is_finite() {
                    scores.add(e.item, w);
                }
            }
        }
        for &item in request.history.iter().chain(request.excluded) {
            scores.remove(item);
        }
        scores.top_k(request.k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;

    const DAY: i64 = 86_400;
    /// 1998-01-01: the age of ML-100K's engagements.
    const OLD: i64 = 883_612_800;

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

    // u0's friends: u1 (strength 1.0) and u2 (0.5). u1 engaged with 10 (a day before the
    // reference time) and 11 (at it); u2 with 11 and 12 (at it); u0 has 12 already.
    const REFERENCE: i64 = OLD + 100 * DAY;
    const FRIEND_OFFSETS: [usize; 4] = [0, 2, 2, 2];
    const FRIENDS: [u32; 2] = [1, 2];
    const STRENGTH: [f32; 2] = [1.0, 0.5];
    const HISTORY_OFFSETS: [usize; 4] = [0, 1, 3, 5];
    const HISTORY_ITEMS: [u32; 5] = [12, 11, 10, 11, 12];
    const TIMES: [i64; 5] = [
        REFERENCE - DAY,
        REFERENCE,
        REFERENCE - DAY,
        REFERENCE,
        REFERENCE,
    ];

    #[test]
    fn a_fresh_engagement_of_a_followed_friend_is_recalled_even_for_a_user_the_bundle_lacks() {
        let empty = Friends {
            friends: CsrRef {
                offsets: &[0],
                columns: &[],
            },
            strength: &[],
        };
        let none = Engagements {
            items: CsrRef {
                offsets: &[0],
                columns: &[],
            },
            timestamps: &[],
        };
        let settings = SocialSettings {
            max_friends: 10,
            half_life_hours: 1.0,
        };
        let now = 1_790_000_000;
        let engaged = [
            FreshEngagement {
                item: 7,
                ts: now,
                weight: 2.0,
            },
            FreshEngagement {
                item: 8,
                ts: now - 3600,
                weight: 2.0,
            },
            FreshEngagement {
                item: 9,
                ts: now,
                weight: 1.0,
            },
        ];
        let friends = [FreshFriend {
            strength: 1.0,
            engagements: &engaged,
        }];
        let request = Request {
            user: None,
            history: &[9],
            excluded: &[],
            now: 0,
            k: 10,
        };
        let fresh = Fresh {
            friends: &friends,
            now,
        };
        let hits = recall_with_fresh(empty, none, &settings, request, fresh);
        // 7: weight 2, now; 8: weight 2, one half-life old; 9 is the user's own history.
        assert_eq!(
            hits,
            [
                Hit {
                    item: 7,
                    score: 2.0
                },
                Hit {
                    item: 8,
                    score: 1.0
                }
            ]
        );
        assert!(recall_with_fresh(empty, none, &settings, request, Fresh::default()).is_empty());
    }

    #[test]
    fn old_training_data_aged_from_its_reference_time_scores_above_zero() {
        let graph = Friends {
            friends: CsrRef {
                offsets: &FRIEND_OFFSETS,
                columns: &FRIENDS,
            },
            strength: &STRENGTH,
        };
        let engagements = Engagements {
            items: CsrRef {
                offsets: &HISTORY_OFFSETS,
                columns: &HISTORY_ITEMS,
            },
            timestamps: &TIMES,
        };
        let settings = SocialSettings {
            max_friends: 10,
            half_life_hours: 24.0,
        };
        let now = clock::now(clock::reference_time(TIMES), 1_790_000_000);
        let request = Request {
            user: Some(0),
            history: &[12],
            excluded: &[],
            now,
            k: 10,
        };
        let hits = recall(graph, engagements, &settings, request);
        // 11: 1.0 (u1, now) + 0.5 (u2, now); 10: 1.0 · ½ (a day old).
        assert_eq!(
            hits,
            [
                Hit {
                    item: 11,
                    score: 1.5
                },
                Hit {
                    item: 10,
                    score: 0.5
                }
            ]
        );
        // Aged from a 2026 wall clock instead, every score underflows to zero: the bug.
        let today = Request {
            now: 1_790_000_000,
            ..request
        };
        let stale = recall(graph, engagements, &settings, today);
        assert!(stale.iter().all(|h| h.score == 0.0), "{stale:?}");
        let one = SocialSettings {
            max_friends: 1,
            ..settings
        };
        let nearest = recall(graph, engagements, &one, request);
        assert_eq!(nearest.len(), 2, "u2 is past max_friends: {nearest:?}");
        assert!(
            recall(
                graph,
                engagements,
                &settings,
                Request {
                    user: None,
                    ..request
                }
            )
            .is_empty()
        );
        assert!(
            recall(
                graph,
                engagements,
                &settings,
                Request {
                    user: Some(9),
                    ..request
                }
            )
            .is_empty()
        );
    }
}
