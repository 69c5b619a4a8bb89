//! Per-user interaction histories (CSR), most recent first — the layout of
//! `bundle::files::USER_HISTORY`.

use crate::data::Interaction;

/// Users' items, most recent first (ties broken by later file position first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub offsets: Vec<usize>,
    pub items: Vec<u32>,
    pub ts: Vec<i64>,
}

impl History {
    pub fn build(rows: &[Interaction], n_users: usize) -> Self {
        let mut sorted: Vec<&Interaction> = rows.iter().collect();
        sorted.sort_by(|a, b| {
            a.user
                .cmp(&b.user)
                .then(b.ts.cmp(&a.ts))
                .then(b.seq.cmp(&a.seq))
        });
        let mut offsets = vec![0usize; n_users + 1];
        for r in &sorted {
            offsets[r.user as usize + 1] += 1;
        }
        for u in 0..n_users {
            offsets[u + 1] += offsets[u];
        }
        History {
            offsets,
            items: sorted.iter().map(|r| r.item).collect(),
            ts: sorted.iter().map(|r| r.ts).collect(),
        }
    }

    pub fn n_users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// A user's items, most recent first; empty for unknown users.
    pub fn items(&self, user: usize) -> &[u32] {
        if user + 1 >= self.offsets.len() {
            return &[];
        }
        &self.items[self.offsets[user]..self.offsets[user + 1]]
    }

    pub fn times(&self, user: usize) -> &[i64] {
        if user + 1 >= self.offsets.len() {
            return &[];
        }
        &self.ts[self.offsets[user]..self.offsets[user + 1]]
    }

    /// Users of each item (the transpose), for item-side statistics.
    pub fn item_users(&self, n_items: usize) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); n_items];
        for u in 0..self.n_users() {
            for &i in self.items(u) {
                out[i as usize].push(u as u32);
            }
        }
        out
    }

    /// Interactions per item.
    pub fn item_counts(&self, n_items: usize) -> Vec<u32> {
        let mut c = vec![0u32; n_items];
        for &i in &self.items {
            c[i as usize] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(user: u32, item: u32, ts: i64, seq: u32) -> Interaction {
        Interaction {
            user,
            item,
            ts,
            weight: 1.0,
            seq,
        }
    }

    #[test]
    fn histories_are_most_recent_first_with_file_order_breaking_ties() {
        let rows = [
            it(1, 5, 10, 0),
            it(0, 7, 3, 1),
            it(1, 6, 30, 2),
            it(1, 8, 10, 3),
        ];
        let h = History::build(&rows, 3);
        assert_eq!(h.offsets, [0, 1, 4, 4]);
        assert_eq!(h.items(1), [6, 8, 5]);
        assert_eq!(h.times(1), [30, 10, 10]);
        assert!(h.items(2).is_empty() && h.items(99).is_empty());
        assert_eq!(h.item_counts(9)[5], 1);
        assert_eq!(h.item_users(9)[6], [1]);
    }
}
