//! The SocialLGN split (`--format sociallgn`, alias `lastfm`):
//! `sociallgn_split/{train_set,test_set,trust}.txt` (comma-separated, header line, re-indexed
//! ids) and, for LastFM (HetRec 2011), artist names and tags from `hetrec2011-lastfm-2k/` mapped
//! through `sociallgn_split/itemReindex.json` when present. The dataset is named after its
//! directory (the one holding `sociallgn_split/`), not after the format.

use std::collections::HashMap;
use std::path::Path;

use super::lines::{TextFile, fields};
use super::{Dataset, IdMap, Interaction, push_interaction};
use crate::error::{Error, Result};

/// Tags kept per artist (the most used ones) as its categories.
const TAGS_PER_ITEM: usize = 3;

/// The directory's name; when given the split directory itself, its parent's.
fn dataset_name(dir: &Path, split: &Path) -> String {
    let named = if split == dir && dir.file_name().is_some_and(|n| n == "sociallgn_split") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    named
        .canonicalize()
        .unwrap_or_else(|_| named.to_path_buf())
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("sociallgn")
        .to_string()
}

pub(super) fn load(dir: &Path) -> Result<Dataset> {
    let split = if dir.join("sociallgn_split").is_dir() {
        dir.join("sociallgn_split")
    } else {
        dir.to_path_buf()
    };
    let need = |f: &str| {
        let p = split.join(f);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::InvalidInput(format!(
                "{} is missing: the sociallgn format needs sociallgn_split/train_set.txt, test_set.txt and trust.txt",
                p.display()
            )))
        }
    };
    let (train, test, trust) = (
        need("train_set.txt")?,
        need("test_set.txt")?,
        need("trust.txt")?,
    );
    let mut ds = Dataset {
        name: dataset_name(dir, &split),
        ..Dataset::default()
    };
    ds.interactions = read_pairs_as_interactions(&mut ds, &TextFile::read(&train)?)?;
    ds.provided_test = Some(read_pairs_as_interactions(
        &mut ds,
        &TextFile::read(&test)?,
    )?);
    let trust = TextFile::read(&trust)?;
    for (n, row) in trust.lines().skip(1) {
        let f = fields(&trust, n, row, ',', 2)?;
        let mut user = |id: &str| ds.users.intern(id.trim());
        let (a, b) = (user(f[0]), user(f[1]));
        ds.social_edges.push((a, b));
    }
    ds.pad_side_info();
    let raw = dir.join("hetrec2011-lastfm-2k");
    let reindex = split.join("itemReindex.json");
    if raw.is_dir() && reindex.is_file() {
        read_tags_and_names(&mut ds, &raw, &reindex)?;
    }
    Ok(ds)
}

fn read_pairs_as_interactions(ds: &mut Dataset, file: &TextFile) -> Result<Vec<Interaction>> {
    let mut out = Vec::new();
    for (n, row) in file.lines().skip(1) {
        let f = fields(file, n, row, ',', 2)?;
        file.num::<u64>(n, "user", f[0])?;
        file.num::<u64>(n, "item", f[1])?;
        push_interaction(ds, &mut out, f[0].trim(), f[1].trim(), 0, 1.0);
    }
    Ok(out)
}

