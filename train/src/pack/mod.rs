//! `kan bundle pack`: a dssm/gat bundle from what a team trained elsewhere — an ONNX user
//! encoder, item vectors (`.npy`, `.safetensors` or `.parquet`), the item id list and,
//! optionally, the interactions that give users stored histories.
//!
//! [`read_inputs`] reads and checks every input before anything is written; the caller checks
//! the model against the encoder contract (the worker's check, through ONNX Runtime) and then
//! calls [`write`], which goes through the same [`BundleWriter`] as `kan train`.

mod npy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kan_api::bundle::{BundleManifest, DatasetInfo, files, params};
use kan_api::crd::StrategyType;
use serde_json::json;

use crate::bundle::{BundleWriter, ManifestInfo, Tensor, TensorFile, created_now};
use crate::data::{self, Interaction};
use crate::error::{Error, Result};
use crate::history::History;
use crate::strategies::{twotower, write_history};

/// How far an item vector's L2 norm may be from 1 before it counts as not normalised.
pub const NORM_TOLERANCE: f32 = 1e-3;

/// Tensor (safetensors) or column (Parquet) that holds the vectors when none is named.
pub const DEFAULT_TENSOR: &str = "vectors";

/// What to pack.
#[derive(Clone, Debug)]
pub struct PackRequest {
    /// `dssm` or `gat`.
    pub strategy: StrategyType,
    pub model: PathBuf,
    pub vectors: PathBuf,
    /// The safetensors tensor or Parquet column holding the vectors (default `vectors`; a
    /// safetensors file with a single tensor needs no name).
    pub tensor: Option<String>,
    /// Item ids, one per line; line `i` is the item of vector row `i`.
    pub items: PathBuf,
    /// `user_id,item_id[,timestamp][,weight]` (`.csv` or `.parquet`) for stored histories.
    pub interactions: Option<PathBuf>,
    /// L2-normalise the item vectors instead of refusing vectors that are not.
    pub normalise: bool,
    /// Dataset name for the manifest (default: the output directory's name).
    pub name: Option<String>,
    pub out: PathBuf,
}

/// The checked inputs, ready to write.
#[derive(Debug)]
pub struct PackInputs {
    pub items: Vec<String>,
    /// Row-major `[items, dim]`, L2-normalised.
    pub vectors: Vec<f32>,
    pub dim: usize,
    pub histories: Option<Histories>,
}

/// Stored histories built from an interactions table.
#[derive(Debug)]
pub struct Histories {
    pub users: Vec<String>,
    pub history: History,
    pub fingerprint: String,
    pub interactions: usize,
}

/// Reads and checks everything but the model's contract. Errors name the input at fault.
pub fn read_inputs(req: &PackRequest) -> Result<PackInputs> {
    if !matches!(req.strategy, StrategyType::Dssm | StrategyType::Gat) {
        return Err(Error::InvalidInput(format!(
            "--strategy {}: pack builds encoder bundles, dssm or gat",
            req.strategy
        )));
    }
    check_out_dir(&req.out)?;
    if !req.model.is_file() {
        return Err(Error::InvalidInput(format!(
            "--model {}: no such file",
            req.model.display()
        )));
    }
    let items = read_items(&req.items)?;
    let (rows, dim, mut vectors) = read_vectors(&req.vectors, req.tensor.as_deref())?;
    check_vectors(
        &req.vectors,
        &req.items,
        &items,
        rows,
        dim,
        &mut vectors,
        req.normalise,
    )?;
    let histories = req
        .interactions
        .as_deref()
        .map(|path| read_histories(path, &req.items, &items))
        .transpose()?;
    Ok(PackInputs {
        items,
        vectors,
        dim,
        histories,
    })
}

/// Writes the bundle (files first, the manifest last) and returns its manifest.
pub fn write(
    req: &PackRequest,
    inputs: &PackInputs,
    history_length: usize,
) -> Result<BundleManifest> {
    let model = std::fs::read(&req.model).map_err(|e| Error::io(&req.model, e))?;
    let mut w = BundleWriter::create(&req.out)?;
    w.lines(files::ITEMS, &inputs.items)?;
    twotower::write_vectors(&mut w, &inputs.vectors, inputs.dim)?;
    w.bytes(files::MODEL, &model)?;
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut dataset = DatasetInfo {
        name: req.name.clone().unwrap_or_else(|| file_name(&req.out)),
        items: inputs.items.len() as u64,
        ..DatasetInfo::default()
    };
    if let Some(h) = &inputs.histories {
        w.lines(files::USERS, &h.users)?;
        write_history(&mut w, &h.history)?;
        dataset.fingerprint = h.fingerprint.clone();
        dataset.users = h.users.len() as u64;
        dataset.interactions = h.interactions as u64;
    }
    let params = json!({
        params::HISTORY_LENGTH: history_length,
        "packed_from": {
            "model": file_name(&req.model),
            "vectors": file_name(&req.vectors),
            "items": file_name(&req.items),
            "interactions": req.interactions.as_deref().map(file_name),
            "normalised_by_pack": req.normalise,
        },
    });
    Ok(w.finish(ManifestInfo {
        strategy: req.strategy,
        dataset,
        params,
        metrics: BTreeMap::new(),
        dim: Some(inputs.dim as u32),
        created_at: created_now()?,
    })?)
}

