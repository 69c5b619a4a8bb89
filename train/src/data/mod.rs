//! Interaction data and the readers that load it.
//!
//! Every reader produces the same [`Dataset`]: dense internal indices for users and items (in
//! order of first appearance), interactions, and whatever side information the format carries
//! (user attributes, item categories, titles, a social graph, a provided test split).

mod csv;
mod ids;
mod lightgcn;
mod lines;
mod parquet;
mod recbole;
mod sociallgn;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

pub use ids::IdMap;

/// One user–item interaction. `seq` orders interactions that share a timestamp (file order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interaction {
    pub user: u32,
    pub item: u32,
    /// Unix seconds, 0 when the format has no time.
    pub ts: i64,
    pub weight: f32,
    pub seq: u32,
}

/// A loaded dataset, before splitting.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub name: String,
    pub users: IdMap,
    pub items: IdMap,
    /// All interactions, or the training part when the format provides a split.
    pub interactions: Vec<Interaction>,
    /// The format's own held-out interactions (LightGCN `test.txt`, SocialLGN `test_set.txt`).
    pub provided_test: Option<Vec<Interaction>>,
    /// User attribute columns: name → value per user index (None when unknown).
    pub user_attrs: BTreeMap<String, Vec<Option<String>>>,
    /// Categories (genres, tags) per item index, as indices into `category_names`.
    pub item_categories: Vec<Vec<u32>>,
    pub category_names: Vec<String>,
    /// Entities and other item attributes per item index (knowledge-graph tails such as
    /// `actor:m.0x` and `director:m.0y`, `decade:1990s`, rows of `item_tags.csv`), as indices
    /// into `entity_names`. Read by the attribute strategy beside the categories.
    pub item_entities: Vec<Vec<u32>>,
    pub entity_names: Vec<String>,
    /// Entity sets of knowledge-graph subjects that are not items of the data (films without
    /// interactions), for relating entities to each other; only entities some item has.
    pub kg_docs: Vec<Vec<u32>>,
    /// Display titles per item index.
    pub item_titles: Vec<Option<String>>,
    /// Explicit social edges between user indices (directed; symmetric graphs list both ways).
    pub social_edges: Vec<(u32, u32)>,
}

/// Input formats `kan train --format` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RecBole atomic files (`<name>.inter`, `.item`, `.user`, `.kg`, `.link`), e.g. ML-100K.
    Recbole,
    /// LightGCN/NGCF `train.txt` + `test.txt` (`user item item ...` per line), e.g. Gowalla.
    Lightgcn,
    /// The SocialLGN split (`sociallgn_split/`: train, test, trust), e.g. LastFM HetRec 2011 with
    /// its tags; `lastfm` is accepted as an alias.
    Sociallgn,
    /// `interactions.csv` or `interactions.parquet` (`user_id,item_id,timestamp[,weight]`) +
    /// optional `items`, `users`, `social` tables, each `.csv` or `.parquet`.
    Csv,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ml100k" | "recbole" => Ok(Format::Recbole),
            "lightgcn" | "gowalla" => Ok(Format::Lightgcn),
            "sociallgn" | "lastfm" => Ok(Format::Sociallgn),
            "csv" | "parquet" => Ok(Format::Csv),
            other => Err(Error::InvalidInput(format!(
                "unknown data format `{other}`: use ml100k (RecBole atomic), lightgcn, sociallgn (alias lastfm) or csv (CSV or Parquet tables)"
            ))),
        }
    }
}

/// Reads a dataset directory in the given format.
pub fn load(dir: &Path, format: Format) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(Error::InvalidInput(format!(
            "data directory {} does not exist (for ML-100K run `make data`)",
            dir.display()
        )));
    }
    let mut ds = match format {
        Format::Recbole => recbole::load(dir)?,
        Format::Lightgcn => lightgcn::load(dir)?,
        Format::Sociallgn => sociallgn::load(dir)?,
        Format::Csv => csv::load(dir)?,
    };
    if ds.interactions.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{} holds no interactions",
            dir.display()
        )));
    }
    ds.pad_side_info();
    let tags = dir.join(ITEM_TAGS_FILE);
    if tags.is_file() {
        read_item_tags(&mut ds, &lines::TextFile::read(&tags)?)?;
    }
    let categories = dir.join(ITEM_CATEGORIES_FILE);
    if categories.is_file() {
        read_item_categories(&mut ds, &lines::TextFile::read(&categories)?)?;
    }
    Ok(ds)
}

