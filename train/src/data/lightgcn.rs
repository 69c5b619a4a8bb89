//! The LightGCN/NGCF split: `train.txt` and `test.txt`, one line per user,
//! `user_id item_id item_id ...` separated by spaces. No timestamps: file order is kept as the
//! sequence order.

use std::path::Path;

use super::lines::TextFile;
use super::{Dataset, Interaction, push_interaction};
use crate::error::{Error, Result};

pub(super) fn load(dir: &Path) -> Result<Dataset> {
    let name = dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("lightgcn")
        .to_string();
    let mut ds = Dataset {
        name,
        ..Dataset::default()
    };
    let (train, test) = (dir.join("train.txt"), dir.join("test.txt"));
    for p in [&train, &test] {
        if !p.is_file() {
            return Err(Error::InvalidInput(format!(
                "{} is missing: the lightgcn format needs train.txt and test.txt",
                p.display()
            )));
        }
    }
    ds.interactions = read(&mut ds, &TextFile::read(&train)?)?;
    ds.provided_test = Some(read(&mut ds, &TextFile::read(&test)?)?);
    Ok(ds)
}

fn read(ds: &mut Dataset, file: &TextFile) -> Result<Vec<Interaction>> {
    let mut out = Vec::new();
    for (n, row) in file.lines() {
        let mut f = row.split_whitespace();
        let Some(user) = f.next() else { continue };
        file.num::<u64>(n, "user id", user)?;
        for item in f {
            file.num::<u64>(n, "item id", item)?;
            push_interaction(ds, &mut out, user, item, 0, 1.0);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_and_test_lines_become_the_provided_split() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.txt"), "0 5 6 7\n1 6\n").unwrap();
        std::fs::write(dir.path().join("test.txt"), "0 8\n1 5 7\n").unwrap();
        let ds = load(dir.path()).unwrap();
        assert_eq!(ds.interactions.len(), 4);
        assert_eq!(ds.provided_test.as_ref().unwrap().len(), 3);
        assert_eq!((ds.n_users(), ds.n_items()), (2, 4));
        assert_eq!(ds.items.id(ds.interactions[2].item), "7");
    }

    #[test]
    fn a_non_numeric_item_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.txt"), "0 5\n1 x\n").unwrap();
        std::fs::write(dir.path().join("test.txt"), "0 8\n").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("train.txt:2:") && err.contains("item id `x`"),
            "{err}"
        );
    }
}
