//! Items added after training (`POST /v1/items`) to a queue that recalls from item vectors
//! (dssm, gat, spectral, item2vec): each brings a content vector of the bundle's dimension,
//! L2-normalised here as the bundle's item vectors are, and is searched beside the bundle's
//! index ([`WithAdded`]). Tags are kept but not read. A queue served from a Qdrant collection
//! takes none: the collection is shared by every worker of the bundle version, and another
//! worker's catalogue would not know the points.

use std::sync::Arc;

use kan_api::wire::NewItem;

use crate::bundle::{Bundle, Catalogue};
use crate::error::{Error, Result};
use crate::index::added::{MAX_ADDED_VECTORS, WithAdded};
use crate::index::{VectorIndex, normalise};

/// What a vector strategy serves its added items from.
pub struct Added {
    /// The items served, in the order first posted (item `n + j` is `items[j]`).
    pub items: Vec<NewItem>,
    /// Their normalised vectors, row-major `[items, dim]`.
    pub vectors: Vec<f32>,
    /// The bundle's items, then the added ones.
    pub catalogue: Catalogue,
    /// The bundle's index with the added vectors beside it.
    pub index: Arc<dyn VectorIndex>,
}

/// `items` checked against the bundle and its index. Strict: an id the bundle has, a missing
/// vector, one of another dimension or without direction is an error naming `items[i]...`, as is
/// a Qdrant-backed queue or more than [`MAX_ADDED_VECTORS`] items (`items`). Lenient (a stored
/// catalogue against a new bundle): such items are skipped.
pub fn add(
    strategy: &str,
    bundle: &Bundle,
    index: &Arc<dyn VectorIndex>,
    items: &[NewItem],
    strict: bool,
) -> Result<Added> {
    let invalid = |field: String, message: String| Error::InvalidRequest { field, message };
    let dim = bundle.manifest.dim.unwrap_or(0) as usize;
    let takes = index.takes_added();
    if strict && !takes {
        return Err(invalid(
            "items".into(),
            format!(
                "this {strategy} queue searches a Qdrant collection, which every worker of the bundle version shares: new items reach it with the next bundle; serve the queue from the embedded index (index.type: embedded) to post them"
            ),
        ));
    }
    let mut kept = Vec::new();
    let mut vectors = Vec::new();
    for (i, item) in items.iter().enumerate().filter(|_| takes) {
        let field = || format!("items[{i}].vector");
        let fault = if bundle.items.get(&item.id).is_some() {
            Some((
                format!("items[{i}].id"),
                format!("'{}' is an item of the bundle already", item.id),
            ))
        } else {
            match &item.vector {
                None => Some((
                    field(),
                    format!(
                        "a {strategy} queue recalls by item vectors: give the item a content vector of the bundle's {dim} dimensions"
                    ),
                )),
                Some(v) if v.len() != dim => Some((
                    field(),
                    format!(
                        "has {} values; the bundle's item vectors have {dim}",
                        v.len()
                    ),
                )),
                Some(v) => {
                    let mut v = v.clone();
                    if normalise(&mut v) {
                        vectors.extend(v);
                        None
                    } else {
                        Some((
                            field(),
                            "has no direction (all zero or not finite)".to_string(),
                        ))
                    }
                }
            }
        };
        match fault {
            Some((field, message)) if strict => return Err(invalid(field, message)),
            Some(_) => continue,
            None => kept.push(item.clone()),
        }
        if kept.len() > MAX_ADDED_VECTORS {
            if strict {
                return Err(invalid(
                    "items".into(),
                    format!(
                        "a vector queue scans at most {MAX_ADDED_VECTORS} added items beside its index: retrain to fold them into the bundle"
                    ),
                ));
            }
            kept.pop();
            vectors.truncate(kept.len() * dim);
            break;
        }
    }
    let n = bundle.items.len() as u32;
    let mut ids: Vec<String> = (0..n)
        .filter_map(|i| bundle.items.id(i).map(str::to_string))
        .collect();
    ids.extend(kept.iter().map(|it| it.id.clone()));
    let index: Arc<dyn VectorIndex> = if kept.is_empty() {
        index.clone()
    } else {
        Arc::new(WithAdded::new(index.clone(), n, dim, vectors.clone()))
    };
    Ok(Added {
        items: kept,
        vectors,
        catalogue: Catalogue::new(ids)?,
        index,
    })
}
