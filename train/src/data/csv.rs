//! The generic export format: a directory with `interactions.csv`
//! (`user_id,item_id[,timestamp][,weight]`, header required), and optionally `items.csv`
//! (`item_id[,categories][,title]`, categories separated by `|`), `users.csv`
//! (`user_id,<attribute>...`) and `social.csv` (`user_id,friend_id`). Fields are plain
//! comma-separated values; quoting is not supported (a quote is reported as an error).

use std::path::Path;

use super::lines::{TextFile, column, fields};
use super::{Dataset, IdMap, push_interaction};
use crate::error::{Error, Result};

pub(super) fn load(dir: &Path) -> Result<Dataset> {
    let inter = dir.join("interactions.csv");
    if !inter.is_file() {
        return Err(Error::InvalidInput(format!(
            "{} is missing: the csv format needs interactions.csv with a header user_id,item_id[,timestamp][,weight]",
            inter.display()
        )));
    }
    let name = dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("csv")
        .to_string();
    let mut ds = Dataset {
        name,
        ..Dataset::default()
    };
    read_interactions(&mut ds, &TextFile::read(&inter)?)?;
    ds.pad_side_info();
    if dir.join("items.csv").is_file() {
        read_items(&mut ds, &TextFile::read(&dir.join("items.csv"))?)?;
    }
    if dir.join("users.csv").is_file() {
        let file = TextFile::read(&dir.join("users.csv"))?;
        let (head, rows) = table(&file)?;
        let id = column(&file, &head, "user_id")?;
        for (_, f) in rows {
            for (c, key) in head.iter().enumerate().filter(|(c, _)| *c != id) {
                ds.set_user_attr(f[id], key, f.get(c).copied().unwrap_or(""));
            }
        }
    }
    if dir.join("social.csv").is_file() {
        let file = TextFile::read(&dir.join("social.csv"))?;
        let (head, rows) = table(&file)?;
        let (a, b) = (
            column(&file, &head, "user_id")?,
            column(&file, &head, "friend_id")?,
        );
        for (_, f) in rows {
            if let (Some(x), Some(y)) = (ds.users.get(f[a]), ds.users.get(f[b])) {
                ds.social_edges.push((x, y));
            }
        }
    }
    Ok(ds)
}

type Rows<'a> = Vec<(usize, Vec<&'a str>)>;

/// Header and rows of a comma-separated file; every row must have the header's width.
fn table(file: &TextFile) -> Result<(Vec<&str>, Rows<'_>)> {
    let mut lines = file.lines();
    let (_, head) = lines
        .next()
        .ok_or_else(|| file.err(1, "empty file, expected a header"))?;
    let head: Vec<&str> = head.split(',').map(str::trim).collect();
    let mut rows = Vec::new();
    for (n, row) in lines {
        if row.contains('"') {
            return Err(file.err(n, "quoted fields are not supported; export without quotes"));
        }
        let f: Vec<&str> = fields(file, n, row, ',', head.len())?
            .into_iter()
            .map(str::trim)
            .collect();
        rows.push((n, f));
    }
    Ok((head, rows))
}

fn read_interactions(ds: &mut Dataset, file: &TextFile) -> Result<()> {
    let (head, rows) = table(file)?;
    let (u, i) = (
        column(file, &head, "user_id")?,
        column(file, &head, "item_id")?,
    );
    let t = head.iter().position(|h| *h == "timestamp");
    let w = head.iter().position(|h| *h == "weight");
    let mut out = Vec::with_capacity(rows.len());
    for (n, f) in rows {
        if f[u].is_empty() || f[i].is_empty() {
            return Err(file.err(n, "empty user_id or item_id"));
        }
        let ts = t
            .map(|t| file.num::<i64>(n, "timestamp", f[t]))
            .transpose()?
            .unwrap_or(0);
        let weight = w
            .map(|w| file.num::<f32>(n, "weight", f[w]))
            .transpose()?
            .unwrap_or(1.0);
        if !weight.is_finite() {
            return Err(file.err(n, format!("weight `{}` is not finite", f[w.unwrap_or(0)])));
        }
        push_interaction(ds, &mut out, f[u], f[i], ts, weight);
    }
    ds.interactions = out;
    Ok(())
}

fn read_items(ds: &mut Dataset, file: &TextFile) -> Result<()> {
    let (head, rows) = table(file)?;
    let id = column(file, &head, "item_id")?;
    let cat = head.iter().position(|h| *h == "categories");
    let title = head.iter().position(|h| *h == "title");
    let mut names = IdMap::default();
    for (_, f) in rows {
        if let Some(c) = cat {
            ds.add_item_categories(f[id], f[c].split('|'), &mut names);
        }
        if let (Some(t), Some(i)) = (title, ds.items.get(f[id])) {
            ds.item_titles[i as usize] = Some(f[t].to_string());
        }
    }
    ds.category_names = names.ids().to_vec();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_with_side_tables_loads_everything() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("interactions.csv"),
            "user_id,item_id,timestamp,weight\nu1,a,10,1\nu2,b,20,2.5\nu1,b,30,1\n",
        )
        .unwrap();
        std::fs::write(
            d.join("items.csv"),
            "item_id,categories,title\na,news|sport,A\nb,music,B\n",
        )
        .unwrap();
        std::fs::write(d.join("users.csv"), "user_id,region\nu1,SH\nu2,BJ\n").unwrap();
        std::fs::write(d.join("social.csv"), "user_id,friend_id\nu1,u2\nu1,ghost\n").unwrap();
        let ds = load(d).unwrap();
        assert_eq!(ds.interactions.len(), 3);
        assert_eq!(ds.interactions[1].weight, 2.5);
        assert_eq!(ds.category_names, ["news", "sport", "music"]);
        assert_eq!(ds.user_attrs["region"][1].as_deref(), Some("BJ"));
        assert_eq!(ds.social_edges, [(0, 1)]);
        assert_eq!(ds.item_titles[0].as_deref(), Some("A"));
    }

    #[test]
    fn a_malformed_weight_names_file_line_and_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("interactions.csv"),
            "user_id,item_id,timestamp,weight\nu1,a,10,1\nu1,b,11,heavy\n",
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("interactions.csv:3:") && err.contains("weight `heavy`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_item_id_column_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("interactions.csv"),
            "user_id,item,timestamp\nu1,a,10\n",
        )
        .unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("missing column `item_id`"), "{err}");
    }
}
