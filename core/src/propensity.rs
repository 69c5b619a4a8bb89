//! Item propensity: how much more (or less) an audience segment — an age band, a gender, an
//! occupation, a zip zone — engages with an item than the whole population does, and the
//! gateway's propensity stage that boosts or filters merged candidates by the lift of the
//! audience a request's `context` names. `kan train` computes the table ([`lifts`]), the
//! gateway and `kan eval` apply it ([`Stage`]), all through this module.
//!
//! Lift of item `i` for segment `s` of key `k`: the share of `i`'s engagements that come from
//! users in `s`, over the share of all engagements (of users with a known `k`) that do,
//! shrunk towards 1 by `m` pseudo-engagements at the population rate:
//! `lift = (n_is + m·p_s) / ((n_ik + m)·p_s)`. Items with fewer than `min_support` engagements
//! by users with a known `k` get lift 1 for every segment of `k` (no evidence, no tendency).

use std::collections::{BTreeMap, HashMap};

use kan_api::bundle::files;
use kan_api::crd::{PROPENSITY_KEYS, PropensitySpec};

use crate::bundle::{Tensor, TensorFile, encode_tensors};
use crate::merge::Merged;

/// Engagements (by users with a known value of the key) an item needs before it gets a lift
/// other than 1 for that key.
pub const DEFAULT_MIN_SUPPORT: usize = 10;
/// Pseudo-engagements at the population rate added to every item (shrinkage towards lift 1).
pub const DEFAULT_SHRINKAGE: f64 = 20.0;
/// Lifts are clamped to `[1 / MAX_LIFT, MAX_LIFT]`.
pub const MAX_LIFT: f64 = 100.0;
/// Name of the lift tensor in the table file.
pub const LIFT_TENSOR: &str = "lift";

/// Age bands, youngest first (the ones the popular strategy's segments use).
pub const AGE_BANDS: [&str; 6] = ["0-17", "18-24", "25-34", "35-44", "45-54", "55+"];

/// The band of an age.
pub fn age_band(age: u32) -> &'static str {
    match age {
        0..=17 => AGE_BANDS[0],
        18..=24 => AGE_BANDS[1],
        25..=34 => AGE_BANDS[2],
        35..=44 => AGE_BANDS[3],
        45..=54 => AGE_BANDS[4],
        _ => AGE_BANDS[5],
    }
}

/// The national zip zone (first digit of the zip code) of each US state, territory and
/// military postal code.
const STATE_ZONES: [(&str, char); 60] = [
    ("CT", '0'),
    ("MA", '0'),
    ("ME", '0'),
    ("NH", '0'),
    ("NJ", '0'),
    ("PR", '0'),
    ("RI", '0'),
    ("VT", '0'),
    ("VI", '0'),
    ("AE", '0'),
    ("DE", '1'),
    ("NY", '1'),
    ("PA", '1'),
    ("DC", '2'),
    ("MD", '2'),
    ("NC", '2'),
    ("SC", '2'),
    ("VA", '2'),
    ("WV", '2'),
    ("AL", '3'),
    ("FL", '3'),
    ("GA", '3'),
    ("MS", '3'),
    ("TN", '3'),
    ("AA", '3'),
    ("IN", '4'),
    ("KY", '4'),
    ("MI", '4'),
    ("OH", '4'),
    ("IA", '5'),
    ("MN", '5'),
    ("MT", '5'),
    ("ND", '5'),
    ("SD", '5'),
    ("WI", '5'),
    ("IL", '6'),
    ("KS", '6'),
    ("MO", '6'),
    ("NE", '6'),
    ("AR", '7'),
    ("LA", '7'),
    ("OK", '7'),
    ("TX", '7'),
    ("AZ", '8'),
    ("CO", '8'),
    ("ID", '8'),
    ("NM", '8'),
    ("NV", '8'),
    ("UT", '8'),
    ("WY", '8'),
    ("AK", '9'),
    ("CA", '9'),
    ("HI", '9'),
    ("OR", '9'),
    ("WA", '9'),
    ("GU", '9'),
    ("AS", '9'),
    ("MP", '9'),
    ("AP", '9'),
    ("FM", '9'),
];

