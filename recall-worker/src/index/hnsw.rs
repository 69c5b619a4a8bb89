//! The embedded ANN backend: an in-process HNSW graph (USearch, through the `usearch` crate)
//! built from the bundle's item vectors at start-up, or loaded from a file saved by an earlier
//! start ([`HnswIndex::save`], [`HnswIndex::load`]).
//!
//! Why not `qdrant-edge`: neither published version builds on stable Rust. 0.9.0 and 0.8.0 both
//! fail in `src/shard/optimize.rs` on `std::debug_assert_matches` (unstable `assert_matches`,
//! E0658) with rustc 1.95 — checked for 0.8.0 after an 18-minute build of its ~480 dependencies.
//! Vendoring or patching it is not an option. USearch replaced `hnsw_rs`, which built a 100k
//! graph 5× slower and never finished a 1M one on this machine (BENCHMARKS.md, *ANN vs FAISS*).

use kan_core::ItemSet;
use std::path::Path;

use futures::future::BoxFuture;
use kan_api::crd::HnswSpec;
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::{Hit, SearchParams, VectorIndex};
use crate::error::{Error, Result};

/// Graph parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node (M).
    pub max_connections: usize,
    /// Candidate list width while building.
    pub ef_construction: usize,
    /// Candidate list width while searching (raised to `limit` when smaller).
    pub ef_search: usize,
}

/// The queue spec's `index.hnsw` (its defaults are the defaults here).
impl From<&HnswSpec> for HnswParams {
    fn from(spec: &HnswSpec) -> Self {
        let positive = |v: i32| usize::try_from(v).unwrap_or(0).max(1);
        Self {
            max_connections: positive(spec.m),
            ef_construction: positive(spec.ef_construction),
            ef_search: positive(spec.ef_search),
        }
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        Self::from(&HnswSpec::default())
    }
}

/// USearch serves a search only while it holds a free per-thread context; more concurrent
/// searches than contexts fail. Requests search on the runtime's worker threads (one per core),
/// so a generous multiple of the core count never runs out.
fn search_contexts() -> usize {
    std::thread::available_parallelism().map_or(8, |n| n.get()) * 8
}

/// HNSW over `[N, dim]` L2-normalised vectors by inner product; key = internal item index.
pub struct HnswIndex {
    dim: usize,
    index: Index,
    params: HnswParams,
}

impl HnswIndex {
    /// Builds the graph, inserting from every core.
    pub fn build(dim: usize, vectors: &[f32], params: HnswParams) -> Result<Self> {
        if dim == 0 || !vectors.len().is_multiple_of(dim) {
            return Err(Error::Index(format!(
                "{} floats are not a whole number of {dim}-dimensional vectors",
                vectors.len()
            )));
        }
        let n = vectors.len() / dim;
        let index = new_index(dim, params)?;
        let builders = std::thread::available_parallelism().map_or(1, |n| n.get());
        index
            .reserve_capacity_and_threads(n, builders.max(search_contexts()))
            .map_err(index_error)?;
        let rows: Vec<&[f32]> = vectors.chunks_exact(dim).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..builders)
                .map(|b| {
                    let (index, rows) = (&index, &rows);
                    scope.spawn(move || -> Result<()> {
                        for key in (b..rows.len()).step_by(builders) {
                            index.add(key as u64, rows[key]).map_err(index_error)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .map_err(|_| Error::Index("an HNSW builder thread panicked".into()))?
            })
        })?;
        Ok(Self { dim, index, params })
    }

    /// Writes the graph (with its vectors) to `path`, through a temporary file renamed into
    /// place so a crash never leaves a truncated index behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("partial");
        self.index
            .save(path_str(&tmp)?)
            .map_err(|e| Error::Index(format!("saving {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Loads a graph saved by [`HnswIndex::save`]; it must hold exactly `items` vectors of
    /// `dim` dimensions (the bundle it was built from).
    pub fn load(path: &Path, dim: usize, items: usize, params: HnswParams) -> Result<Self> {
        let index = new_index(dim, params)?;
        index
            .load(path_str(path)?)
            .map_err(|e| Error::Index(format!("loading {}: {e}", path.display())))?;
        if index.dimensions() != dim || index.size() != items {
            return Err(Error::Index(format!(
                "{} holds {} vectors of {} dimensions, the bundle has {items} of {dim}",
                path.display(),
                index.size(),
                index.dimensions()
            )));
        }
        index.change_expansion_search(params.ef_search);
        index
            .reserve_capacity_and_threads(items, search_contexts())
            .map_err(index_error)?;
        Ok(Self { dim, index, params })
    }

    /// The synchronous search, shared with benchmarks.
    pub fn search_sync(&self, query: &[f32], params: SearchParams<'_>) -> Result<Vec<Hit>> {
        if query.len() != self.dim || params.limit == 0 {
            return Ok(Vec::new());
        }
        let exclude: &ItemSet = params.exclude;
        // Few exclusions (the history, a page of seen items): over-fetch by their number and drop
        // them afterwards, which keeps the graph walk free of callbacks. A filter inside the walk
        // is kept for exclusion lists larger than the page itself.
        let found = if exclude.len() <= params.limit {
            self.index
                .search(query, params.limit + exclude.len())
                .map_err(index_error)?
        } else {
            self.index
                .filtered_search(query, params.limit, |key: u64| {
                    !exclude.contains(&(key as u32))
                })
                .map_err(index_error)?
        };
        let threshold = params.score_threshold.unwrap_or(f32::NEG_INFINITY);
        // Inner-product distance is `1 - dot`.
        let hits = found
            .keys
            .iter()
            .zip(&found.distances)
            .map(|(&key, &distance)| Hit {
                item: key as u32,
                score: 1.0 - distance,
            })
            .filter(|h| h.score >= threshold && !exclude.contains(&h.item));
        Ok(super::top_k(hits, params.limit))
    }

    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes the search width (exclusive access: searches in flight read it).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef;
        self.index.change_expansion_search(ef);
    }

    pub fn len(&self) -> usize {
        self.index.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn new_index(dim: usize, params: HnswParams) -> Result<Index> {
    let options = IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: ScalarKind::F32,
        connectivity: params.max_connections,
        expansion_add: params.ef_construction,
        expansion_search: params.ef_search,
        multi: false,
    };
    Index::new(&options).map_err(index_error)
}

fn index_error(e: impl std::fmt::Display) -> Error {
    Error::Index(format!("usearch: {e}"))
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        Error::Index(format!(
            "index path {} is not valid UTF-8; choose another cache directory",
            path.display()
        ))
    })
}

impl VectorIndex for HnswIndex {
    fn name(&self) -> &'static str {
        "hnsw"
    }

