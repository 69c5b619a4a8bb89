//! RecBole atomic files: `<name>.inter` (+ `.item`, `.user`, `.kg`, `.link`), tab-separated,
//! with a `field:type` header (e.g. `user_id:token`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::lines::{TextFile, column, fields};
use super::{Dataset, IdMap, push_interaction};
use crate::error::{Error, Result};

/// Item columns read as categories (space-separated tokens).
const CATEGORY_COLUMNS: [&str; 3] = ["class", "genre", "categories"];
/// Item columns read as display titles.
const TITLE_COLUMNS: [&str; 2] = ["movie_title", "title"];
/// KG relations whose tails become categories of the linked item.
const KG_CATEGORY_RELATION: &str = "genre";
/// Item columns read as a release year (an entity `decade:1990s`).
const YEAR_COLUMNS: [&str; 2] = ["release_year", "year"];

pub(super) fn load(dir: &Path) -> Result<Dataset> {
    let inter = find_inter(dir)?;
    let stem = inter
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("dataset")
        .to_string();
    let mut ds = Dataset {
        name: stem.clone(),
        ..Dataset::default()
    };
    read_inter(&mut ds, &TextFile::read(&inter)?)?;
    ds.pad_side_info();
    let mut names = IdMap::default();
    let mut entities = IdMap::default();
    let side = |ext: &str| dir.join(format!("{stem}.{ext}"));
    if side("item").is_file() {
        read_items(
            &mut ds,
            &TextFile::read(&side("item"))?,
            &mut names,
            &mut entities,
        )?;
    }
    if side("user").is_file() {
        read_users(&mut ds, &TextFile::read(&side("user"))?)?;
    }
    if side("kg").is_file() && side("link").is_file() {
        let link = TextFile::read(&side("link"))?;
        let kg = TextFile::read(&side("kg"))?;
        read_kg(&mut ds, &link, &kg, &mut names, &mut entities)?;
    }
    ds.category_names = names.ids().to_vec();
    ds.entity_names = entities.ids().to_vec();
    Ok(ds)
}

fn find_inter(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "inter"))
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        Error::InvalidInput(format!(
            "{} has no RecBole `.inter` file (expected e.g. ml-100k.inter)",
            dir.display()
        ))
    })
}

/// Header names without their `:type` suffix.
fn header(row: &str) -> Vec<&str> {
    row.split('\t')
        .map(|h| h.split(':').next().unwrap_or(h).trim())
        .collect()
}

fn read_inter(ds: &mut Dataset, file: &TextFile) -> Result<()> {
    let mut lines = file.lines();
    let (_, head) = lines
        .next()
        .ok_or_else(|| file.err(1, "empty file, expected a header"))?;
    let head = header(head);
    let (u, i) = (
        column(file, &head, "user_id")?,
        column(file, &head, "item_id")?,
    );
    let t = head.iter().position(|h| *h == "timestamp");
    let w = head.iter().position(|h| *h == "rating");
    let mut out = Vec::new();
    for (n, row) in lines {
        let f = fields(file, n, row, '\t', head.len())?;
        let (user, item) = (f[u].trim(), f[i].trim());
        if user.is_empty() || item.is_empty() {
            return Err(file.err(n, "empty user_id or item_id"));
        }
        let ts = match t {
            Some(t) => file.num::<f64>(n, "timestamp", f[t])? as i64,
            None => 0,
        };
        let weight = match w {
            Some(w) => file.num::<f32>(n, "rating", f[w])?,
            None => 1.0,
        };
        push_interaction(ds, &mut out, user, item, ts, weight);
    }
    ds.interactions = out;
    Ok(())
}

fn read_items(
    ds: &mut Dataset,
    file: &TextFile,
    names: &mut IdMap,
    entities: &mut IdMap,
) -> Result<()> {
    let mut lines = file.lines();
    let (_, head) = lines
        .next()
        .ok_or_else(|| file.err(1, "empty file, expected a header"))?;
    let head = header(head);
    let id = column(file, &head, "item_id")?;
    let cat = head.iter().position(|h| CATEGORY_COLUMNS.contains(h));
    let title = head.iter().position(|h| TITLE_COLUMNS.contains(h));
    let year = head.iter().position(|h| YEAR_COLUMNS.contains(h));
    for (n, row) in lines {
        let f = fields(file, n, row, '\t', id + 1)?;
        let item = f[id].trim();
        if let Some(c) = cat.and_then(|c| f.get(c)) {
            ds.add_item_categories(item, c.split(' '), names);
        }
        if let (Some(t), Some(i)) = (title.and_then(|t| f.get(t)), ds.items.get(item)) {
            ds.item_titles[i as usize] = Some(t.trim().to_string());
        }
        if let Some(y) = year
            .and_then(|y| f.get(y))
            .and_then(|y| y.trim().parse::<u32>().ok())
        {
            ds.add_item_entity(item, &format!("decade:{}s", y / 10 * 10), entities);
        }
    }
    Ok(())
}

fn read_users(ds: &mut Dataset, file: &TextFile) -> Result<()> {
    let mut lines = file.lines();
    let (_, head) = lines
        .next()
        .ok_or_else(|| file.err(1, "empty file, expected a header"))?;
    let head = header(head);
    let id = column(file, &head, "user_id")?;
    for (n, row) in lines {
        let f = fields(file, n, row, '\t', head.len())?;
        for (c, key) in head.iter().enumerate().filter(|(c, _)| *c != id) {
            ds.set_user_attr(f[id].trim(), key, f[c]);
        }
    }
    Ok(())
}

