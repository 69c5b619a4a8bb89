//! Train/validation/test splits. Pure functions: interactions in, three disjoint parts out,
//! every interaction in exactly one part.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::{Dataset, Interaction};
use crate::error::{Error, Result};

/// How to split a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitSpec {
    /// Use the dataset's own test split; carve `valid_fraction` of each user's training
    /// interactions (at random) as validation.
    Provided { valid_fraction: f64 },
    /// Per user, by time: the last `n` interactions are test, the `n` before them validation.
    Temporal { n: usize },
    /// Per user, at random: train/valid/test in the given proportions (e.g. 0.8/0.1/0.1).
    Random { train: f64, valid: f64 },
    /// Cold items: a random `fraction` of the items is held out entirely — every interaction
    /// with one is test — and the rest split per user at random 9:1 into train and validation.
    /// Recall on this test measures recalling items nobody engaged with in training.
    ColdItems { fraction: f64 },
}

/// Validation share of the warm interactions in a [`SplitSpec::ColdItems`] split.
pub const COLD_VALID_FRACTION: f64 = 0.1;

impl SplitSpec {
    /// Parses `provided`, `provided:0.1`, `temporal:1`, `random` (8:1:1), `random:0.8:0.1`,
    /// `cold` (10 % of items held out) or `cold:0.2`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidInput(format!(
                "unknown split `{s}`: use provided[:VALID_FRACTION], temporal[:N], random[:TRAIN:VALID] or cold[:ITEM_FRACTION]"
            ))
        };
        let num = |v: &str| v.parse::<f64>().map_err(|_| bad());
        let parts: Vec<&str> = s.split(':').collect();
        let spec = match parts.as_slice() {
            ["provided"] => SplitSpec::Provided {
                valid_fraction: 0.1,
            },
            ["provided", f] => SplitSpec::Provided {
                valid_fraction: num(f)?,
            },
            ["temporal"] => SplitSpec::Temporal { n: 1 },
            ["temporal", n] => SplitSpec::Temporal {
                n: n.parse().map_err(|_| bad())?,
            },
            ["random"] => SplitSpec::Random {
                train: 0.8,
                valid: 0.1,
            },
            ["random", t, v] => SplitSpec::Random {
                train: num(t)?,
                valid: num(v)?,
            },
            ["cold"] => SplitSpec::ColdItems { fraction: 0.1 },
            ["cold", f] => SplitSpec::ColdItems { fraction: num(f)? },
            _ => return Err(bad()),
        };
        let ok = match spec {
            SplitSpec::Provided { valid_fraction } => (0.0..1.0).contains(&valid_fraction),
            SplitSpec::Temporal { n } => n > 0,
            SplitSpec::Random { train, valid } => {
                train > 0.0 && valid >= 0.0 && train + valid <= 1.0
            }
            SplitSpec::ColdItems { fraction } => fraction > 0.0 && fraction < 1.0,
        };
        if !ok {
            return Err(Error::InvalidInput(format!(
                "split `{s}` has out-of-range numbers"
            )));
        }
        Ok(spec)
    }

    /// The default for a dataset: its own split when it has one, else random 8:1:1.
    pub fn default_for(ds: &Dataset) -> Self {
        if ds.provided_test.is_some() {
            SplitSpec::Provided {
                valid_fraction: 0.1,
            }
        } else {
            SplitSpec::Random {
                train: 0.8,
                valid: 0.1,
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SplitSpec::Provided { valid_fraction } => {
                format!("provided (valid {valid_fraction} of train)")
            }
            SplitSpec::Temporal { n } => format!("temporal leave-last-{n}-out"),
            SplitSpec::Random { train, valid } => {
                format!("random per user {train}:{valid}:{:.2}", 1.0 - train - valid)
            }
            SplitSpec::ColdItems { fraction } => {
                format!("cold items: {fraction} of items held out as test, the rest 9:1 per user")
            }
        }
    }
}

/// The three parts of a split.
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub train: Vec<Interaction>,
    pub valid: Vec<Interaction>,
    pub test: Vec<Interaction>,
}

