//! `social`: what a user's friends engaged with recently, weighted by tie strength.
//! Tie strength = `explicit_weight` for a declared friendship + cosine co-engagement of the two
//! users' item sets. The weight is `--param explicit_weight`, else chosen on the validation
//! part among 0 (declared friends count only by co-engagement) and a grid widened past its
//! edges ([`search_widening`]): a constant 1 put every declared friend above every
//! co-engagement neighbour, which lost on validation on two datasets. Data without a friend graph (ML-100K, Gowalla here) gets a derived
//! co-engagement graph: the most similar users act as "friends", and the manifest says so.
//! Recall is the worker's: the core's kernel ([`kan_core::social::recall`]) with the queue's
//! settings, engagements aged from the reference time recorded in the manifest.

use kan_api::bundle::{files, params};
use kan_api::crd::SocialSettings;
use kan_core::social::{Engagements, Friends, Request};
use rayon::prelude::*;
use serde_json::json;

use super::hyper::search_widening;
use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter, Tensor};
use crate::error::{Error, Result};
use crate::history::History;

pub const MAX_FRIENDS: usize = 50;
/// The weight of a declared friendship without a validation part to choose one on.
pub const EXPLICIT_WEIGHT: f32 = 1.0;
/// `--param` keys read by the social trainer.
pub const PARAMS: &[&str] = &["explicit_weight"];
/// Declared-friend weights tried on validation (besides 0), widened ×3 past an edge winner.
const EXPLICIT_GRID: [f64; 3] = [0.1, 0.3, 1.0];
const MAX_WIDENING: usize = 3;
/// Items engaged by more users than this carry little tie information and cost quadratic time.
pub const MAX_ITEM_USERS: usize = 2000;

pub struct Social {
    pub n_items: usize,
    pub friend_graph: &'static str,
    pub offsets: Vec<usize>,
    pub friends: Vec<u32>,
    pub strength: Vec<f32>,
    pub history: History,
    /// The latest training interaction, engagements are aged from (None: the data has no time).
    pub reference_time: Option<i64>,
    /// The queue settings recall runs with (the CRD defaults unless a RecallQueue gives them).
    pub settings: SocialSettings,
    /// The weight of a declared friendship in the tie strength.
    pub explicit_weight: f32,
    /// (weight, validation R@20) of each weight tried, when it was searched.
    pub search: Vec<(f64, f64)>,
}

/// Friends of every user, strongest first: explicit edges plus cosine co-engagement.
pub fn friends(
    history: &History,
    n_items: usize,
    explicit: &[(u32, u32)],
    explicit_weight: f32,
    max_friends: usize,
) -> Vec<Vec<(u32, f32)>> {
    let n_users = history.n_users();
    let item_users = history.item_users(n_items);
    let mut declared = vec![Vec::new(); n_users];
    for &(a, b) in explicit {
        if a != b && (a as usize) < n_users && (b as usize) < n_users {
            declared[a as usize].push(b);
        }
    }
    (0..n_users)
        .into_par_iter()
        .map_init(
            || (vec![0f32; n_users], Vec::<u32>::new()),
            |(acc, touched), u| {
                let mine = history.items(u);
                for &i in mine {
                    let users = &item_users[i as usize];
                    if users.len() > MAX_ITEM_USERS {
                        continue;
                    }
                    for &v in users {
                        if v as usize != u {
                            if acc[v as usize] == 0.0 {
                                touched.push(v);
                            }
                            acc[v as usize] += 1.0;
                        }
                    }
                }
                for &v in &declared[u] {
                    if acc[v as usize] == 0.0 {
                        touched.push(v);
                        // A marker below 1: `floor` below turns it back into a zero count.
                        acc[v as usize] = f32::MIN_POSITIVE;
                    }
                }
                let mut row: Vec<(u32, f32)> = touched
                    .iter()
                    .map(|&v| {
                        let theirs = history.items(v as usize).len();
                        let denom = ((mine.len() * theirs) as f32).sqrt();
                        let cos = if denom > 0.0 {
                            acc[v as usize].floor() / denom
                        } else {
                            0.0
                        };
                        let explicit = if declared[u].contains(&v) {
                            explicit_weight
                        } else {
                            0.0
                        };
                        (v, cos + explicit)
                    })
                    .collect();
                for &v in touched.iter() {
                    acc[v as usize] = 0.0;
                }
                touched.clear();
                row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                row.truncate(max_friends);
                row
            },
        )
        .collect()
}

/// The model with declared friendships weighted `explicit_weight`.
fn build(ctx: &Context, explicit_weight: f32) -> Social {
    let rows = friends(
        ctx.history,
        ctx.ds.n_items(),
        &ctx.ds.social_edges,
        explicit_weight,
        MAX_FRIENDS,
    );
    let mut offsets = vec![0usize];
    let (mut friends, mut strength) = (Vec::new(), Vec::new());
    for row in rows {
        for (v, s) in row {
            friends.push(v);
            strength.push(s);
        }
        offsets.push(friends.len());
    }
    let friend_graph = if ctx.ds.social_edges.is_empty() {
        "derived-co-engagement"
    } else {
        "explicit+co-engagement"
    };
    Social {
        n_items: ctx.ds.n_items(),
        friend_graph,
        offsets,
        friends,
        strength,
        history: ctx.history.clone(),
        reference_time: kan_core::clock::reference_time(ctx.split.train.iter().map(|r| r.ts)),
        settings: SocialSettings::default(),
        explicit_weight,
        search: Vec::new(),
    }
}