/// Items linked to KG entities get the tails of their `...genre` relations as categories and
/// every tail of a `film.film.*`-style relation (`<head> <domain>.<type>.<relation> <tail>`) as
/// an entity `<relation>:<tail>` (e.g. `actor:m.0x`). Subjects not linked to an item become
/// [`Dataset::kg_docs`] (their entities that some item also has).
fn read_kg(
    ds: &mut Dataset,
    link: &TextFile,
    kg: &TextFile,
    names: &mut IdMap,
    entities: &mut IdMap,
) -> Result<()> {
    let mut entity_items: HashMap<String, Vec<String>> = HashMap::new();
    for (n, row) in link.lines().skip(1) {
        let f = fields(link, n, row, '\t', 2)?;
        entity_items
            .entry(f[1].trim().to_string())
            .or_default()
            .push(f[0].trim().to_string());
    }
    let mut unlinked: HashMap<String, Vec<String>> = HashMap::new();
    for (n, row) in kg.lines().skip(1) {
        let f = fields(kg, n, row, '\t', 3)?;
        let (head, relation, tail) = (f[0].trim(), f[1].trim(), f[2].trim());
        let Some(items) = entity_items.get(head) else {
            if relation.split('.').nth(1) == Some("film") {
                let name = relation.rsplit('.').next().unwrap_or(relation);
                unlinked
                    .entry(head.to_string())
                    .or_default()
                    .push(format!("{name}:{tail}"));
            }
            continue;
        };
        if relation.ends_with(KG_CATEGORY_RELATION) {
            let cat = format!("kg:{tail}");
            for item in items {
                ds.add_item_categories(item, [cat.as_str()], names);
            }
            continue;
        }
        let name = relation.rsplit('.').next().unwrap_or(relation);
        let entity = format!("{name}:{tail}");
        for item in items {
            ds.add_item_entity(item, &entity, entities);
        }
    }
    let mut heads: Vec<_> = unlinked.into_iter().collect();
    heads.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, tails) in heads {
        let mut doc: Vec<u32> = tails.iter().filter_map(|t| entities.get(t)).collect();
        doc.sort_unstable();
        doc.dedup();
        if doc.len() > 1 {
            ds.kg_docs.push(doc);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn atomic_files_load_interactions_categories_titles_and_user_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "toy.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t100\n2\t10\t3\t50\n1\t11\t5\t200\n",
        );
        write(
            d,
            "toy.item",
            "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n10\tAlpha\t1995\tAction Comedy\n11\tBeta\t1982\tDrama\n99\tUnused\t1990\tHorror\n",
        );
        write(
            d,
            "toy.user",
            "user_id:token\tage:token\tgender:token\n1\t24\tM\n2\t53\tF\n",
        );
        write(d, "toy.link", "item_id:token\tentity_id:token\n11\tm.b\n");
        write(
            d,
            "toy.kg",
            "head_id:token\trelation_id:token\ttail_id:token\nm.b\tfilm.film.genre\tm.noir\nm.b\tfilm.film.actor\tm.x\nm.c\tfilm.film.actor\tm.x\nm.c\tfilm.film.directed_by\tm.d\nm.c\tfilm.film.country\tm.b\n",
        );
        let ds = load(d).unwrap();
        assert_eq!(ds.name, "toy");
        assert_eq!(
            (ds.n_users(), ds.n_items(), ds.interactions.len()),
            (2, 2, 3)
        );
        assert_eq!(ds.interactions[0].ts, 100);
        assert_eq!(ds.interactions[1].weight, 3.0);
        let cats = |i: usize| -> Vec<&str> {
            ds.item_categories[i]
                .iter()
                .map(|&c| ds.category_names[c as usize].as_str())
                .collect()
        };
        assert_eq!(cats(0), ["Action", "Comedy"]);
        assert_eq!(cats(1), ["Drama", "kg:m.noir"]);
        assert_eq!(ds.item_titles[1].as_deref(), Some("Beta"));
        let entities = |i: usize| -> Vec<&str> {
            ds.item_entities[i]
                .iter()
                .map(|&e| ds.entity_names[e as usize].as_str())
                .collect()
        };
        assert_eq!(entities(0), ["decade:1990s"]);
        assert_eq!(entities(1), ["decade:1980s", "actor:m.x"]);
        // The unlinked film m.c shares actor m.x; its director no item has.
        assert!(ds.kg_docs.is_empty(), "one known entity is no relation");
        assert_eq!(
            ds.user_attrs["gender"],
            [Some("M".to_string()), Some("F".to_string())]
        );
    }

    #[test]
    fn a_bad_timestamp_is_reported_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "bad.inter",
            "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t3\tyesterday\n",
        );
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.inter:3:") && err.contains("timestamp `yesterday`"),
            "{err}"
        );
    }

    #[test]
    fn a_short_row_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "s.inter",
            "user_id:token\titem_id:token\n1\t2\n7\n",
        );
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("s.inter:3:") && err.contains("expected at least 2 fields"),
            "{err}"
        );
    }
}