/// The zip zone of a `region` value: a US zip code or a zone digit (its first digit), or a
/// two-letter state code. Anything else (e.g. a Canadian postcode) has none.
pub fn region_of(value: &str) -> Option<String> {
    let value = value.trim();
    let first = value.chars().next()?;
    if first.is_ascii_digit() {
        return value
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-')
            .then(|| first.to_string());
    }
    let upper = value.to_ascii_uppercase();
    STATE_ZONES
        .iter()
        .find(|(state, _)| *state == upper)
        .map(|(_, zone)| zone.to_string())
}

/// The value of context key `key` (one of [`PROPENSITY_KEYS`]) as the table names it: an age
/// becomes its band, a state or zip code its zone, gender upper-case, occupation lower-case.
/// `None` when the value has no segment.
pub fn context_value(key: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match key {
        "age_band" => match value.parse::<u32>() {
            Ok(age) => Some(age_band(age).to_string()),
            Err(_) => AGE_BANDS
                .iter()
                .find(|b| **b == value)
                .map(|b| b.to_string()),
        },
        "gender" => Some(value.to_ascii_uppercase()),
        "occupation" => Some(value.to_ascii_lowercase()),
        "region" => region_of(value),
        _ => None,
    }
}

/// The segment a user attribute of the training data puts the user in, as `(key, value)`:
/// `age` → `age_band`, `zip_code`/`zip` → `region`, `gender` and `occupation` as they are
/// (normalised like request context values). Other attributes have no propensity key.
pub fn user_segment(attribute: &str, value: &str) -> Option<(&'static str, String)> {
    let key = match attribute {
        "age" | "age_band" => "age_band",
        "zip_code" | "zip" | "region" => "region",
        "gender" => "gender",
        "occupation" => "occupation",
        _ => return None,
    };
    context_value(key, value).map(|v| (key, v))
}

/// The column name of a segment: `key=value`.
pub fn segment_name(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// Why a propensity table cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableError {
    #[error("not a safetensors file: {0}")]
    Format(String),
    #[error("tensor `{LIFT_TENSOR}` {0}")]
    Lift(String),
    #[error("segment `{0}` is not KEY=VALUE with KEY one of age_band, gender, occupation, region")]
    Segment(String),
    #[error("segment `{0}` is listed twice")]
    DuplicateSegment(String),
}

/// A lift table: one row per item (in the bundle's `items.txt` order), one column per segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    items: HashMap<String, u32>,
    segments: Vec<String>,
    columns: HashMap<String, usize>,
    /// Row-major `[items, segments]`.
    lift: Vec<f32>,
}

