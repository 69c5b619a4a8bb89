//! `popular`: time-decayed popularity, globally and per user segment (age band, gender,
//! occupation, region, ... — whatever user attributes the data has).

use std::collections::{BTreeMap, HashSet};

use kan_api::bundle::files;
use serde_json::json;

use super::{Context, Model, Query, Recaller, recall_each};
use crate::bundle::{BundleDir, BundleWriter, Tensor};
use crate::error::Result;

/// Items kept per segment list.
const SEGMENT_TOP: usize = 500;
/// Segments with fewer users than this are dropped (too noisy to serve).
const MIN_SEGMENT_USERS: usize = 5;
pub const DEFAULT_HALF_LIFE_DAYS: f64 = 30.0;
/// `--param` keys read by the trainer.
pub const PARAMS: &[&str] = &["half_life_days"];

pub struct Popular {
    pub n_items: usize,
    pub half_life_days: f64,
    pub reference_time: i64,
    /// (items, scores), best first.
    pub global: (Vec<u32>, Vec<f32>),
    pub segments: BTreeMap<String, (Vec<u32>, Vec<f32>)>,
}

/// Weight of an interaction at `ts` seen from `now`: halves every `half_life_days`. Data
/// without time (ts = 0 everywhere) counts every interaction once.
pub fn decay(now: i64, ts: i64, half_life_days: f64) -> f64 {
    if now == 0 || half_life_days <= 0.0 {
        return 1.0;
    }
    let age_days = ((now - ts).max(0) as f64) / 86_400.0;
    0.5f64.powf(age_days / half_life_days)
}

/// The segment a user attribute puts a user in, e.g. `age=25-34`, `region=9`, `gender=F`.
pub fn segment_of(key: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match key {
        "age" => {
            let age: u32 = value.parse().ok()?;
            let band = match age {
                0..=17 => "0-17",
                18..=24 => "18-24",
                25..=34 => "25-34",
                35..=44 => "35-44",
                45..=54 => "45-54",
                _ => "55+",
            };
            Some(format!("age={band}"))
        }
        // US zip codes: the first digit is a broad region.
        "zip_code" | "zip" => value.chars().next().map(|c| format!("region={c}")),
        _ => Some(format!("{key}={value}")),
    }
}

fn ranked(scores: &[f64], top: usize) -> (Vec<u32>, Vec<f32>) {
    let mut idx: Vec<u32> = (0..scores.len() as u32)
        .filter(|&i| scores[i as usize] > 0.0)
        .collect();
    idx.sort_by(|a, b| {
        scores[*b as usize]
            .total_cmp(&scores[*a as usize])
            .then(a.cmp(b))
    });
    idx.truncate(top);
    let s = idx.iter().map(|&i| scores[i as usize] as f32).collect();
    (idx, s)
}

pub fn train(ctx: &Context) -> Result<Popular> {
    let n_items = ctx.ds.n_items();
    let reference_time =
        kan_core::clock::reference_time(ctx.split.train.iter().map(|r| r.ts)).unwrap_or(0);
    let hl = ctx
        .opts
        .params
        .positive("half_life_days", DEFAULT_HALF_LIFE_DAYS)?;
    let mut global = vec![0f64; n_items];
    let mut by_segment: BTreeMap<String, (Vec<f64>, std::collections::HashSet<u32>)> =
        BTreeMap::new();
    let mut user_segments: Vec<Vec<String>> = vec![Vec::new(); ctx.ds.n_users()];
    for (key, col) in &ctx.ds.user_attrs {
        for (u, v) in col.iter().enumerate() {
            if let Some(seg) = v.as_deref().and_then(|v| segment_of(key, v)) {
                user_segments[u].push(seg);
            }
        }
    }
    for r in &ctx.split.train {
        let w = decay(reference_time, r.ts, hl);
        global[r.item as usize] += w;
        for seg in &user_segments[r.user as usize] {
            let e = by_segment
                .entry(seg.clone())
                .or_insert_with(|| (vec![0f64; n_items], Default::default()));
            e.0[r.item as usize] += w;
            e.1.insert(r.user);
        }
    }
    let segments = by_segment
        .into_iter()
        .filter(|(_, (_, users))| users.len() >= MIN_SEGMENT_USERS)
        .map(|(k, (scores, _))| (k, ranked(&scores, SEGMENT_TOP)))
        .collect();
    Ok(Popular {
        n_items,
        half_life_days: hl,
        reference_time,
        global: ranked(&global, n_items),
        segments,
    })
}

