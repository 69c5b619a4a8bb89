//! Readers on the real datasets. ML-100K comes from `make data` (./data/ml-100k); Gowalla and
//! LastFM from ../shared/data. Each test skips with a message when its data is absent.

use std::path::{Path, PathBuf};

use kan_train::data::{Format, load};
use kan_train::split::{SplitSpec, split};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn present(dir: &Path, what: &str) -> bool {
    if dir.is_dir() {
        return true;
    }
    eprintln!("skipping: {what} not found at {}", dir.display());
    false
}

#[test]
fn ml100k_loads_with_genres_users_and_an_8_1_1_split() {
    let dir = root().join("data/ml-100k");
    if !present(&dir, "ML-100K (run `make data`)") {
        return;
    }
    let ds = load(&dir, Format::Recbole).unwrap();
    assert_eq!(
        (ds.n_users(), ds.n_items(), ds.interactions.len()),
        (943, 1682, 100_000)
    );
    assert!(ds.category_names.iter().any(|c| c == "Drama"));
    assert!(ds.user_attrs.contains_key("occupation"));
    let s = split(
        &ds,
        SplitSpec::Random {
            train: 0.8,
            valid: 0.1,
        },
        42,
    )
    .unwrap();
    assert_eq!(s.train.len() + s.valid.len() + s.test.len(), 100_000);
    let test_share = s.test.len() as f64 / 100_000.0;
    assert!((0.09..0.11).contains(&test_share), "{test_share}");
}

#[test]
fn gowalla_matches_the_published_counts() {
    let dir = root().join("../shared/data/gowalla");
    if !present(&dir, "Gowalla") {
        return;
    }
    let ds = load(&dir, Format::Lightgcn).unwrap();
    assert_eq!((ds.n_users(), ds.n_items()), (29_858, 40_981));
    assert_eq!(ds.interactions.len(), 810_128);
    assert_eq!(ds.provided_test.as_ref().unwrap().len(), 217_242);
}

#[test]
fn lastfm_matches_the_published_counts_and_has_a_symmetric_trust_graph() {
    let dir = root().join("../shared/data/lastfm");
    if !present(&dir, "LastFM") {
        return;
    }
    let ds = load(&dir, Format::Sociallgn).unwrap();
    assert_eq!(ds.name, "lastfm", "named after its directory");
    assert_eq!(ds.interactions.len(), 74_267);
    assert_eq!(ds.provided_test.as_ref().unwrap().len(), 18_567);
    assert_eq!(ds.social_edges.len(), 25_434);
    assert_eq!(ds.n_users(), 1_892);
    assert!(!ds.category_names.is_empty(), "tags become categories");
}
