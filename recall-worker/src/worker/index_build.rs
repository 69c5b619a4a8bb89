//! The vector index a bundle is searched with: a Qdrant collection, an exact scan, or an
//! embedded HNSW graph (saved to and loaded from the bundle cache).

use std::sync::Arc;
use std::time::Duration;

use kan_api::bundle::files;
use kan_api::crd::{IndexType, RecallQueueSpec};

use super::options::WorkerOptions;
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::index::VectorIndex;
use crate::index::exact::ExactIndex;
use crate::index::hnsw::{HnswIndex, HnswParams};
use crate::index::qdrant::QdrantIndex;

pub(super) fn build_index(
    spec: &RecallQueueSpec,
    bundle: &Arc<Bundle>,
    options: &WorkerOptions,
) -> Result<Arc<dyn VectorIndex>> {
    let index_type = spec
        .index
        .as_ref()
        .map(|i| i.type_)
        .unwrap_or(IndexType::Embedded);
    if index_type == IndexType::Qdrant {
        let q = spec
            .index
            .as_ref()
            .and_then(|i| i.qdrant.as_ref())
            .ok_or_else(|| Error::Config("index.qdrant is required".into()))?;
        let timeout = Duration::from_millis(q.timeout_ms.max(1) as u64);
        // The collection of this bundle version, never the alias, which moves to a newer
        // version's vectors (and item numbering) while this worker still serves its own.
        let index = QdrantIndex::new(
            &q.url,
            &crate::index::qdrant::versioned_collection(&q.collection, bundle.version()),
            timeout,
            q.search.clone(),
            Arc::new(bundle.items.clone()),
        )?;
        let lifecycle = q.collections.as_ref();
        if lifecycle.is_none_or(|l| l.load) {
            let lifecycle = crate::index::qdrant::collections::Lifecycle::from_spec(lifecycle);
            return Ok(Arc::new(index.loading(
                &q.url,
                &q.collection,
                bundle.clone(),
                lifecycle,
            )?));
        }
        return Ok(Arc::new(index));
    }
    if bundle.items.len() <= options.exact_max_items {
        let (dim, vectors) = bundle.item_vectors()?;
        return Ok(Arc::new(ExactIndex::new(dim, Arc::new(vectors))));
    }
    let params = spec
        .index
        .as_ref()
        .and_then(|i| i.hnsw.as_ref())
        .map_or(options.hnsw, HnswParams::from);
    let saved = options
        .bundle_cache
        .as_ref()
        .map(|cache| cache.join(saved_graph_name(&graph_key(bundle), params)));
    if let Some(path) = saved.as_ref().filter(|p| p.exists()) {
        // The graph holds the vectors, checked when it was built from this (checksummed)
        // version: a restart need not read and copy them again.
        let dim = bundle.manifest.dim.unwrap_or(0) as usize;
        match HnswIndex::load(path, dim, bundle.items.len(), params) {
            Ok(index) => return Ok(Arc::new(index)),
            Err(e) => tracing::warn!(error = %e, "saved HNSW graph unusable; rebuilding it"),
        }
    }
    let (dim, vectors) = bundle.item_vectors()?;
    let index = HnswIndex::build(dim, &vectors, params)?;
    if let Some(path) = &saved {
        // A cache that cannot be written costs the next start a rebuild, nothing more.
        if let Err(e) = std::fs::create_dir_all(path.parent().unwrap_or(path))
            .map_err(|e| Error::io(path, e))
            .and_then(|()| index.save(path))
        {
            tracing::warn!(error = %e, "could not save the HNSW graph for the next start");
        }
    }
    Ok(Arc::new(index))
}

/// What a saved graph depends on: the item vectors file (its sha256, checked at load), so a
/// bundle that changes only the user encoder reuses the graph; the bundle version when the
/// manifest does not list the file.
fn graph_key(bundle: &Bundle) -> String {
    match bundle.manifest.files.get(files::ITEM_VECTORS) {
        Some(sha) => format!("vectors-{}", &sha[..sha.len().min(16)]),
        None => bundle.version().to_string(),
    }
}

/// File name of the graph saved for a bundle version and graph parameters: a new version or
/// other parameters never load an old graph.
fn saved_graph_name(version: &str, params: HnswParams) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "hnsw/{version}-m{}-efc{}.usearch",
        params.max_connections, params.ef_construction
    )
}