    fn search<'a>(
        &'a self,
        query: &'a [f32],
        params: SearchParams<'a>,
    ) -> BoxFuture<'a, Result<Vec<Hit>>> {
        Box::pin(async move { self.search_sync(query, params) })
    }

    fn check(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn takes_added(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::index::exact::ExactIndex;
    use kan_testkit::vectors::clustered_vectors;

    fn build(dim: usize, vectors: &[f32]) -> HnswIndex {
        HnswIndex::build(dim, vectors, HnswParams::default()).expect("build")
    }

    /// A graph of `vectors` saved into a fresh directory (kept alive by the returned guard).
    fn saved(dim: usize, vectors: &[f32]) -> (HnswIndex, tempfile::TempDir, std::path::PathBuf) {
        let built = build(dim, vectors);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("items.usearch");
        built.save(&path).expect("save");
        (built, dir, path)
    }

    fn recall_against_exact(hnsw: &HnswIndex, vectors: &[f32], dim: usize) -> f64 {
        let exact = ExactIndex::new(dim, Arc::new(vectors.to_vec()));
        let none = ItemSet::default();
        let p = SearchParams {
            limit: 50,
            score_threshold: None,
            exclude: &none,
        };
        let queries = 20;
        let mut found = 0;
        for q in 0..queries {
            let query = &vectors[q * 97 * dim..(q * 97 + 1) * dim];
            let truth: ItemSet = exact.search_sync(query, p).iter().map(|h| h.item).collect();
            found += hnsw
                .search_sync(query, p)
                .expect("search")
                .iter()
                .filter(|h| truth.contains(&h.item))
                .count();
        }
        found as f64 / (queries * 50) as f64
    }

    #[test]
    fn hnsw_finds_what_the_exact_scan_finds_on_clustered_vectors() {
        let (dim, n) = (16, 3000);
        let vectors = clustered_vectors(n, dim, 20, 7);
        let hnsw = build(dim, &vectors);
        assert_eq!(hnsw.len(), n);
        let recall = recall_against_exact(&hnsw, &vectors, dim);
        assert!(recall >= 0.95, "recall@50 {recall}");
    }

    #[test]
    fn hnsw_scores_are_cosine_similarities() {
        let dim = 8;
        let vectors = clustered_vectors(200, dim, 4, 3);
        let hnsw = build(dim, &vectors);
        let none = ItemSet::default();
        let hits = hnsw
            .search_sync(
                &vectors[..dim],
                SearchParams {
                    limit: 1,
                    score_threshold: None,
                    exclude: &none,
                },
            )
            .expect("search");
        assert_eq!(hits[0].item, 0);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
    }

    #[test]
    fn hnsw_never_returns_excluded_items_with_few_or_many_exclusions() {
        let dim = 8;
        let vectors = clustered_vectors(500, dim, 5, 1);
        let hnsw = build(dim, &vectors);
        for excluded in [5u32, 250] {
            let exclude: ItemSet = (0..excluded).collect();
            let hits = hnsw
                .search_sync(
                    &vectors[..dim],
                    SearchParams {
                        limit: 20,
                        score_threshold: None,
                        exclude: &exclude,
                    },
                )
                .expect("search");
            assert_eq!(hits.len(), 20);
            assert!(hits.iter().all(|h| h.item >= excluded));
        }
    }

    #[test]
    fn a_saved_graph_loads_back_and_answers_the_same() {
        let dim = 16;
        let vectors = clustered_vectors(2000, dim, 10, 5);
        let (built, _dir, path) = saved(dim, &vectors);
        let loaded = HnswIndex::load(&path, dim, 2000, HnswParams::default()).expect("load");
        let none = ItemSet::default();
        let p = SearchParams {
            limit: 10,
            score_threshold: None,
            exclude: &none,
        };
        let query = &vectors[dim * 7..dim * 8];
        assert_eq!(
            built.search_sync(query, p).expect("search"),
            loaded.search_sync(query, p).expect("search")
        );
    }

    #[test]
    fn a_saved_graph_of_another_catalogue_is_refused() {
        let dim = 8;
        let vectors = clustered_vectors(300, dim, 3, 2);
        let (_built, _dir, path) = saved(dim, &vectors);
        let err = HnswIndex::load(&path, dim, 301, HnswParams::default())
            .err()
            .expect("size mismatch");
        assert!(err.to_string().contains("the bundle has 301"), "{err}");
        std::fs::write(&path, b"not an index").expect("write");
        assert!(HnswIndex::load(&path, dim, 300, HnswParams::default()).is_err());
    }

    #[test]
    fn vectors_that_are_not_whole_rows_are_refused() {
        let err = HnswIndex::build(4, &[0.0; 6], HnswParams::default())
            .err()
            .expect("ragged");
        assert!(err.to_string().contains("not a whole number"), "{err}");
    }
}
