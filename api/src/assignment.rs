//! Deterministic A/B bucket assignment.
//!
//! `bucket = u64_be(sha256(salt ‖ 0x1F ‖ layer ‖ 0x1F ‖ user_id)[0..8]) mod 10000`.
//!
//! SHA-256 is slower than a non-cryptographic hash but is available everywhere (Python's
//! `hashlib`, SQL engines), so analysts can recompute assignments offline bit for bit. Layers
//! hash with their own name (and salt), which makes them independent; experiments of one layer
//! own disjoint bucket ranges, and arms split their experiment's range by cumulative weight, so a
//! weight change moves only the buckets between the old and new boundaries.

use sha2::{Digest, Sha256};

use crate::crd::{ArmBuckets, BucketRange};

/// Buckets per layer.
pub const BUCKETS: u32 = 10_000;

/// The bucket of a user in a layer.
pub fn bucket(salt: &str, layer: &str, user_id: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update([0x1F]);
    h.update(layer.as_bytes());
    h.update([0x1F]);
    h.update(user_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % BUCKETS as u64) as u32
}

/// Splits `range` between arms by their integer percent weights (which sum to 100), keeping
/// arm order: arm `i` gets `[start + len·W(i-1)/100, start + len·W(i)/100)` where `W` is the
/// cumulative weight.
pub fn split_range<'a>(
    range: BucketRange,
    arms: impl IntoIterator<Item = (&'a str, i32)>,
) -> Vec<ArmBuckets> {
    let len = range.len() as i64;
    let mut cumulative = 0i64;
    let mut out = Vec::new();
    for (name, weight) in arms {
        let lo = range.start as i64 + len * cumulative / 100;
        cumulative += weight.max(0) as i64;
        let hi = range.start as i64 + len * cumulative.min(100) / 100;
        out.push(ArmBuckets {
            arm: name.to_string(),
            range: BucketRange {
                start: lo as i32,
                end: hi as i32,
            },
        });
    }
    out
}

/// An overlap or salt mismatch between two experiments of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerConflict {
    /// The two experiments, in input order.
    pub experiments: (String, String),
    pub message: String,
}

/// Finds experiments of the same layer whose bucket ranges overlap or whose salts differ (with
/// different salts their users would overlap even with disjoint ranges). Input tuples are
/// `(name, layer, salt, range)`; empty ranges never conflict.
pub fn layer_conflicts<'a>(
    experiments: impl IntoIterator<Item = (&'a str, &'a str, &'a str, BucketRange)>,
) -> Vec<LayerConflict> {
    let all: Vec<_> = experiments.into_iter().collect();
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.1 != b.1 || a.3.is_empty() || b.3.is_empty() {
                continue;
            }
            let message = if a.2 != b.2 {
                format!(
                    "experiments '{}' and '{}' share layer '{}' but use different salts ('{}' vs '{}'): give them the same salt",
                    a.0, b.0, a.1, a.2, b.2
                )
            } else if a.3.overlaps(&b.3) {
                format!(
                    "experiments '{}' (buckets {}..{}) and '{}' (buckets {}..{}) overlap in layer '{}': move one with bucketStart or put it in another layer",
                    a.0, a.3.start, a.3.end, b.0, b.3.start, b.3.end, a.1
                )
            } else {
                continue;
            };
            out.push(LayerConflict {
                experiments: (a.0.to_string(), b.0.to_string()),
                message,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_stable_across_releases() {
        // Pinned values: changing the hash would reshuffle every running experiment.
        assert_eq!(
            bucket("recall", "recall", "u42"),
            bucket("recall", "recall", "u42")
        );
        let pinned = [
            bucket("s", "l", "u1"),
            bucket("s", "l", "u2"),
            bucket("", "", ""),
        ];
        assert_eq!(pinned, [PINNED_U1, PINNED_U2, PINNED_EMPTY]);
    }

    // python3 -c "import hashlib;print(int.from_bytes(hashlib.sha256(b's\x1fl\x1fu1').digest()[:8],'big')%10000)"
    const PINNED_U1: u32 = 5478;
    const PINNED_U2: u32 = 7244;
    const PINNED_EMPTY: u32 = 5340;

    #[test]
    fn overlapping_experiments_in_one_layer_conflict() {
        let a = BucketRange {
            start: 0,
            end: 5000,
        };
        let b = BucketRange {
            start: 4000,
            end: 6000,
        };
        let c = BucketRange {
            start: 5000,
            end: 6000,
        };
        assert_eq!(
            layer_conflicts([("a", "l", "s", a), ("b", "l", "s", b)]).len(),
            1
        );
        assert!(layer_conflicts([("a", "l", "s", a), ("c", "l", "s", c)]).is_empty());
        assert!(layer_conflicts([("a", "l", "s", a), ("b", "other", "s", b)]).is_empty());
        let salts = layer_conflicts([("a", "l", "s1", a), ("c", "l", "s2", c)]);
        assert!(salts[0].message.contains("different salts"));
    }

    #[test]
    fn buckets_are_in_range() {
        for i in 0..1000 {
            assert!(bucket("salt", "layer", &format!("user{i}")) < BUCKETS);
        }
    }

    #[test]
    fn split_covers_the_range_without_gaps_in_arm_order() {
        let range = BucketRange {
            start: 1000,
            end: 6000,
        };
        let arms = split_range(range, [("a", 50), ("b", 30), ("c", 20)]);
        assert_eq!(
            arms[0].range,
            BucketRange {
                start: 1000,
                end: 3500
            }
        );
        assert_eq!(
            arms[1].range,
            BucketRange {
                start: 3500,
                end: 5000
            }
        );
        assert_eq!(
            arms[2].range,
            BucketRange {
                start: 5000,
                end: 6000
            }
        );
    }

    #[test]
    fn weight_change_moves_only_the_boundary_buckets() {
        let range = BucketRange {
            start: 0,
            end: 10000,
        };
        let before = split_range(range, [("control", 50), ("treatment", 50)]);
        let after = split_range(range, [("control", 60), ("treatment", 40)]);
        // control grows by exactly the buckets treatment loses.
        assert_eq!(before[0].range.start, after[0].range.start);
        assert_eq!(after[0].range.end - before[0].range.end, 1000);
        assert_eq!(before[1].range.end, after[1].range.end);
    }
}