impl Table {
    /// A table over `items` and `segments` (`key=value` names); `lift` is row-major
    /// `[items, segments]`, every value finite and positive.
    pub fn new(
        items: Vec<String>,
        segments: Vec<String>,
        lift: Vec<f32>,
    ) -> Result<Self, TableError> {
        if lift.len() != items.len() * segments.len() {
            return Err(TableError::Lift(format!(
                "has {} values, expected {} items × {} segments",
                lift.len(),
                items.len(),
                segments.len()
            )));
        }
        if let Some(bad) = lift.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(TableError::Lift(format!(
                "holds {bad}: lifts are finite and positive"
            )));
        }
        let mut columns = HashMap::with_capacity(segments.len());
        for (c, s) in segments.iter().enumerate() {
            let known = s
                .split_once('=')
                .is_some_and(|(k, v)| PROPENSITY_KEYS.contains(&k) && !v.is_empty());
            if !known {
                return Err(TableError::Segment(s.clone()));
            }
            if columns.insert(s.clone(), c).is_some() {
                return Err(TableError::DuplicateSegment(s.clone()));
            }
        }
        let items = items
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u32))
            .collect();
        Ok(Self {
            items,
            segments,
            columns,
            lift,
        })
    }

    /// Reads the table file (`propensity.safetensors`: `lift` f32[items, segments]) with the
    /// bundle's item ids and the segment names (`propensity_segments.txt`).
    pub fn decode(
        items: Vec<String>,
        segments: Vec<String>,
        bytes: &[u8],
    ) -> Result<Self, TableError> {
        let file = TensorFile::decode(files::PROPENSITY, bytes.to_vec())
            .map_err(|e| TableError::Format(e.to_string()))?;
        if !file.has(LIFT_TENSOR) {
            return Err(TableError::Lift("is missing".into()));
        }
        let (shape, lift) = file
            .f32(LIFT_TENSOR)
            .map_err(|_| TableError::Lift("is not F32".into()))?;
        if shape != [items.len(), segments.len()] {
            return Err(TableError::Lift(format!(
                "has shape {shape:?}, expected [{}, {}] (items, segments)",
                items.len(),
                segments.len()
            )));
        }
        Self::new(items, segments, lift)
    }

    /// The table file's bytes for `lift`, row-major `[n_items, n_segments]`.
    pub fn encode(n_items: usize, n_segments: usize, lift: &[f32]) -> Result<Vec<u8>, TableError> {
        let tensor = Tensor::F32(vec![n_items, n_segments], lift.to_vec());
        encode_tensors(files::PROPENSITY, &[(LIFT_TENSOR, tensor)])
            .map_err(|e| TableError::Lift(e.to_string()))
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// The columns a request context selects for the stage's `keys`: one per key the context
    /// carries with a value the table has a segment for.
    pub fn columns(&self, keys: &[String], context: &BTreeMap<String, String>) -> Vec<usize> {
        keys.iter()
            .filter_map(|key| {
                let value = context_value(key, context.get(key)?)?;
                self.columns.get(&segment_name(key, &value)).copied()
            })
            .collect()
    }

    /// The item's lift for the audience of `columns`: the product of its lifts there; 1 for an
    /// item the table does not know (posted after training, or from another catalogue).
    pub fn lift(&self, item_id: &str, columns: &[usize]) -> f64 {
        let Some(&row) = self.items.get(item_id) else {
            return 1.0;
        };
        let base = row as usize * self.segments.len();
        columns
            .iter()
            .map(|&c| f64::from(self.lift[base + c]))
            .product()
    }
}

/// Training counts → lifts, row-major `[n_items, segments]`.
///
/// `segment_key[s]`: the index of segment `s`'s key (segments of one key are exclusive);
/// `user_segments[u]`: the segments user `u` is in (at most one per key); `engagements`:
/// `(user, item)` of the training interactions.
pub fn lifts(
    n_items: usize,
    segment_key: &[usize],
    user_segments: &[Vec<usize>],
    engagements: impl IntoIterator<Item = (u32, u32)>,
    min_support: usize,
    shrinkage: f64,
) -> Vec<f32> {
    let n_segments = segment_key.len();
    let n_keys = segment_key.iter().max().map_or(0, |k| k + 1);
    let mut item_segment = vec![0u64; n_items * n_segments];
    let mut item_key = vec![0u64; n_items * n_keys];
    let mut segment_total = vec![0u64; n_segments];
    let mut key_total = vec![0u64; n_keys];
    for (user, item) in engagements {
        let (Some(segments), true) = (user_segments.get(user as usize), (item as usize) < n_items)
        else {
            continue;
        };
        for &s in segments {
            let k = segment_key[s];
            item_segment[item as usize * n_segments + s] += 1;
            item_key[item as usize * n_keys + k] += 1;
            segment_total[s] += 1;
            key_total[k] += 1;
        }
    }
    let mut out = vec![1f32; n_items * n_segments];
    for i in 0..n_items {
        for s in 0..n_segments {
            let k = segment_key[s];
            let n_ik = item_key[i * n_keys + k];
            if n_ik < min_support as u64 || key_total[k] == 0 || segment_total[s] == 0 {
                continue;
            }
            let p = segment_total[s] as f64 / key_total[k] as f64;
            let n_is = item_segment[i * n_segments + s] as f64;
            let lift = (n_is + shrinkage * p) / ((n_ik as f64 + shrinkage) * p);
            out[i * n_segments + s] = lift.clamp(1.0 / MAX_LIFT, MAX_LIFT) as f32;
        }
    }
    out
}