impl Recaller for Popular {
    /// Offline evaluation has no request context, so every user gets the global list, through
    /// the worker's kernel.
    fn recall(&self, queries: &[Query], k: usize) -> Result<Vec<Vec<u32>>> {
        let global: Vec<kan_core::Hit> = self
            .global
            .0
            .iter()
            .zip(&self.global.1)
            .map(|(&item, &score)| kan_core::Hit { item, score })
            .collect();
        Ok(recall_each(queries, |q| {
            let exclude: HashSet<u32> = q.exclude.iter().chain(q.history).copied().collect();
            kan_core::popular::recall([global.as_slice()], |i| exclude.contains(&i), k)
        }))
    }
}

impl Model for Popular {
    fn write(&self, w: &mut BundleWriter) -> Result<()> {
        let list = |prefix: &str, (items, scores): &(Vec<u32>, Vec<f32>)| {
            [
                (
                    format!("{prefix}/items"),
                    Tensor::i64(items.iter().map(|&i| i as i64).collect()),
                ),
                (format!("{prefix}/scores"), Tensor::f32(scores.clone())),
            ]
        };
        let mut t: Vec<(String, Tensor)> = list("global", &self.global).into();
        for (seg, l) in &self.segments {
            t.extend(list(&format!("segment/{seg}"), l));
        }
        w.tensors(files::POPULAR, &t)?;
        Ok(())
    }

    fn params(&self) -> serde_json::Value {
        json!({
            "half_life_days": self.half_life_days,
            kan_api::bundle::params::REFERENCE_TIME: self.reference_time,
            "segments": self.segments.keys().collect::<Vec<_>>(),
            "segment_top": SEGMENT_TOP,
        })
    }
}

impl Popular {
    pub fn load(b: &BundleDir) -> Result<Self> {
        let n_items = b.lines(files::ITEMS)?.len();
        let t = b.tensors(files::POPULAR)?;
        let items = t
            .i64_1d("global/items")?
            .iter()
            .map(|&i| i as u32)
            .collect();
        let scores = t.f32_1d("global/scores")?;
        Ok(Popular {
            n_items,
            half_life_days: DEFAULT_HALF_LIFE_DAYS,
            reference_time: 0,
            global: (items, scores),
            segments: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_halves_every_half_life_and_ignores_missing_time() {
        assert!((decay(86_400 * 30, 0, 30.0) - 0.5).abs() < 1e-12);
        assert!((decay(86_400 * 60, 0, 30.0) - 0.25).abs() < 1e-12);
        assert_eq!(decay(0, 0, 30.0), 1.0);
    }

    #[test]
    fn ages_become_bands_and_zip_codes_regions() {
        assert_eq!(segment_of("age", "24").as_deref(), Some("age=18-24"));
        assert_eq!(segment_of("age", "61").as_deref(), Some("age=55+"));
        assert_eq!(segment_of("zip_code", "94043").as_deref(), Some("region=9"));
        assert_eq!(segment_of("gender", "F").as_deref(), Some("gender=F"));
        assert_eq!(segment_of("age", "old"), None);
        assert_eq!(segment_of("gender", " "), None);
    }

    #[test]
    fn ranked_lists_drop_unseen_items_and_break_ties_by_index() {
        assert_eq!(
            ranked(&[1.0, 0.0, 3.0, 1.0], 10),
            (vec![2, 0, 3], vec![3.0, 1.0, 1.0])
        );
        assert_eq!(ranked(&[1.0, 0.0, 3.0, 1.0], 1).0, [2]);
    }
}
