//! The propensity stage's I/O and its filter: the lift table is read from the bundle directory
//! the config names (`filters.propensity.table`) when the config loads, checked against the
//! bundle manifest's digests; the boost and the keep decision are `kan_core::propensity`'s.
//!
//! Why the gateway holds the table rather than asking the workers for lifts: a lift belongs to
//! the item and the audience, not to the queue that found the item, and the stage must rank
//! every merged candidate (fallback fill and queues whose bundle has no table included) by one
//! scale. One table per gateway keeps the worker answer and its compact layout unchanged (no
//! per-candidate payload on the hot path) and makes `kan eval` and the gateway read the same
//! file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kan_api::bundle::{BundleManifest, MANIFEST_FILE, files, sha256_hex};
use kan_core::propensity::{Stage, Table};

use crate::error::{Error, Result};
use crate::filter::{Filter, FilterResult};
use crate::merge::Merged;

/// A lift table and the bundle it was read from.
#[derive(Debug)]
pub struct LoadedTable {
    pub dir: PathBuf,
    /// The bundle's content version (`manifest.json`).
    pub version: String,
    pub table: Table,
}

/// Reads the lift table of the bundle directory `dir`: `items.txt`, `propensity_segments.txt`
/// and `propensity.safetensors`, each matching its digest in `manifest.json`. `previous` is
/// kept when it was read from the same directory and the bundle's version has not changed, so
/// a config edit (a weight, a queue) does not re-read and re-hash a large table.
pub fn load_table(dir: &Path, previous: Option<&Arc<LoadedTable>>) -> Result<Arc<LoadedTable>> {
    let fail = |message: String| Error::PropensityTable {
        path: dir.display().to_string(),
        message,
    };
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|e| fail(format!("cannot read {name}: {e}")))
    };
    let manifest: BundleManifest = serde_json::from_slice(&read(MANIFEST_FILE)?)
        .map_err(|e| fail(format!("{MANIFEST_FILE} is not a bundle manifest: {e}")))?;
    if let Some(previous) = previous.filter(|p| p.dir == dir && p.version == manifest.version) {
        return Ok(previous.clone());
    }
    let verified = |name: &str| -> Result<Vec<u8>> {
        let expected = manifest.files.get(name).ok_or_else(|| {
            fail(format!(
                "the bundle has no {name} (train it on data with user attributes)"
            ))
        })?;
        let bytes = read(name)?;
        if sha256_hex(&bytes) != *expected {
            return Err(fail(format!(
                "{name} does not match its sha256 in {MANIFEST_FILE}"
            )));
        }
        Ok(bytes)
    };
    let lines = |bytes: Vec<u8>, name: &str| -> Result<Vec<String>> {
        let text = String::from_utf8(bytes).map_err(|_| fail(format!("{name} is not UTF-8")))?;
        Ok(text.lines().map(str::to_string).collect())
    };
    let table = verified(files::PROPENSITY)?;
    let segments = lines(
        verified(files::PROPENSITY_SEGMENTS)?,
        files::PROPENSITY_SEGMENTS,
    )?;
    let items = lines(verified(files::ITEMS)?, files::ITEMS)?;
    let table = Table::decode(items, segments, &table).map_err(|e| fail(e.to_string()))?;
    Ok(Arc::new(LoadedTable {
        dir: dir.to_path_buf(),
        version: manifest.version,
        table,
    }))
}

/// Drops candidates whose lift for the request's audience is below `minLift` (enabled only when
/// the request selects a column and the stage has a `minLift`).
pub struct PropensityFilter<'s, 't> {
    stage: Option<&'s Stage<'t>>,
}

impl<'s, 't> PropensityFilter<'s, 't> {
    pub fn new(stage: Option<&'s Stage<'t>>) -> Self {
        Self { stage }
    }
}

impl Filter for PropensityFilter<'_, '_> {
    fn name(&self) -> &'static str {
        "propensity"
    }
    fn enable(&self) -> bool {
        self.stage.is_some_and(Stage::filters)
    }
    fn filter<'a>(&self, candidates: Vec<Merged<'a>>) -> FilterResult<'a> {
        let Some(stage) = self.stage else {
            return FilterResult {
                kept: candidates,
                removed: Vec::new(),
            };
        };
        let (kept, removed) = candidates.into_iter().partition(|c| stage.keeps(c.item_id));
        FilterResult { kept, removed }
    }
}
