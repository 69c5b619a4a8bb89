//! The catalogue of items added after training (`POST /v1/items`), kept in the worker's state
//! directory as `added-items.json` so a restart serves them again. Written whole to a temporary
//! file, synced, then renamed over the old one: a crash leaves the old or the new file, never a
//! torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use kan_api::wire::NewItem;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// File name inside the state directory.
pub const FILE: &str = "added-items.json";
/// Most added items a queue holds; past it, retrain (the bundle is the home of a catalogue).
pub const MAX_ADDED_ITEMS: usize = 100_000;

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Stored {
    items: Vec<NewItem>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The stored items; none when the file does not exist.
pub fn read(state_dir: &Path) -> Result<Vec<NewItem>> {
    let path = path(state_dir);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let stored: Stored = serde_json::from_slice(&text).map_err(|e| {
        Error::Config(format!(
            "{}: not a catalogue of added items: {e}",
            path.display()
        ))
    })?;
    Ok(stored.items)
}

/// Replaces the stored items atomically.
pub fn write(state_dir: &Path, items: &[NewItem]) -> Result<()> {
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io(state_dir, e))?;
    let path = path(state_dir);
    let tmp = state_dir.join(format!(".{FILE}.tmp"));
    let bytes = serde_json::to_vec(&Stored {
        items: items.to_vec(),
    })
    .map_err(|e| Error::Config(format!("encoding added items: {e}")))?;
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// `current` with `incoming` applied: an id already added is replaced in place, a new one
/// appended.
pub fn merge(current: &[NewItem], incoming: &[NewItem]) -> Vec<NewItem> {
    let mut out = current.to_vec();
    for item in incoming {
        match out.iter_mut().find(|it| it.id == item.id) {
            Some(slot) => *slot = item.clone(),
            None => out.push(item.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, tag: &str) -> NewItem {
        NewItem {
            id: id.into(),
            tags: vec![tag.into()],
            vector: None,
        }
    }

    #[test]
    fn stored_items_read_back_and_a_missing_file_is_an_empty_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        write(dir.path(), &[item("a", "x")]).unwrap();
        assert_eq!(read(dir.path()).unwrap(), [item("a", "x")]);
        assert!(!dir.path().join(format!(".{FILE}.tmp")).exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{").unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE), "{err}");
    }

    #[test]
    fn merging_replaces_known_ids_in_place_and_appends_new_ones() {
        let merged = merge(
            &[item("a", "x"), item("b", "y")],
            &[item("a", "z"), item("c", "w")],
        );
        assert_eq!(merged, [item("a", "z"), item("b", "y"), item("c", "w")]);
    }
}