/// A generic item → tag table any format may sit beside: `item_id,tag` rows (header first),
/// read as item entities (tags of unknown items are skipped).
pub const ITEM_TAGS_FILE: &str = "item_tags.csv";

/// A generic item → category table any format may sit beside: `item_id,category` rows (header
/// first), added to the categories the format itself reads (exploratory and attribute use
/// them; categories of unknown items are skipped).
pub const ITEM_CATEGORIES_FILE: &str = "item_categories.csv";

fn read_item_categories(ds: &mut Dataset, file: &lines::TextFile) -> Result<()> {
    let mut names = IdMap::from_ids(std::mem::take(&mut ds.category_names));
    for (n, row) in file.lines().skip(1) {
        let f = lines::fields(file, n, row, ',', 2)?;
        ds.add_item_categories(f[0].trim(), [f[1]], &mut names);
    }
    ds.category_names = names.ids().to_vec();
    Ok(())
}

fn read_item_tags(ds: &mut Dataset, file: &lines::TextFile) -> Result<()> {
    let mut names = IdMap::from_ids(std::mem::take(&mut ds.entity_names));
    for (n, row) in file.lines().skip(1) {
        let f = lines::fields(file, n, row, ',', 2)?;
        ds.add_item_entity(f[0].trim(), f[1].trim(), &mut names);
    }
    ds.entity_names = names.ids().to_vec();
    Ok(())
}

/// Reads one interactions table, `.csv` or `.parquet` (columns
/// `user_id,item_id[,timestamp][,weight]`, as in the csv format's `interactions` table).
pub fn read_interactions(path: &Path) -> Result<Dataset> {
    let mut ds = Dataset {
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("interactions")
            .to_string(),
        ..Dataset::default()
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => csv::read_interactions(&mut ds, &lines::TextFile::read(path)?)?,
        Some("parquet") => parquet::read_interactions(&mut ds, path)?,
        _ => {
            return Err(Error::InvalidInput(format!(
                "{}: interactions must be a .csv or .parquet file",
                path.display()
            )));
        }
    }
    ds.pad_side_info();
    Ok(ds)
}

/// Reads a Parquet column of equal-length float lists as a row-major `(rows, dim, values)`
/// matrix (item vectors for `kan bundle pack`).
pub fn read_vector_column(path: &Path, column: &str) -> Result<(usize, usize, Vec<f32>)> {
    parquet::read_vector_column(path, column)
}

impl Dataset {
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Makes every per-item and per-user side table as long as the id maps.
    pub(crate) fn pad_side_info(&mut self) {
        let (nu, ni) = (self.n_users(), self.n_items());
        self.item_categories.resize(ni, Vec::new());
        self.item_entities.resize(ni, Vec::new());
        self.item_titles.resize(ni, None);
        for col in self.user_attrs.values_mut() {
            col.resize(nu, None);
        }
    }

    /// Sets the categories of an item by external id, interning category names; unknown items
    /// are skipped (side tables often list items that never occur in the interactions).
    pub(crate) fn add_item_categories<'a>(
        &mut self,
        item: &str,
        categories: impl IntoIterator<Item = &'a str>,
        names: &mut IdMap,
    ) {
        let Some(i) = self.items.get(item) else {
            return;
        };
        let i = i as usize;
        if self.item_categories.len() <= i {
            self.item_categories.resize(i + 1, Vec::new());
        }
        for c in categories {
            let c = c.trim();
            if c.is_empty() {
                continue;
            }
            let idx = names.intern(c);
            if !self.item_categories[i].contains(&idx) {
                self.item_categories[i].push(idx);
            }
        }
    }

    /// Adds an entity (a tag) to an item by external id, interning its name; unknown items and
    /// empty names are skipped.
    pub(crate) fn add_item_entity(&mut self, item: &str, entity: &str, names: &mut IdMap) {
        let (Some(i), false) = (self.items.get(item), entity.is_empty()) else {
            return;
        };
        let i = i as usize;
        if self.item_entities.len() <= i {
            self.item_entities.resize(i + 1, Vec::new());
        }
        let e = names.intern(entity);
        if !self.item_entities[i].contains(&e) {
            self.item_entities[i].push(e);
        }
    }

    /// Sets one attribute of a user by external id; unknown users are skipped.
    pub(crate) fn set_user_attr(&mut self, user: &str, key: &str, value: &str) {
        let Some(u) = self.users.get(user) else {
            return;
        };
        let n = self.n_users();
        let col = self
            .user_attrs
            .entry(key.to_string())
            .or_insert_with(|| vec![None; n]);
        col.resize(n, None);
        if !value.trim().is_empty() {
            col[u as usize] = Some(value.trim().to_string());
        }
    }

    /// sha256 over the interactions (internal indices, time, weight) and both id maps.
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::with_capacity(self.interactions.len() * 20);
        for it in self
            .interactions
            .iter()
            .chain(self.provided_test.iter().flatten())
        {
            bytes.extend_from_slice(&it.user.to_le_bytes());
            bytes.extend_from_slice(&it.item.to_le_bytes());
            bytes.extend_from_slice(&it.ts.to_le_bytes());
            bytes.extend_from_slice(&it.weight.to_le_bytes());
        }
        for id in self.users.ids().iter().chain(self.items.ids()) {
            bytes.extend_from_slice(id.as_bytes());
            bytes.push(b'\n');
        }
        kan_api::bundle::sha256_hex(&bytes)
    }
}

