//! The propensity table `kan train` writes beside every strategy's files when the data has user
//! attributes (ML-100K's `.user`: age, gender, occupation, zip code), and the audience of each
//! user as `kan eval` sends it in a request `context`. The lift arithmetic and the segment
//! names are `kan_core::propensity`'s, shared with the gateway.

use std::collections::{BTreeMap, BTreeSet};

use kan_api::bundle::files;
use kan_api::crd::PROPENSITY_KEYS;
use kan_core::propensity::{self as core, Table};

use crate::bundle::BundleWriter;
use crate::data::{Dataset, Interaction};
use crate::error::{Error, Result};

/// Segments with fewer users than this get no column (too few people to speak for).
pub const MIN_SEGMENT_USERS: usize = 5;

/// Segment names (`key=value`) and the lifts, row-major `[items, segments]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifts {
    pub segments: Vec<String>,
    pub lift: Vec<f32>,
}

/// Each user's propensity context (`age_band`, `gender`, `occupation`, `region`), from the
/// dataset's user attributes; empty maps for data without them.
pub fn user_contexts(ds: &Dataset) -> Vec<BTreeMap<String, String>> {
    let mut out = vec![BTreeMap::new(); ds.n_users()];
    for (attribute, column) in &ds.user_attrs {
        for (u, value) in column.iter().enumerate() {
            if let Some((key, value)) = value
                .as_deref()
                .and_then(|v| core::user_segment(attribute, v))
            {
                out[u].insert(key.to_string(), value);
            }
        }
    }
    out
}

/// The lift table of the training interactions; `None` when no user has a propensity
/// attribute.
pub fn compute(ds: &Dataset, train: &[Interaction]) -> Option<Lifts> {
    let contexts = user_contexts(ds);
    let mut users_in: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for ctx in &contexts {
        for (key, value) in ctx {
            if let Some(k) = PROPENSITY_KEYS.iter().position(|p| p == key) {
                *users_in.entry((k, value.clone())).or_default() += 1;
            }
        }
    }
    let kept: BTreeSet<&(usize, String)> = users_in
        .iter()
        .filter(|(_, n)| **n >= MIN_SEGMENT_USERS)
        .map(|(s, _)| s)
        .collect();
    if kept.is_empty() {
        return None;
    }
    let column: BTreeMap<&(usize, String), usize> =
        kept.iter().enumerate().map(|(c, s)| (*s, c)).collect();
    let segment_key: Vec<usize> = kept.iter().map(|(k, _)| *k).collect();
    let segments: Vec<String> = kept
        .iter()
        .map(|(k, v)| core::segment_name(PROPENSITY_KEYS[*k], v))
        .collect();
    let user_segments: Vec<Vec<usize>> = contexts
        .iter()
        .map(|ctx| {
            ctx.iter()
                .filter_map(|(key, value)| {
                    let k = PROPENSITY_KEYS.iter().position(|p| p == key)?;
                    column.get(&(k, value.clone())).copied()
                })
                .collect()
        })
        .collect();
    let lift = core::lifts(
        ds.n_items(),
        &segment_key,
        &user_segments,
        train.iter().map(|r| (r.user, r.item)),
        core::DEFAULT_MIN_SUPPORT,
        core::DEFAULT_SHRINKAGE,
    );
    Some(Lifts { segments, lift })
}

/// Writes the table files into a bundle.
pub fn write(w: &mut BundleWriter, n_items: usize, lifts: &Lifts) -> Result<()> {
    let bytes = Table::encode(n_items, lifts.segments.len(), &lifts.lift)
        .map_err(|e| Error::InvalidInput(format!("propensity table: {e}")))?;
    w.bytes(files::PROPENSITY, &bytes)?;
    w.lines(files::PROPENSITY_SEGMENTS, &lifts.segments)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        let mut ds = Dataset::default();
        ds.items.intern("i0");
        for u in 0..12 {
            let id = format!("u{u}");
            ds.users.intern(&id);
            ds.set_user_attr(&id, "age", if u < 6 { "20" } else { "60" });
            ds.set_user_attr(&id, "zip_code", if u < 11 { "94043" } else { "10001" });
            ds.set_user_attr(&id, "favourite_colour", "blue");
        }
        ds
    }

    #[test]
    fn users_get_the_context_a_request_would_carry() {
        let ds = dataset();
        let contexts = user_contexts(&ds);
        assert_eq!(contexts.len(), 12);
        assert_eq!(contexts[0]["age_band"], "18-24");
        assert_eq!(contexts[0]["region"], "9");
        assert_eq!(contexts[11]["age_band"], "55+");
        assert!(!contexts[0].contains_key("favourite_colour"));
    }

    #[test]
    fn segments_with_too_few_users_get_no_column() {
        let ds = dataset();
        let lifts = compute(&ds, &[]).expect("has attributes");
        // region=1 has one user: dropped.
        assert_eq!(
            lifts.segments,
            ["age_band=18-24", "age_band=55+", "region=9"]
        );
        assert_eq!(lifts.lift.len(), ds.n_items() * 3);
        assert!(compute(&Dataset::default(), &[]).is_none());
    }
}
