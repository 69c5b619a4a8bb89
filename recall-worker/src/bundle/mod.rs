//! A bundle on disk (the layout of [`kan_api::bundle::files`], written by `kan train`): the
//! manifest is validated, every file's sha256 verified, then the parts every strategy shares —
//! item and user id maps and stored user histories — are read. Strategy-specific tensors are read
//! by each strategy module through [`Bundle::tensors`].

mod fetch;
mod push;
mod remote;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kan_api::bundle::{BundleManifest, files, params};

pub use fetch::{download, fetch, parse_uri};
pub use kan_api::bundle_uri::BundleLocation;
pub use kan_core::bundle::{
    Csr, TensorFile, check_digest, parallel, parse_manifest, read_manifest, sha256_file,
    user_history, verify_files,
};
pub use push::push;
pub use remote::{Remote, RemoteOptions};

use crate::error::{Error, Result};

/// `item_id<TAB>title` lines; a line without a tab or with an empty title is skipped.
fn parse_titles(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(id, title)| !id.is_empty() && !title.trim().is_empty())
        .map(|(id, title)| (id.to_string(), title.trim().to_string()))
        .collect()
}

/// External ids and their internal indices (line `i` of the id file is index `i`).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl Catalogue {
    pub fn new(ids: Vec<String>) -> Result<Self> {
        let mut index = HashMap::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if index.insert(id.clone(), i as u32).is_some() {
                return Err(Error::Bundle(format!("id '{id}' is listed twice")));
            }
        }
        Ok(Self { ids, index })
    }

    /// Reads an id file, one id per line (a trailing newline is allowed).
    pub fn read(path: &Path) -> Result<Self> {
        Self::new(kan_core::bundle::read_ids(path)?)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    pub fn id(&self, index: u32) -> Option<&str> {
        self.ids.get(index as usize).map(String::as_str)
    }
}

/// Users' stored interactions, most recent first.
#[derive(Debug, Clone)]
pub struct UserHistory {
    csr: Csr,
    timestamps: Vec<i64>,
}

impl UserHistory {
    pub fn items(&self, user: u32) -> &[u32] {
        self.csr.row(user as usize)
    }

    pub fn timestamps(&self, user: u32) -> &[i64] {
        &self.timestamps[self.csr.range(user as usize)]
    }

    /// Every user's engagements as the core's social kernel reads them.
    pub fn engagements(&self) -> kan_core::social::Engagements<'_> {
        kan_core::social::Engagements {
            items: self.csr.view(),
            timestamps: &self.timestamps,
        }
    }
}

/// A loaded, verified bundle.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    pub manifest: BundleManifest,
    pub items: Catalogue,
    pub users: Catalogue,
    pub history: Option<UserHistory>,
}

impl Bundle {
    /// Loads the bundle at `dir`: manifest rules, the expected version (when given), every
    /// checksum, then ids and histories.
    pub fn load(dir: &Path, expected_version: Option<&str>) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        if let Some(expected) = expected_version
            && expected != manifest.version
        {
            return Err(Error::Bundle(format!(
                "bundle version is {}, but the spec pins bundle.sha256 to {expected}: update the spec or the bundle",
                manifest.version
            )));
        }
        verify_files(dir, &manifest)?;
        let listed = |name: &str| manifest.files.contains_key(name);
        let items = if listed(files::ITEMS) {
            Catalogue::read(&dir.join(files::ITEMS))?
        } else {
            Catalogue::default()
        };
        let users = if listed(files::USERS) {
            Catalogue::read(&dir.join(files::USERS))?
        } else {
            Catalogue::default()
        };
        let history = if listed(files::USER_HISTORY) {
            let file = TensorFile::read(&dir.join(files::USER_HISTORY))?;
            let (csr, timestamps) = user_history(&file, users.len(), items.len())?;
            Some(UserHistory { csr, timestamps })
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            items,
            users,
            history,
        })
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Item id → display title from `titles.tsv` (`item_id<TAB>title` per line), empty when the
    /// bundle has none.
    pub fn titles(&self) -> Result<HashMap<String, String>> {
        if !self.has_file(files::TITLES) {
            return Ok(HashMap::new());
        }
        let path = self.dir.join(files::TITLES);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Ok(parse_titles(&text))
    }

    /// True when the manifest lists `name`.
    pub fn has_file(&self, name: &str) -> bool {
        self.manifest.files.contains_key(name)
    }

    /// Path of a file the manifest lists; an error naming the strategy's needs otherwise.
    pub fn require(&self, name: &str) -> Result<PathBuf> {
        Ok(kan_core::bundle::listed_path(
            &self.dir,
            &self.manifest,
            name,
        )?)
    }

    /// Opens a listed safetensors file.
    pub fn tensors(&self, name: &str) -> Result<TensorFile> {
        Ok(TensorFile::read(&self.require(name)?)?)
    }

    /// Item vectors `[N, D]` from `item_vectors.safetensors`, checked against the catalogue and
    /// the manifest's `dim`.
    pub fn item_vectors(&self) -> Result<(usize, Vec<f32>)> {
        let file = self.tensors(files::ITEM_VECTORS)?;
        let (shape, data) = file.f32("vectors")?;
        let dim = self.manifest.dim.unwrap_or(0) as usize;
        if shape.len() != 2 || shape[0] != self.items.len() || shape[1] != dim {
            return Err(file
                .error(
                    "vectors",
                    format!(
                        "expected shape [{}, {dim}] (items, manifest dim), found {shape:?}",
                        self.items.len()
                    ),
                )
                .into());
        }
        if data.iter().any(|x| !x.is_finite()) {
            return Err(file
                .error("vectors", "contains NaN or infinite values")
                .into());
        }
        Ok((dim, data))
    }

    /// `params.reference_time`: "now" for time decay, so offline data keeps its shape.
    pub fn reference_time(&self) -> Option<i64> {
        self.manifest
            .params
            .get(params::REFERENCE_TIME)
            .and_then(serde_json::Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_read_per_line_and_lines_without_a_title_are_skipped() {
        let titles = parse_titles("1\tToy Story (1995)\n2\t\nno tab\n\tNo id\n3\tGoldenEye \n");
        assert_eq!(titles.len(), 2, "{titles:?}");
        assert_eq!(titles["1"], "Toy Story (1995)");
        assert_eq!(titles["3"], "GoldenEye");
    }
}
