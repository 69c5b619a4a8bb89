//! The generic export format: a directory with an interactions table and optional side tables,
//! each either a CSV file or a Parquet file of the same name:
//! `interactions` (`user_id,item_id[,timestamp][,weight]`), `items`
//! (`item_id[,categories][,title]`, categories separated by `|`, or a list in Parquet), `users`
//! (`user_id,<attribute>...`) and `social` (`user_id,friend_id`). CSV fields are plain
//! comma-separated values with a header; quoting is not supported (a quote is reported as an
//! error). Parquet is read by [`super::parquet`].

use std::path::{Path, PathBuf};

use super::lines::{TextFile, column, fields};
use super::parquet::{self, ParquetFile};
use super::{Dataset, IdMap, push_interaction};
use crate::error::{Error, Result};

pub(super) fn load(dir: &Path) -> Result<Dataset> {
    let Some(inter) = source(dir, "interactions")? else {
        return Err(Error::InvalidInput(format!(
            "{} holds no interactions.csv or interactions.parquet: the csv format needs one, with columns user_id,item_id[,timestamp][,weight]",
            dir.display()
        )));
    };
    let name = dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("csv")
        .to_string();
    let mut ds = Dataset {
        name,
        ..Dataset::default()
    };
    match inter {
        Source::Csv(path) => read_interactions(&mut ds, &TextFile::read(&path)?)?,
        Source::Parquet(path) => parquet::read_interactions(&mut ds, &path)?,
    }
    ds.pad_side_info();
    if let Some(items) = source(dir, "items")? {
        read_items(&mut ds, &Table::read(&items)?)?;
    }
    if let Some(users) = source(dir, "users")? {
        let table = Table::read(&users)?;
        let id = table.column("user_id")?;
        for row in &table.rows {
            for (c, key) in table.head.iter().enumerate().filter(|(c, _)| *c != id) {
                ds.set_user_attr(&row[id], key, &row[c]);
            }
        }
    }
    if let Some(social) = source(dir, "social")? {
        let table = Table::read(&social)?;
        let (a, b) = (table.column("user_id")?, table.column("friend_id")?);
        for row in &table.rows {
            if let (Some(x), Some(y)) = (ds.users.get(&row[a]), ds.users.get(&row[b])) {
                ds.social_edges.push((x, y));
            }
        }
    }
    Ok(ds)
}

/// The file one table of the export lives in.
enum Source {
    Csv(PathBuf),
    Parquet(PathBuf),
}

/// `<name>.csv` or `<name>.parquet` in `dir`, refusing to guess when both exist.
fn source(dir: &Path, name: &str) -> Result<Option<Source>> {
    let csv = dir.join(format!("{name}.csv"));
    let parquet = dir.join(format!("{name}.parquet"));
    match (csv.is_file(), parquet.is_file()) {
        (true, true) => Err(Error::InvalidInput(format!(
            "{} holds both {name}.csv and {name}.parquet: keep one",
            dir.display()
        ))),
        (true, false) => Ok(Some(Source::Csv(csv))),
        (false, true) => Ok(Some(Source::Parquet(parquet))),
        (false, false) => Ok(None),
    }
}

/// A side table as text, whichever file format it came from.
struct Table {
    path: PathBuf,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    /// The CSV header's line, for errors; Parquet has none.
    header_line: Option<usize>,
}

impl Table {
    fn read(source: &Source) -> Result<Self> {
        match source {
            Source::Csv(path) => {
                let file = TextFile::read(path)?;
                let (head, rows) = table(&file)?;
                Ok(Table {
                    path: path.clone(),
                    head: head.iter().map(|h| h.to_string()).collect(),
                    rows: rows
                        .into_iter()
                        .map(|(_, f)| f.iter().map(|s| s.to_string()).collect())
                        .collect(),
                    header_line: Some(1),
                })
            }
            Source::Parquet(path) => {
                let file = ParquetFile::open(path)?;
                let head = file.columns();
                let names: Vec<&str> = head.iter().map(String::as_str).collect();
                let rows = file.text_rows(&names)?;
                Ok(Table {
                    path: path.clone(),
                    head,
                    rows: rows.into_iter().map(|(_, cells)| cells).collect(),
                    header_line: None,
                })
            }
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.head.iter().position(|h| h == name)
    }

    /// Index of a required column, or an error naming the columns that exist.
    fn column(&self, name: &str) -> Result<usize> {
        self.position(name).ok_or_else(|| {
            let problem = format!(
                "missing column `{name}` (columns: {})",
                self.head.join(", ")
            );
            match self.header_line {
                Some(line) => Error::parse(&self.path, line, problem),
                None => Error::InvalidInput(format!("{}: {problem}", self.path.display())),
            }
        })
    }
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

pub(super) fn read_interactions(ds: &mut Dataset, file: &TextFile) -> Result<()> {
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

fn read_items(ds: &mut Dataset, table: &Table) -> Result<()> {
    let id = table.column("item_id")?;
    let cat = table.position("categories");
    let title = table.position("title");
    let mut names = IdMap::default();
    for row in &table.rows {
        if let Some(c) = cat {
            ds.add_item_categories(&row[id], row[c].split('|'), &mut names);
        }
        if let (Some(t), Some(i)) = (title, ds.items.get(&row[id]))
            && !row[t].is_empty()
        {
            ds.item_titles[i as usize] = Some(row[t].clone());
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