pub fn train(ctx: &Context) -> Result<Social> {
    let given = ctx.opts.params.f64("explicit_weight", f64::NAN);
    if given.is_finite() && given < 0.0 {
        return Err(Error::InvalidInput(format!(
            "--param explicit_weight={given}: must be 0 or more"
        )));
    }
    let pb = ctx.progress.bar(1, "social ties");
    // Given, or nothing to choose (no declared friends, no validation part): no search.
    if given.is_finite() || ctx.ds.social_edges.is_empty() || ctx.split.valid.is_empty() {
        let weight = if given.is_finite() {
            given
        } else {
            EXPLICIT_WEIGHT as f64
        };
        let model = build(ctx, weight as f32);
        pb.finish();
        return Ok(model);
    }
    let mut search = Vec::new();
    let mut score = |w: f64| -> Result<f64> {
        let m = crate::pipeline::validate_parts(
            ctx.ds,
            ctx.split,
            ctx.history,
            &build(ctx, w as f32),
            ctx.opts.seed,
        )?;
        let r20 = m.get("recall@20").copied().unwrap_or(0.0);
        tracing::info!(explicit_weight = w, r20, "social: declared-friend weight");
        search.push((w, r20));
        Ok(r20)
    };
    let without = score(0.0)?;
    let (with, r20) = search_widening(&EXPLICIT_GRID, 3.0, MAX_WIDENING, &mut score)?;
    let weight = if r20 > without { with } else { 0.0 };
    pb.finish();
    let mut model = build(ctx, weight as f32);
    search.sort_by(|a, b| a.0.total_cmp(&b.0));
    model.search = search;
    Ok(model)
}

impl Recaller for Social {
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let graph = Friends {
            friends: kan_core::CsrRef {
                offsets: &self.offsets,
                columns: &self.friends,
            },
            strength: &self.strength,
        };
        let engagements = Engagements {
            items: kan_core::CsrRef {
                offsets: &self.history.offsets,
                columns: &self.history.items,
            },
            timestamps: &self.history.ts,
        };
        let now = kan_core::clock::now(self.reference_time, wall_clock());
        Ok(recall_each(queries, |q| {
            let request = Request {
                user: q.user,
                history: q.history,
                excluded: q.exclude,
                now,
                k,
            };
            kan_core::social::recall(graph, engagements, &self.settings, request)
        }))
    }
}

/// Unix seconds now: what a bundle without a reference time is aged from, as online.
fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Model for Social {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        w.tensors(
            files::FRIENDS,
            &[
                (
                    "offsets".to_string(),
                    Tensor::i64(self.offsets.iter().map(|&o| o as i64).collect()),
                ),
                (
                    "friends".to_string(),
                    Tensor::i64(self.friends.iter().map(|&o| o as i64).collect()),
                ),
                ("strength".to_string(), Tensor::f32(self.strength.clone())),
            ],
        )?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        let mut p = json!({"friend_graph": self.friend_graph, "tie_strength": "explicit_weight * declared + cosine co-engagement",
               "explicit_weight": self.explicit_weight, "max_friends": MAX_FRIENDS,
               params::REFERENCE_TIME: self.reference_time});
        if !self.search.is_empty() {
            p["explicit_weight_search"] = json!(self.search);
        }
        p
    }
}

impl Social {
    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let users = b.lines(files::USERS)?.len();
        let t = b.tensors(files::FRIENDS)?;
        let csr = t.csr(users, "friends", users)?;
        let strength = kan_core::bundle::parallel(&t, "strength", t.f32_1d("strength")?, &csr)?;
        let (offsets, friends) = csr.into_parts();
        let friend_graph = match b.manifest.params["friend_graph"].as_str() {
            Some("derived-co-engagement") => "derived-co-engagement",
            _ => "explicit+co-engagement",
        };
        Ok(Social {
            n_items,
            friend_graph,
            offsets,
            friends,
            strength,
            history: super::read_history(b, users, n_items)?,
            reference_time: b.manifest.params[params::REFERENCE_TIME].as_i64(),
            settings: SocialSettings::default(),
            explicit_weight: b.manifest.params["explicit_weight"]
                .as_f64()
                .map_or(EXPLICIT_WEIGHT, |w| w as f32),
            search: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Interaction;

    #[test]
    fn tie_strength_adds_declared_friendship_to_cosine_co_engagement() {
        // u0 {0,1}, u1 {0,3}, u2 {5}; u0 declares u2 a friend.
        let rows: Vec<Interaction> = [(0, 0), (0, 1), (1, 0), (1, 3), (2, 5)]
            .iter()
            .enumerate()
            .map(|(n, &(user, item))| Interaction {
                user,
                item,
                ts: 0,
                weight: 1.0,
                seq: n as u32,
            })
            .collect();
        let h = History::build(&rows, 3);
        let f = friends(&h, 6, &[(0, 2)], 1.0, 10);
        assert_eq!(f[0][0].0, 2);
        assert!(
            (f[0][0].1 - 1.0).abs() < 1e-6,
            "declared, no shared items: {:?}",
            f[0]
        );
        assert_eq!(f[0][1], (1, 0.5), "one shared item of two each: cosine ½");
        assert_eq!(f[2], [], "u2 declared nobody and shares nothing");
    }
}