/// The propensity stage for one request: the table columns its context selects.
#[derive(Debug, Clone)]
pub struct Stage<'a> {
    table: &'a Table,
    columns: Vec<usize>,
    boost: f64,
    min_lift: Option<f64>,
}

impl<'a> Stage<'a> {
    /// The stage of `spec` for a request `context`; `None` when the context carries none of the
    /// spec's keys with a value the table knows (the merged list is then left alone).
    pub fn new(
        spec: &PropensitySpec,
        table: &'a Table,
        context: &BTreeMap<String, String>,
    ) -> Option<Self> {
        let columns = table.columns(&spec.keys, context);
        (!columns.is_empty()).then_some(Self {
            table,
            columns,
            boost: spec.boost,
            min_lift: spec.min_lift,
        })
    }

    /// The item's lift for this request's audience.
    pub fn lift(&self, item_id: &str) -> f64 {
        self.table.lift(item_id, &self.columns)
    }

    /// Multiplies every candidate's score by `lift ^ boost` and re-sorts best first; equal
    /// scores keep their merged order. Merge scores are non-negative, so a lift above 1 only
    /// ever moves a candidate up.
    pub fn boost(&self, merged: &mut [Merged<'_>]) {
        if self.boost == 0.0 {
            return;
        }
        for m in merged.iter_mut() {
            m.score *= self.lift(m.item_id).powf(self.boost);
        }
        merged.sort_by(|a, b| b.score.total_cmp(&a.score));
    }

    /// True when the stage keeps the item: no `minLift`, or its lift reaches it.
    pub fn keeps(&self, item_id: &str) -> bool {
        self.min_lift.is_none_or(|min| self.lift(item_id) >= min)
    }

    /// True when the stage can remove candidates (it has a `minLift`).
    pub fn filters(&self) -> bool {
        self.min_lift.is_some()
    }
}

#[cfg(test)]
mod tests {
    use smallvec::SmallVec;

    use super::*;

    fn spec(keys: &[&str], boost: f64, min_lift: Option<f64>) -> PropensitySpec {
        PropensitySpec {
            table: "t".into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            boost,
            min_lift,
        }
    }

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Items a, b, c; segments age_band=18-24, age_band=55+, region=9.
    fn table() -> Table {
        Table::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![
                "age_band=18-24".into(),
                "age_band=55+".into(),
                "region=9".into(),
            ],
            vec![
                0.5, 2.0, 1.0, // a: the old
                3.0, 0.25, 2.0, // b: the young, the west
                1.0, 1.0, 1.0, // c: nobody in particular
            ],
        )
        .expect("valid")
    }

