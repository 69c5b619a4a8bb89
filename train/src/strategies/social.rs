//! `social`: what a user's friends engaged with recently, weighted by tie strength.
//! Tie strength = EXPLICIT_WEIGHT for a declared friendship + cosine co-engagement of the two
//! users' item sets. Data without a friend graph (ML-100K, Gowalla here) gets a derived
//! co-engagement graph: the most similar users act as "friends", and the manifest says so.
//! Recall is the worker's: the core's kernel ([`kan_core::social::recall`]) with the queue's
//! settings, engagements aged from the reference time recorded in the manifest.

use kan_api::bundle::{files, params};
use kan_api::crd::SocialSettings;
use kan_core::social::{Engagements, Friends, Request};
use rayon::prelude::*;
use serde_json::json;

use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter, Tensor};
use crate::error::{Error, Result};
use crate::history::History;

pub const MAX_FRIENDS: usize = 50;
pub const EXPLICIT_WEIGHT: f32 = 1.0;
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
}

/// Friends of every user, strongest first: explicit edges plus cosine co-engagement.
pub fn friends(
    history: &History,
    n_items: usize,
    explicit: &[(u32, u32)],
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
                            EXPLICIT_WEIGHT
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

pub fn train(ctx: &Context) -> Result<Social> {
    let pb = ctx.progress.bar(1, "social ties");
    let rows = friends(
        ctx.history,
        ctx.ds.n_items(),
        &ctx.ds.social_edges,
        MAX_FRIENDS,
    );
    pb.finish();
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
    Ok(Social {
        n_items: ctx.ds.n_items(),
        friend_graph,
        offsets,
        friends,
        strength,
        history: ctx.history.clone(),
        reference_time: kan_core::clock::reference_time(ctx.split.train.iter().map(|r| r.ts)),
        settings: SocialSettings::default(),
    })
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
        )
    }

    fn params(&self) -> serde_json::Value {
        json!({"friend_graph": self.friend_graph, "tie_strength": "explicit_weight * declared + cosine co-engagement",
               "explicit_weight": EXPLICIT_WEIGHT, "max_friends": MAX_FRIENDS,
               params::REFERENCE_TIME: self.reference_time})
    }
}

impl Social {
    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let t = b.tensors(files::FRIENDS)?;
        let offsets: Vec<usize> = t.i64("offsets")?.iter().map(|&o| o as usize).collect();
        let friends: Vec<u32> = t.i64("friends")?.iter().map(|&o| o as u32).collect();
        let strength = t.f32("strength")?.1.to_vec();
        if offsets.last() != Some(&friends.len()) || strength.len() != friends.len() {
            return Err(Error::Bundle {
                dir: b.dir.clone(),
                problem: "friends CSR is inconsistent".into(),
            });
        }
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
            history: super::read_history(b)?,
            reference_time: b.manifest.params[params::REFERENCE_TIME].as_i64(),
            settings: SocialSettings::default(),
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
        let f = friends(&h, 6, &[(0, 2)], 10);
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
