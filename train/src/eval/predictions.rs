//! Recommendation lists made outside Kan (another library's top-K), scored by `kan eval` with
//! the same split, users and metric code as the queues; and the split written out so such a
//! library trains on exactly the interactions our bundles trained on.
//!
//! A predictions file holds JSON lines `{"user": "<id>", "items": ["<id>", ...]}`, best first,
//! with the dataset's own (external) ids, the ones a bundle's `users.txt`/`items.txt` list.
//! Queues never return items the user already knows; predictions are held to the same rule by
//! dropping such items (and repeats) before the list is cut to the queues' length, so a peer is
//! never penalised for padding its list with them nor rewarded for it.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::data::{Dataset, Interaction};
use crate::error::{Error, Result};
use crate::pipeline::{Prepared, spec_string};

/// One predictions file to score.
#[derive(Clone, Debug)]
pub struct PredictionInput {
    pub name: String,
    pub file: PathBuf,
    /// Merge weight, as for queues.
    pub weight: f64,
}

/// An id as JSON gives it: a string, or a whole number for datasets with numeric ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn text(&self) -> String {
        match self {
            Id::Text(s) => s.clone(),
            Id::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    user: Id,
    items: Vec<Id>,
}

/// Reads a predictions file into dataset indices: user → items, best first. Unknown ids, a
/// user listed twice or a malformed line are errors naming the file and line.
pub fn read(file: &Path, ds: &Dataset) -> Result<HashMap<u32, Vec<u32>>> {
    let f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
    let mut out = HashMap::new();
    let mut first_line = HashMap::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let n = n + 1;
        let line = line.map_err(|e| Error::io(file, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Line = serde_json::from_str(&line).map_err(|e| {
            Error::parse(
                file,
                n,
                format!("expected {{\"user\": ID, \"items\": [ID, ...]}}: {e}"),
            )
        })?;
        let user_id = row.user.text();
        let user = ds.users.get(&user_id).ok_or_else(|| {
            Error::parse(
                file,
                n,
                format!(
                    "unknown user `{user_id}`: not a user of dataset {} (use the dataset's own ids)",
                    ds.name
                ),
            )
        })?;
        if let Some(prev) = first_line.insert(user, n) {
            return Err(Error::parse(
                file,
                n,
                format!("user `{user_id}` is listed again (first on line {prev})"),
            ));
        }
        let items = row
            .items
            .iter()
            .map(|id| {
                let id = id.text();
                ds.items.get(&id).ok_or_else(|| {
                    Error::parse(
                        file,
                        n,
                        format!("unknown item `{id}`: not an item of dataset {}", ds.name),
                    )
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        out.insert(user, items);
    }
    Ok(out)
}

/// What [`lists_for`] had to drop or could not find.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cleaning {
    /// Evaluated users without a line (they get an empty list, so they score 0).
    pub missing_users: usize,
    /// Items dropped because the user already knew them.
    pub known_items: usize,
    /// Items dropped because they were already higher in the same list.
    pub repeats: usize,
}

/// Each evaluated user's list: known items and repeats dropped, cut to `k`.
pub fn lists_for(
    predicted: &HashMap<u32, Vec<u32>>,
    users: &[u32],
    histories: &[Vec<u32>],
    k: usize,
) -> (Vec<Vec<u32>>, Cleaning) {
    let mut cleaning = Cleaning::default();
    let lists = users
        .iter()
        .zip(histories)
        .map(|(u, history)| {
            let Some(items) = predicted.get(u) else {
                cleaning.missing_users += 1;
                return Vec::new();
            };
            let known: HashSet<u32> = history.iter().copied().collect();
            let mut seen = HashSet::new();
            let mut list = Vec::with_capacity(k.min(items.len()));
            for &i in items {
                if list.len() == k {
                    break;
                }
                if known.contains(&i) {
                    cleaning.known_items += 1;
                } else if !seen.insert(i) {
                    cleaning.repeats += 1;
                } else {
                    list.push(i);
                }
            }
            list
        })
        .collect();
    (lists, cleaning)
}

/// Reads one predictions input and returns its lists for the evaluated users, adding a warning
/// for anything that had to be dropped or was missing.
pub(crate) fn load_lists(
    input: &PredictionInput,
    ds: &Dataset,
    users: &[u32],
    histories: &[Vec<u32>],
    k: usize,
    warnings: &mut Vec<String>,
) -> Result<Vec<Vec<u32>>> {
    let predicted = read(&input.file, ds)?;
    let (lists, c) = lists_for(&predicted, users, histories, k);
    let file = input.file.display();
    if c.missing_users > 0 {
        warnings.push(format!(
            "{}: {} of {} evaluated users have no line in {file}; they score 0",
            input.name,
            c.missing_users,
            users.len()
        ));
    }
    if c.known_items > 0 || c.repeats > 0 {
        warnings.push(format!(
            "{}: dropped {} items users already knew and {} repeats from {file} (queues never return either)",
            input.name, c.known_items, c.repeats
        ));
    }
    Ok(lists)
}

/// Writes the split as `train.tsv`, `valid.tsv`, `test.tsv` (`user<TAB>item`, external ids,
/// each user's rows in split order) and `split.json` (dataset, split, seed, fingerprint).
pub fn write_split(p: &Prepared, seed: u64, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    for (name, rows) in [
        ("train.tsv", &p.split.train),
        ("valid.tsv", &p.split.valid),
        ("test.tsv", &p.split.test),
    ] {
        let path = dir.join(name);
        write_rows(&path, &p.ds, rows)?;
        written.push(path);
    }
    let meta = serde_json::json!({
        "dataset": p.ds.name,
        "split": spec_string(p.spec),
        "seed": seed,
        "fingerprint": p.ds.fingerprint(),
        "users": p.ds.n_users(),
        "items": p.ds.n_items(),
    });
    let path = dir.join("split.json");
    std::fs::write(&path, serde_json::to_string_pretty(&meta)?).map_err(|e| Error::io(&path, e))?;
    written.push(path);
    Ok(written)
}

fn write_rows(path: &Path, ds: &Dataset, rows: &[Interaction]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::new(f);
    for r in rows {
        writeln!(w, "{}\t{}", ds.users.id(r.user), ds.items.id(r.item))
            .map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::IdMap;

    fn dataset() -> Dataset {
        Dataset {
            name: "toy".into(),
            users: IdMap::from_ids(vec!["alice".into(), "bob".into()]),
            items: IdMap::from_ids((0..5).map(|i| format!("i{i}")).collect()),
            ..Dataset::default()
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn lines_map_external_ids_to_dataset_indices_in_rank_order() {
        let f = file(
            "{\"user\": \"bob\", \"items\": [\"i4\", \"i0\"]}\n\n{\"user\": \"alice\", \"items\": []}\n",
        );
        let p = read(f.path(), &dataset()).unwrap();
        assert_eq!(p[&1], [4, 0]);
        assert!(p[&0].is_empty());
    }

    #[test]
    fn numeric_ids_are_read_as_their_decimal_text() {
        let ds = Dataset {
            users: IdMap::from_ids(vec!["7".into()]),
            items: IdMap::from_ids(vec!["12".into(), "3".into()]),
            ..Dataset::default()
        };
        let f = file("{\"user\": 7, \"items\": [3, \"12\"]}\n");
        assert_eq!(read(f.path(), &ds).unwrap()[&0], [1, 0]);
    }

    #[test]
    fn an_unknown_user_names_the_file_and_line() {
        let f = file("{\"user\": \"bob\", \"items\": []}\n{\"user\": \"carol\", \"items\": []}\n");
        let err = read(f.path(), &dataset()).unwrap_err().to_string();
        let at = format!("{}:2:", f.path().display());
        assert!(
            err.contains(&at) && err.contains("unknown user `carol`"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_item_names_the_file_and_line() {
        let f = file("{\"user\": \"bob\", \"items\": [\"i1\", \"i9\"]}\n");
        let err = read(f.path(), &dataset()).unwrap_err().to_string();
        let at = format!("{}:1:", f.path().display());
        assert!(
            err.contains(&at) && err.contains("unknown item `i9`"),
            "{err}"
        );
    }

    #[test]
    fn a_user_listed_twice_or_a_malformed_line_is_an_error() {
        let twice =
            file("{\"user\": \"bob\", \"items\": []}\n{\"user\": \"bob\", \"items\": []}\n");
        let err = read(twice.path(), &dataset()).unwrap_err().to_string();
        assert!(
            err.contains(":2:") && err.contains("first on line 1"),
            "{err}"
        );
        let bad = file("{\"user\": \"bob\", \"item\": [\"i1\"]}\n");
        let err = read(bad.path(), &dataset()).unwrap_err().to_string();
        assert!(err.contains(":1:") && err.contains("expected"), "{err}");
    }

    #[test]
    fn known_items_and_repeats_are_dropped_before_the_cut_and_missing_users_get_nothing() {
        let predicted = HashMap::from([(0, vec![3, 1, 3, 2, 4, 0])]);
        // User 0 knows item 1; user 1 has no line.
        let (lists, c) = lists_for(&predicted, &[0, 1], &[vec![1], vec![2]], 3);
        assert_eq!(lists, [vec![3, 2, 4], vec![]]);
        assert_eq!(
            c,
            Cleaning {
                missing_users: 1,
                known_items: 1,
                repeats: 1,
            }
        );
    }

    /// Per user, by time (split temporal:1): a trains {i1, i2}, validates i3, tests i4;
    /// b trains {i2}, validates i3, tests i1; c trains {i5}, tests i6 (too short to validate).
    fn toy_data() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let rows = "user_id,item_id,timestamp\n\
            a,i1,1\na,i2,2\na,i3,3\na,i4,4\n\
            b,i2,1\nb,i3,2\nb,i1,3\n\
            c,i5,1\nc,i6,2\n";
        std::fs::write(dir.path().join("interactions.csv"), rows).unwrap();
        dir
    }

    fn request(data: &Path, split: Option<&str>, on_validation: bool) -> crate::EvalRequest {
        crate::EvalRequest {
            data: data.to_path_buf(),
            format: crate::data::Format::Csv,
            split: split.map(|s| crate::split::SplitSpec::parse(s).unwrap()),
            seed: Some(1),
            queues: Vec::new(),
            merges: Vec::new(),
            rrf_k: crate::eval::RRF_K,
            on_validation,
            max_users: None,
            progress: false,
            propensity: None,
            now: None,
            tune_weights: false,
        }
    }

    fn input(name: &str, f: &tempfile::NamedTempFile) -> PredictionInput {
        PredictionInput {
            name: name.into(),
            file: f.path().to_path_buf(),
            weight: 1.0,
        }
    }

    const LISTS: &str = "{\"user\": \"a\", \"items\": [\"i1\", \"i4\", \"i5\"]}\n\
        {\"user\": \"b\", \"items\": [\"i5\", \"i3\", \"i6\", \"i1\"]}\n";

    #[test]
    fn predictions_are_scored_on_the_test_part_with_train_and_validation_items_dropped() {
        let data = toy_data();
        let f = file(LISTS);
        let report = crate::eval::eval_with(
            &request(data.path(), Some("temporal:1"), false),
            &[input("peer", &f)],
        )
        .unwrap();
        assert_eq!(report.users, 3);
        let m = &report.rows[0].metrics;
        assert_eq!(report.rows[0].kind, "predictions");
        // a: i1 is known → [i4, i5], i4 at rank 1. b: i3 (validation) is known → [i5, i6, i1],
        // i1 at rank 3. c: no line → 0.
        assert!((m["recall@10"] - 2.0 / 3.0).abs() < 1e-12, "{m:?}");
        assert!((m["ndcg@10"] - (1.0 + 0.5) / 3.0).abs() < 1e-12, "{m:?}");
        assert!((m["hit@10"] - 2.0 / 3.0).abs() < 1e-12, "{m:?}");
        let w = report.warnings.join("\n");
        assert!(w.contains("1 of 3 evaluated users have no line"), "{w}");
        assert!(w.contains("dropped 2 items users already knew"), "{w}");
    }

    #[test]
    fn on_the_validation_part_only_training_items_are_known() {
        let data = toy_data();
        let f = file(LISTS);
        let report = crate::eval::eval_with(
            &request(data.path(), Some("temporal:1"), true),
            &[input("peer", &f)],
        )
        .unwrap();
        // Users with validation items: a (i3, not predicted) and b (i3 now unknown → rank 2).
        assert_eq!(report.users, 2);
        let m = &report.rows[0].metrics;
        assert!((m["recall@10"] - 0.5).abs() < 1e-12, "{m:?}");
        assert!((m["ndcg@10"] - 0.5 / 3f64.log2()).abs() < 1e-12, "{m:?}");
    }

    #[test]
    fn predictions_merge_like_queues() {
        let data = toy_data();
        let f = file(LISTS);
        let mut req = request(data.path(), Some("temporal:1"), false);
        req.merges = vec![crate::MergePolicy::Rrf];
        let report = crate::eval::eval_with(&req, &[input("one", &f), input("two", &f)]).unwrap();
        // Fusing a list with itself keeps its order, so the merge scores as the list does.
        let merged = &report.rows[2];
        assert_eq!(merged.name, "merge:rrf(one+two)");
        assert_eq!(
            merged.metrics["recall@10"],
            report.rows[0].metrics["recall@10"]
        );
        assert_eq!(merged.metrics["ndcg@10"], report.rows[0].metrics["ndcg@10"]);
    }

    #[test]
    fn without_a_bundle_the_split_and_seed_must_be_given() {
        let data = toy_data();
        let f = file(LISTS);
        let mut req = request(data.path(), None, false);
        let err = crate::eval::eval_with(&req, &[input("peer", &f)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--split and --seed"), "{err}");
        req.split = Some(crate::split::SplitSpec::Temporal { n: 1 });
        req.seed = None;
        let err = crate::eval::dump_split(&req, data.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--split and --seed"), "{err}");
    }

    #[test]
    fn the_dumped_split_lists_each_part_with_external_ids() {
        let data = toy_data();
        let out = tempfile::tempdir().unwrap();
        crate::eval::dump_split(&request(data.path(), Some("temporal:1"), false), out.path())
            .unwrap();
        let read = |n: &str| std::fs::read_to_string(out.path().join(n)).unwrap();
        assert_eq!(read("train.tsv"), "a\ti1\na\ti2\nb\ti2\nc\ti5\n");
        assert_eq!(read("valid.tsv"), "a\ti3\nb\ti3\n");
        assert_eq!(read("test.tsv"), "a\ti4\nb\ti1\nc\ti6\n");
        let meta: serde_json::Value = serde_json::from_str(&read("split.json")).unwrap();
        assert_eq!(meta["split"], "temporal:1");
        assert_eq!(meta["seed"], 1);
    }
}
