//! Tiny synthetic data: users in communities that each prefer their own items, written in the
//! generic CSV export format.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;

pub const COMMUNITIES: usize = 4;
pub const USERS_PER_COMMUNITY: usize = 30;
pub const ITEMS_PER_COMMUNITY: usize = 12;

/// Writes interactions.csv, items.csv, users.csv and social.csv into `dir`.
pub fn write_communities(dir: &Path) {
    let mut inter = String::from("user_id,item_id,timestamp,weight\n");
    let mut social = String::from("user_id,friend_id\n");
    let mut users = String::from("user_id,region\n");
    let mut ts = 1_600_000_000i64;
    for c in 0..COMMUNITIES {
        for u in 0..USERS_PER_COMMUNITY {
            let user = format!("u{c}_{u}");
            let _ = writeln!(users, "{user},r{c}");
            let _ = writeln!(social, "{user},u{c}_{}", (u + 1) % USERS_PER_COMMUNITY);
            // Each user sees one global item, then 8 of the community's items (a rotating
            // window): the held-out (latest) item is a community item others have trained on.
            // (Were every user's latest item the global one, no training data would hold it.)
            ts += 60;
            let _ = writeln!(inter, "{user},hit,{ts},1");
            for k in 0..8 {
                ts += 60;
                let item = format!("i{c}_{}", (u + k) % ITEMS_PER_COMMUNITY);
                let _ = writeln!(inter, "{user},{item},{ts},1");
            }
        }
    }
    let mut items = String::from("item_id,categories,title\n");
    for c in 0..COMMUNITIES {
        for i in 0..ITEMS_PER_COMMUNITY {
            let _ = writeln!(items, "i{c}_{i},genre{c},Item {c}-{i}");
        }
    }
    let _ = writeln!(items, "hit,genre0|genre1,The Hit");
    std::fs::write(dir.join("interactions.csv"), inter).unwrap();
    std::fs::write(dir.join("items.csv"), items).unwrap();
    std::fs::write(dir.join("users.csv"), users).unwrap();
    std::fs::write(dir.join("social.csv"), social).unwrap();
}