    fn merged<'a>(ids: &[(&'a str, f64)]) -> Vec<Merged<'a>> {
        ids.iter()
            .map(|&(item_id, score)| Merged {
                item_id,
                score,
                sources: SmallVec::from_slice(&["q"]),
            })
            .collect()
    }

    fn ids<'a>(m: &[Merged<'a>]) -> Vec<&'a str> {
        m.iter().map(|m| m.item_id).collect()
    }

    #[test]
    fn states_zip_codes_and_zones_map_to_the_zip_zone_and_foreign_postcodes_to_none() {
        assert_eq!(region_of("CA").as_deref(), Some("9"));
        assert_eq!(region_of("ny").as_deref(), Some("1"));
        assert_eq!(region_of("TX").as_deref(), Some("7"));
        assert_eq!(region_of("94043").as_deref(), Some("9"));
        assert_eq!(region_of("02139-4307").as_deref(), Some("0"));
        assert_eq!(region_of("5").as_deref(), Some("5"));
        assert_eq!(region_of("T8H1N"), None);
        assert_eq!(region_of("ZZ"), None);
        assert_eq!(region_of(""), None);
        let states: std::collections::HashSet<&str> = STATE_ZONES.iter().map(|s| s.0).collect();
        assert_eq!(states.len(), STATE_ZONES.len(), "no state listed twice");
    }

    #[test]
    fn ages_become_bands_and_attributes_become_the_keys_requests_use() {
        assert_eq!(context_value("age_band", "24").as_deref(), Some("18-24"));
        assert_eq!(context_value("age_band", "55+").as_deref(), Some("55+"));
        assert_eq!(context_value("age_band", "twenty"), None);
        assert_eq!(context_value("gender", " f").as_deref(), Some("F"));
        assert_eq!(context_value("zodiac", "leo"), None);
        assert_eq!(user_segment("age", "61"), Some(("age_band", "55+".into())));
        assert_eq!(
            user_segment("zip_code", "94043"),
            Some(("region", "9".into()))
        );
        assert_eq!(
            user_segment("occupation", "Writer"),
            Some(("occupation", "writer".into()))
        );
        assert_eq!(user_segment("zip_code", "V3N4P"), None);
        assert_eq!(user_segment("shoe_size", "9"), None);
    }

    #[test]
    fn lift_is_the_segment_share_over_the_population_share_shrunk_towards_one() {
        // Users 0, 1 are young (segment 0), users 2, 3 old (segment 1); key 0 for both.
        let users = vec![vec![0], vec![0], vec![1], vec![1]];
        // Item 0: 10 engagements, 8 young. Population: 12 young of 20.
        let mut rows = vec![(0, 0); 4];
        rows.extend([(1, 0); 4]);
        rows.extend([(2, 0); 2]);
        rows.extend([(0, 1); 4]);
        rows.extend([(2, 1); 3]);
        rows.extend([(3, 1); 3]);
        let no_shrink = lifts(2, &[0, 0], &users, rows.iter().copied(), 1, 0.0);
        let p_young = 12.0 / 20.0;
        assert!((no_shrink[0] as f64 - 0.8 / p_young).abs() < 1e-6);
        assert!((no_shrink[1] as f64 - 0.2 / (8.0 / 20.0)).abs() < 1e-6);
        let shrunk = lifts(2, &[0, 0], &users, rows.iter().copied(), 1, 10.0);
        let expected = (8.0 + 10.0 * p_young) / (20.0 * p_young);
        assert!((shrunk[0] as f64 - expected).abs() < 1e-6);
        assert!(
            shrunk[0] < no_shrink[0] && shrunk[0] > 1.0,
            "pulled towards 1"
        );
        // Below the minimum support every lift of the key is 1.
        let strict = lifts(2, &[0, 0], &users, rows.iter().copied(), 11, 0.0);
        assert_eq!(strict[..2], [1.0, 1.0]);
        // Users without the attribute and unknown items count for nothing.
        let with_strangers = lifts(
            2,
            &[0, 0],
            &[vec![0], vec![0], vec![1], vec![1], vec![]],
            rows.iter().copied().chain([(4, 0), (0, 9), (9, 0)]),
            1,
            0.0,
        );
        assert_eq!(with_strangers, no_shrink);
    }

    #[test]
    fn the_table_file_round_trips_and_bad_tables_are_refused() {
        let t = table();
        let bytes = Table::encode(3, 3, &t.lift).expect("encode");
        let back = Table::decode(
            vec!["a".into(), "b".into(), "c".into()],
            t.segments().to_vec(),
            &bytes,
        )
        .expect("decode");
        assert_eq!(back, t);
        let wrong_items = Table::decode(vec!["a".into()], t.segments().to_vec(), &bytes);
        assert!(matches!(wrong_items, Err(TableError::Lift(m)) if m.contains("shape")));
        assert!(matches!(
            Table::decode(vec![], vec![], b"nope"),
            Err(TableError::Format(_))
        ));
        assert_eq!(
            Table::new(vec!["a".into()], vec!["zodiac=leo".into()], vec![1.0]),
            Err(TableError::Segment("zodiac=leo".into()))
        );
        assert!(matches!(
            Table::new(vec!["a".into()], vec!["region=9".into()], vec![f32::NAN]),
            Err(TableError::Lift(_))
        ));
        assert!(matches!(
            Table::new(vec!["a".into()], vec!["region=9".into()], vec![0.0]),
            Err(TableError::Lift(_))
        ));
    }

    #[test]
    fn a_context_selects_one_column_per_declared_key_and_lifts_multiply() {
        let t = table();
        let young_west = ctx(&[("age_band", "21"), ("region", "CA"), ("gender", "F")]);
        // gender is not declared; age 21 is the 18-24 band; CA is zone 9.
        let cols = t.columns(&["age_band".into(), "region".into()], &young_west);
        assert_eq!(cols, [0, 2]);
        assert_eq!(t.lift("b", &cols), 6.0);
        assert_eq!(t.lift("a", &cols), 0.5);
        assert_eq!(t.lift("new-item", &cols), 1.0, "unknown items are neutral");
        let cols = t.columns(&["region".into()], &ctx(&[("region", "NY")]));
        assert!(cols.is_empty(), "zone 1 has no column");
    }

    #[test]
    fn the_boost_reorders_by_score_times_lift_and_keeps_ties_in_merged_order() {
        let t = table();
        let s = spec(&["age_band"], 1.0, None);
        let stage = Stage::new(&s, &t, &ctx(&[("age_band", "18-24")])).expect("selects");
        let mut m = merged(&[("a", 1.0), ("c", 0.5), ("b", 0.2), ("x", 0.5)]);
        stage.boost(&mut m);
        // a 1.0×0.5 = 0.5, c 0.5, b 0.2×3 = 0.6, x (unknown) 0.5.
        assert_eq!(ids(&m), ["b", "a", "c", "x"]);
        assert!((m[0].score - 0.6).abs() < 1e-12);
        let old = Stage::new(&s, &t, &ctx(&[("age_band", "70")])).expect("selects");
        let mut m = merged(&[("b", 1.0), ("a", 0.6)]);
        old.boost(&mut m);
        assert_eq!(ids(&m), ["a", "b"]);
    }

    #[test]
    fn a_boost_of_zero_or_a_context_without_the_keys_changes_nothing() {
        let t = table();
        let input = merged(&[("a", 1.0), ("b", 0.2)]);
        let zero = spec(&["age_band"], 0.0, Some(0.1));
        let stage = Stage::new(&zero, &t, &ctx(&[("age_band", "18-24")])).expect("selects");
        let mut m = input.clone();
        stage.boost(&mut m);
        assert_eq!(m, input);
        let s = spec(&["age_band"], 1.0, None);
        assert!(Stage::new(&s, &t, &ctx(&[("region", "CA")])).is_none());
        assert!(Stage::new(&s, &t, &ctx(&[("age_band", "unknown")])).is_none());
    }

    #[test]
    fn min_lift_keeps_items_at_or_above_it_and_unknown_items() {
        let t = table();
        let s = spec(&["age_band", "region"], 1.0, Some(1.0));
        let stage =
            Stage::new(&s, &t, &ctx(&[("age_band", "18-24"), ("region", "9")])).expect("selects");
        assert!(stage.filters());
        assert!(stage.keeps("b"));
        assert!(stage.keeps("c"), "lift exactly 1");
        assert!(!stage.keeps("a"));
        assert!(stage.keeps("posted-today"));
        let boost_only = spec(&["age_band"], 1.0, None);
        let stage = Stage::new(&boost_only, &t, &ctx(&[("age_band", "18-24")])).expect("selects");
        assert!(!stage.filters() && stage.keeps("a"));
    }
}