fn read_tags_and_names(ds: &mut Dataset, raw: &Path, reindex: &Path) -> Result<()> {
    let text = std::fs::read_to_string(reindex).map_err(|e| Error::io(reindex, e))?;
    let map: HashMap<String, u64> = serde_json::from_str(&text).map_err(|e| {
        Error::InvalidInput(format!(
            "{}: not a JSON object of ids: {e}",
            reindex.display()
        ))
    })?;
    let item_of = |artist: &str| map.get(artist.trim()).map(|i| i.to_string());

    let artists = raw.join("artists.dat");
    if artists.is_file() {
        let file = TextFile::read(&artists)?;
        for (n, row) in file.lines().skip(1) {
            let f = fields(&file, n, row, '\t', 2)?;
            if let Some(i) = item_of(f[0]).and_then(|id| ds.items.get(&id)) {
                ds.item_titles[i as usize] = Some(f[1].trim().to_string());
            }
        }
    }
    let (tags, tagged) = (raw.join("tags.dat"), raw.join("user_taggedartists.dat"));
    if !(tags.is_file() && tagged.is_file()) {
        return Ok(());
    }
    let file = TextFile::read(&tags)?;
    let mut tag_names = HashMap::new();
    for (n, row) in file.lines().skip(1) {
        let f = fields(&file, n, row, '\t', 2)?;
        tag_names.insert(f[0].trim().to_string(), f[1].trim().to_string());
    }
    let file = TextFile::read(&tagged)?;
    let mut counts: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for (n, row) in file.lines().skip(1) {
        let f = fields(&file, n, row, '\t', 3)?;
        if let (Some(item), Some(tag)) = (item_of(f[1]), tag_names.get(f[2].trim())) {
            *counts
                .entry(item)
                .or_default()
                .entry(tag.clone())
                .or_default() += 1;
        }
    }
    let mut names = IdMap::default();
    let mut items: Vec<_> = counts.into_iter().collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    for (item, tags) in items {
        let mut tags: Vec<_> = tags.into_iter().collect();
        tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top = tags.iter().take(TAGS_PER_ITEM).map(|(t, _)| t.as_str());
        ds.add_item_categories(&item, top, &mut names);
    }
    ds.category_names = names.ids().to_vec();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sociallgn_split_loads_with_its_trust_graph_and_tags() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("sociallgn_split");
        let r = dir.path().join("hetrec2011-lastfm-2k");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(s.join("train_set.txt"), "user,item\n0,0\n0,1\n1,1\n").unwrap();
        std::fs::write(s.join("test_set.txt"), "user,item\n1,0\n").unwrap();
        std::fs::write(s.join("trust.txt"), "user,friend\n0,1\n1,0\n").unwrap();
        std::fs::write(s.join("itemReindex.json"), r#"{"51": 0, "52": 1}"#).unwrap();
        std::fs::write(
            r.join("artists.dat"),
            "id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp\n",
        )
        .unwrap();
        std::fs::write(r.join("tags.dat"), "tagID\ttagValue\n1\tpop\n2\trock\n").unwrap();
        std::fs::write(
            r.join("user_taggedartists.dat"),
            "userID\tartistID\ttagID\tday\tmonth\tyear\n2\t51\t1\t1\t1\t2009\n3\t51\t1\t1\t1\t2009\n3\t51\t2\t1\t1\t2009\n",
        )
        .unwrap();
        let ds = load(dir.path()).unwrap();
        assert_eq!(ds.interactions.len(), 3);
        assert_eq!(ds.provided_test.as_ref().unwrap().len(), 1);
        assert_eq!(ds.social_edges, [(0, 1), (1, 0)]);
        assert_eq!(ds.item_titles[0].as_deref(), Some("Duran Duran"));
        let first: Vec<_> = ds.item_categories[0]
            .iter()
            .map(|&c| ds.category_names[c as usize].clone())
            .collect();
        assert_eq!(first, ["pop", "rock"]);
        assert!(ds.item_categories[1].is_empty());
    }

    #[test]
    fn the_dataset_is_named_after_its_directory_and_lastfm_stays_an_alias_of_the_format() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("epinions");
        let s = dir.join("sociallgn_split");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("train_set.txt"), "user,item\n0,0\n1,1\n").unwrap();
        std::fs::write(s.join("test_set.txt"), "user,item\n1,0\n").unwrap();
        std::fs::write(s.join("trust.txt"), "user,friend\n0,1\n").unwrap();
        assert_eq!(load(&dir).unwrap().name, "epinions");
        assert_eq!(
            load(&s).unwrap().name,
            "epinions",
            "given the split directory"
        );
        use std::str::FromStr;
        for name in ["sociallgn", "lastfm"] {
            assert_eq!(
                super::super::Format::from_str(name).unwrap(),
                super::super::Format::Sociallgn
            );
        }
    }

    #[test]
    fn a_missing_trust_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train_set.txt"), "user,item\n0,0\n").unwrap();
        std::fs::write(dir.path().join("test_set.txt"), "user,item\n0,1\n").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("trust.txt is missing"), "{err}");
    }
}