/// A bundle directory is written whole: an existing non-empty one is refused.
fn check_out_dir(out: &Path) -> Result<()> {
    match std::fs::read_dir(out).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(Error::InvalidInput(format!(
            "--out {} exists and is not empty: pack writes a fresh directory",
            out.display()
        ))),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(out, e)),
    }
}

/// Item ids, one per line; blank and repeated ids are refused with their line numbers.
fn read_items(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.trim_end_matches('\r');
        if id.trim().is_empty() {
            return Err(Error::parse(path, n + 1, "empty item id"));
        }
        if let Some(first) = seen.insert(id, n + 1) {
            return Err(Error::parse(
                path,
                n + 1,
                format!("item `{id}` is listed twice (first on line {first})"),
            ));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no item ids",
            path.display()
        )));
    }
    Ok(ids)
}

/// `(rows, dim, values)` of the vector file, by extension.
fn read_vectors(path: &Path, tensor: Option<&str>) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = || std::fs::read(path).map_err(|e| Error::io(path, e));
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => npy::read_matrix(path, &bytes()?),
        Some("safetensors") => {
            let file = TensorFile::decode(path.display().to_string(), bytes()?)?;
            let names = file.names();
            let name = match tensor {
                Some(name) => name.to_string(),
                None if names.len() == 1 => names[0].clone(),
                None => DEFAULT_TENSOR.to_string(),
            };
            if !file.has(&name) {
                return Err(Error::InvalidInput(format!(
                    "{}: no tensor `{name}` (tensors: {}); name it with --tensor",
                    path.display(),
                    names.join(", ")
                )));
            }
            match file.get(&name)? {
                Tensor::F32(shape, data) => match shape[..] {
                    [rows, dim] => Ok((rows, dim, data)),
                    _ => Err(Error::InvalidInput(format!(
                        "{}: tensor `{name}` has shape {shape:?}; item vectors are a 2-D [items, dim] matrix",
                        path.display()
                    ))),
                },
                Tensor::I64(..) => Err(Error::InvalidInput(format!(
                    "{}: tensor `{name}` is I64; item vectors are F32",
                    path.display()
                ))),
            }
        }
        Some("parquet") => data::read_vector_column(path, tensor.unwrap_or(DEFAULT_TENSOR)),
        _ => Err(Error::InvalidInput(format!(
            "--item-vectors {}: use a .npy, .safetensors or .parquet file",
            path.display()
        ))),
    }
}

/// Rows must match the item list, be finite and non-zero, and be L2-normalised (or are made so
/// with `normalise`).
fn check_vectors(
    path: &Path,
    items_path: &Path,
    items: &[String],
    rows: usize,
    dim: usize,
    vectors: &mut [f32],
    normalise: bool,
) -> Result<()> {
    let bad = |problem: String| Error::InvalidInput(format!("{}: {problem}", path.display()));
    if rows != items.len() {
        return Err(bad(format!(
            "{rows} vectors, but {} lists {} items: row i must be the vector of line i",
            items_path.display(),
            items.len()
        )));
    }
    if dim == 0 {
        return Err(bad("the vectors have dimension 0".into()));
    }
    for (r, row) in vectors.chunks_exact_mut(dim).enumerate() {
        let item = &items[r];
        if let Some(x) = row.iter().find(|x| !x.is_finite()) {
            return Err(bad(format!(
                "row {r} (item `{item}`) holds a non-finite value ({x})"
            )));
        }
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 {
            return Err(bad(format!(
                "row {r} (item `{item}`) is all zeros: it cannot be normalised"
            )));
        }
        if normalise {
            row.iter_mut().for_each(|x| *x /= norm);
        } else if (norm - 1.0).abs() > NORM_TOLERANCE {
            return Err(bad(format!(
                "row {r} (item `{item}`) has L2 norm {norm}: item vectors must be L2-normalised (pass --normalise to normalise them)"
            )));
        }
    }
    Ok(())
}

/// Stored histories: users as they appear in the table, items mapped to the item list (an item
/// the list lacks is refused).
fn read_histories(path: &Path, items_path: &Path, items: &[String]) -> Result<Histories> {
    let ds = data::read_interactions(path)?;
    if ds.interactions.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{}: no interactions",
            path.display()
        )));
    }
    let index: HashMap<&str, u32> = items
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let unknown: Vec<&str> = ds
        .items
        .ids()
        .iter()
        .map(String::as_str)
        .filter(|id| !index.contains_key(id))
        .collect();
    if let Some(first) = unknown.first() {
        return Err(Error::InvalidInput(format!(
            "{}: item `{first}` is not in {} ({} unknown items in all): every interaction must name a listed item",
            path.display(),
            items_path.display(),
            unknown.len()
        )));
    }
    let to_list: Vec<u32> = ds.items.ids().iter().map(|id| index[id.as_str()]).collect();
    let rows: Vec<Interaction> = ds
        .interactions
        .iter()
        .map(|r| Interaction {
            item: to_list[r.item as usize],
            ..*r
        })
        .collect();
    Ok(Histories {
        users: ds.users.ids().to_vec(),
        history: History::build(&rows, ds.n_users()),
        fingerprint: ds.fingerprint(),
        interactions: rows.len(),
    })
}

#[cfg(test)]
mod tests;