/// Splits a dataset; reproducible for a seed.
pub fn split(ds: &Dataset, spec: SplitSpec, seed: u64) -> Result<Split> {
    let mut rng = StdRng::seed_from_u64(seed);
    match spec {
        SplitSpec::Provided { valid_fraction } => {
            let test = ds.provided_test.clone().ok_or_else(|| {
                Error::InvalidInput(format!(
                    "dataset {} has no provided test split: use --split random or temporal",
                    ds.name
                ))
            })?;
            let mut out = Split {
                test,
                ..Split::default()
            };
            for mut rows in per_user(&ds.interactions, ds.n_users()) {
                rows.shuffle(&mut rng);
                let n_valid = ((rows.len() as f64) * valid_fraction).floor() as usize;
                let n_valid = n_valid.min(rows.len().saturating_sub(1));
                out.valid.extend_from_slice(&rows[..n_valid]);
                out.train.extend_from_slice(&rows[n_valid..]);
            }
            Ok(out)
        }
        SplitSpec::Temporal { n } => {
            let mut out = Split::default();
            for mut rows in per_user(&ds.interactions, ds.n_users()) {
                rows.sort_by_key(|r| (r.ts, r.seq));
                let (rest, test) = take_last(&rows, n);
                let (train, valid) = take_last(rest, n);
                out.train.extend_from_slice(train);
                out.valid.extend_from_slice(valid);
                out.test.extend_from_slice(test);
            }
            Ok(out)
        }
        SplitSpec::Random { train, valid } => {
            let mut out = Split::default();
            for mut rows in per_user(&ds.interactions, ds.n_users()) {
                rows.shuffle(&mut rng);
                let len = rows.len();
                // The epsilon keeps 10 × 0.1 from flooring to 0 after float rounding.
                let n_valid = ((len as f64) * valid + 1e-9).floor() as usize;
                let n_test = ((len as f64) * (1.0 - train - valid) + 1e-9).floor() as usize;
                // Every user keeps at least one training interaction.
                let (n_valid, n_test) = shrink_to_keep_one(len, n_valid, n_test);
                let n_train = len - n_valid - n_test;
                out.train.extend_from_slice(&rows[..n_train]);
                out.valid
                    .extend_from_slice(&rows[n_train..n_train + n_valid]);
                out.test.extend_from_slice(&rows[n_train + n_valid..]);
            }
            Ok(out)
        }
        SplitSpec::ColdItems { fraction } => {
            let mut items: Vec<u32> = (0..ds.n_items() as u32).collect();
            items.shuffle(&mut rng);
            let n_cold = ((items.len() as f64) * fraction).round() as usize;
            let mut cold = vec![false; ds.n_items()];
            for &i in &items[..n_cold.min(items.len())] {
                cold[i as usize] = true;
            }
            let mut out = Split::default();
            let (held, warm): (Vec<Interaction>, Vec<Interaction>) =
                ds.interactions.iter().partition(|r| cold[r.item as usize]);
            out.test = held;
            for mut rows in per_user(&warm, ds.n_users()) {
                rows.shuffle(&mut rng);
                let n_valid = ((rows.len() as f64) * COLD_VALID_FRACTION).floor() as usize;
                let n_valid = n_valid.min(rows.len().saturating_sub(1));
                out.valid.extend_from_slice(&rows[..n_valid]);
                out.train.extend_from_slice(&rows[n_valid..]);
            }
            Ok(out)
        }
    }
}

/// Takes the last `n` rows off, leaving at least one row in front.
fn take_last(rows: &[Interaction], n: usize) -> (&[Interaction], &[Interaction]) {
    let k = n.min(rows.len().saturating_sub(1));
    rows.split_at(rows.len() - k)
}

fn shrink_to_keep_one(len: usize, mut valid: usize, mut test: usize) -> (usize, usize) {
    while len > 0 && valid + test >= len {
        if valid >= test && valid > 0 {
            valid -= 1;
        } else {
            test -= 1;
        }
    }
    (valid, test)
}