/// Builds interactions from `(user, item, ts, weight)` rows, interning ids in order.
pub(crate) fn push_interaction(
    ds: &mut Dataset,
    out: &mut Vec<Interaction>,
    user: &str,
    item: &str,
    ts: i64,
    weight: f32,
) {
    let seq = out.len() as u32;
    let user = ds.users.intern(user);
    let item = ds.items.intern(item);
    out.push(Interaction {
        user,
        item,
        ts,
        weight,
        seq,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_format_name_lists_the_accepted_ones() {
        let err = "arff".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("ml100k") && err.contains("csv"), "{err}");
    }

    #[test]
    fn an_item_tags_file_beside_any_format_adds_entities_to_known_items() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("interactions.csv"),
            "user_id,item_id,timestamp\nu1,a,1\nu1,b,2\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(ITEM_TAGS_FILE),
            "item_id,tag\na,author:x\nb,author:x\nb,topic:y\nzz,topic:z\n",
        )
        .unwrap();
        let ds = load(dir.path(), Format::Csv).unwrap();
        let names = |i: usize| -> Vec<&str> {
            ds.item_entities[i]
                .iter()
                .map(|&e| ds.entity_names[e as usize].as_str())
                .collect()
        };
        assert_eq!(names(0), ["author:x"]);
        assert_eq!(names(1), ["author:x", "topic:y"]);
        assert_eq!(
            ds.entity_names.len(),
            2,
            "the unknown item's tag is skipped"
        );
    }

    #[test]
    fn an_item_categories_file_beside_any_format_adds_categories_to_known_items() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.txt"), "0 10 11\n1 11 12\n").unwrap();
        std::fs::write(dir.path().join("test.txt"), "0 12\n1 10\n").unwrap();
        std::fs::write(
            dir.path().join(ITEM_CATEGORIES_FILE),
            "item_id,category\n10,bar\n11,bar\n11,cafe\n99,park\n",
        )
        .unwrap();
        let ds = load(dir.path(), Format::Lightgcn).unwrap();
        let names = |id: &str| -> Vec<&str> {
            ds.item_categories[ds.items.get(id).unwrap() as usize]
                .iter()
                .map(|&c| ds.category_names[c as usize].as_str())
                .collect()
        };
        assert_eq!(names("10"), ["bar"]);
        assert_eq!(names("11"), ["bar", "cafe"]);
        assert!(names("12").is_empty());
        assert_eq!(
            ds.category_names,
            ["bar", "cafe"],
            "the unknown item's is skipped"
        );
        // A row without a category names its line.
        std::fs::write(
            dir.path().join(ITEM_CATEGORIES_FILE),
            "item_id,category\n10\n",
        )
        .unwrap();
        let err = load(dir.path(), Format::Lightgcn).unwrap_err().to_string();
        assert!(
            err.contains(ITEM_CATEGORIES_FILE) && err.contains('2'),
            "{err}"
        );
    }

    #[test]
    fn a_missing_data_directory_says_how_to_get_ml100k() {
        let err = load(Path::new("/definitely/not/here"), Format::Recbole).unwrap_err();
        assert!(err.to_string().contains("make data"), "{err}");
    }
}