/// Interactions grouped by user, each group in input order.
fn per_user(rows: &[Interaction], n_users: usize) -> Vec<Vec<Interaction>> {
    let mut by_user = vec![Vec::new(); n_users];
    for r in rows {
        by_user[r.user as usize].push(*r);
    }
    by_user
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::IdMap;

    fn toy(per_user: &[usize]) -> Dataset {
        let mut ds = Dataset::default();
        for (u, &n) in per_user.iter().enumerate() {
            let user = ds.users.intern(&format!("u{u}"));
            for k in 0..n {
                let item = ds.items.intern(&format!("i{k}"));
                let seq = ds.interactions.len() as u32;
                ds.interactions.push(Interaction {
                    user,
                    item,
                    ts: (100 - k) as i64,
                    weight: 1.0,
                    seq,
                });
            }
        }
        ds
    }

    fn key(r: &Interaction) -> (u32, u32) {
        (r.user, r.item)
    }

    fn assert_conserves(ds: &Dataset, s: &Split) {
        let mut all: Vec<_> = s
            .train
            .iter()
            .chain(&s.valid)
            .chain(&s.test)
            .map(key)
            .collect();
        let mut want: Vec<_> = ds.interactions.iter().map(key).collect();
        all.sort();
        want.sort();
        assert_eq!(all, want, "every interaction lands in exactly one part");
    }

    #[test]
    fn a_cold_item_split_holds_out_every_interaction_of_a_tenth_of_the_items() {
        let ds = toy(&[20, 20, 15, 12]);
        let spec = SplitSpec::parse("cold").unwrap();
        let s = split(&ds, spec, 3).unwrap();
        assert_conserves(&ds, &s);
        let test_items: std::collections::HashSet<u32> = s.test.iter().map(|r| r.item).collect();
        assert_eq!(test_items.len(), 2, "10% of 20 items");
        assert!(
            s.train
                .iter()
                .chain(&s.valid)
                .all(|r| !test_items.contains(&r.item)),
            "a held-out item is never seen in training or validation"
        );
        assert!(!s.valid.is_empty());
        let again = split(&ds, spec, 3).unwrap();
        assert_eq!(again.test, s.test);
        assert!(SplitSpec::parse("cold:1.5").is_err());
    }

    #[test]
    fn random_split_is_8_1_1_per_user_conserves_rows_and_is_reproducible() {
        let ds = toy(&[10, 20, 3, 1]);
        let s = split(
            &ds,
            SplitSpec::Random {
                train: 0.8,
                valid: 0.1,
            },
            7,
        )
        .unwrap();
        assert_conserves(&ds, &s);
        assert_eq!(
            (s.train.len(), s.valid.len(), s.test.len()),
            (8 + 16 + 3 + 1, 1 + 2, 1 + 2)
        );
        let again = split(
            &ds,
            SplitSpec::Random {
                train: 0.8,
                valid: 0.1,
            },
            7,
        )
        .unwrap();
        assert_eq!(
            s.test.iter().map(key).collect::<Vec<_>>(),
            again.test.iter().map(key).collect::<Vec<_>>()
        );
        let other = split(
            &ds,
            SplitSpec::Random {
                train: 0.8,
                valid: 0.1,
            },
            8,
        )
        .unwrap();
        assert_ne!(
            s.test.iter().map(key).collect::<Vec<_>>(),
            other.test.iter().map(key).collect::<Vec<_>>()
        );
    }

    #[test]
    fn temporal_split_holds_out_each_users_latest_interactions() {
        let ds = toy(&[5, 2, 1]);
        let s = split(&ds, SplitSpec::Temporal { n: 1 }, 0).unwrap();
        assert_conserves(&ds, &s);
        // ts decreases with k, so the latest interaction of each user is item i0.
        let test: Vec<_> = s
            .test
            .iter()
            .map(|r| (r.user, ds.items.id(r.item).to_string()))
            .collect();
        assert_eq!(test, [(0, "i0".to_string()), (1, "i0".to_string())]);
        let valid: Vec<_> = s
            .valid
            .iter()
            .map(|r| (r.user, ds.items.id(r.item).to_string()))
            .collect();
        assert_eq!(valid, [(0, "i1".to_string())]);
        assert_eq!(
            s.train.iter().filter(|r| r.user == 2).count(),
            1,
            "a one-interaction user keeps it for training"
        );
    }

    #[test]
    fn provided_split_keeps_the_test_set_and_carves_validation_from_train() {
        let mut ds = toy(&[10, 10]);
        ds.provided_test = Some(vec![Interaction {
            user: 0,
            item: 0,
            ts: 0,
            weight: 1.0,
            seq: 0,
        }]);
        let s = split(
            &ds,
            SplitSpec::Provided {
                valid_fraction: 0.2,
            },
            1,
        )
        .unwrap();
        assert_eq!(s.test.len(), 1);
        assert_eq!((s.train.len(), s.valid.len()), (16, 4));
        let _ = IdMap::default();
    }

    #[test]
    fn split_specs_parse_and_bad_ones_explain_the_syntax() {
        assert_eq!(
            SplitSpec::parse("random").unwrap(),
            SplitSpec::Random {
                train: 0.8,
                valid: 0.1
            }
        );
        assert_eq!(
            SplitSpec::parse("temporal:2").unwrap(),
            SplitSpec::Temporal { n: 2 }
        );
        assert_eq!(
            SplitSpec::parse("provided:0").unwrap(),
            SplitSpec::Provided {
                valid_fraction: 0.0
            }
        );
        let err = SplitSpec::parse("kfold").unwrap_err().to_string();
        assert!(err.contains("temporal[:N]"), "{err}");
        assert!(SplitSpec::parse("random:0.9:0.5").is_err());
    }

    #[test]
    fn asking_for_a_provided_split_on_data_without_one_is_an_error() {
        let ds = toy(&[3]);
        let err = split(
            &ds,
            SplitSpec::Provided {
                valid_fraction: 0.1,
            },
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no provided test split"), "{err}");
    }
}
