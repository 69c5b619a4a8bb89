//! Synthetic bundles for tests, examples and `kan bench worker`: clustered unit vectors, a bundle
//! writer that follows [`kan_api::bundle::files`] exactly (ids, safetensors, manifest with
//! checksums and content version), and tiny ONNX user encoders that meet the encoder contract
//! (Gather → masked sum → L2 normalise, i.e. the normalised mean of the history's item vectors;
//! and a multi-interest one whose K vectors are the K most recent items').

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kan_api::bundle::{
    BUNDLE_FORMAT_VERSION, BundleManifest, DatasetInfo, MANIFEST_FILE, content_version, sha256_hex,
};
use kan_api::crd::StrategyType;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::TensorView;

use crate::error::{Error, Result};
use crate::index::normalise;

/// `n` unit vectors of `dim` around `clusters` random centres (row-major `[n, dim]`); item `i`
/// belongs to cluster `i % clusters`. Noise is uniform ±0.35 per coordinate, which in 64-d is
/// larger than the centre itself (nearly uniform directions: the hard case for ANN).
pub fn clustered_vectors(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    clustered_vectors_with_noise(n, dim, clusters, 0.35, seed)
}

/// As [`clustered_vectors`] with noise uniform ±`noise` per coordinate (its norm is about
/// `noise · sqrt(dim / 3)` against a unit centre).
pub fn clustered_vectors_with_noise(
    n: usize,
    dim: usize,
    clusters: usize,
    noise: f32,
    seed: u64,
) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters.max(1))
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            normalise(&mut c);
            c
        })
        .collect();
    let noise = noise.abs().max(f32::EPSILON);
    let mut out = Vec::with_capacity(n * dim);
    for i in 0..n {
        let centre = &centres[i % centres.len()];
        let mut v: Vec<f32> = centre
            .iter()
            .map(|c| c + rng.random_range(-noise..noise))
            .collect();
        if !normalise(&mut v) {
            v = centre.clone();
        }
        out.extend_from_slice(&v);
    }
    out
}

/// A tensor to write: name, shape and data.
pub enum TensorData {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

impl TensorData {
    fn bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(_, d) => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(_, d) => d.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// Writes the files of a bundle, then its manifest.
pub struct BundleWriter {
    dir: PathBuf,
    files: BTreeMap<String, String>,
}

impl BundleWriter {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            files: BTreeMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a file and records its checksum.
    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<&mut Self> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        self.files.insert(name.to_string(), sha256_hex(bytes));
        Ok(self)
    }

    /// An id file, one id per line.
    pub fn ids(&mut self, name: &str, ids: &[String]) -> Result<&mut Self> {
        let mut text = ids.join("\n");
        text.push('\n');
        self.bytes(name, text.as_bytes())
    }

    /// A safetensors file.
    pub fn tensors(&mut self, name: &str, tensors: Vec<(&str, TensorData)>) -> Result<&mut Self> {
        let data: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = tensors
            .iter()
            .map(|(n, t)| match t {
                TensorData::F32(shape, _) => (
                    n.to_string(),
                    shape.clone(),
                    safetensors::Dtype::F32,
                    t.bytes(),
                ),
                TensorData::I64(shape, _) => (
                    n.to_string(),
                    shape.clone(),
                    safetensors::Dtype::I64,
                    t.bytes(),
                ),
            })
            .collect();
        let views = data
            .iter()
            .map(|(n, shape, dtype, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Bundle(format!("{name}: {n}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| Error::Bundle(format!("{name}: {e}")))?;
        self.bytes(name, &bytes)
    }

    /// Writes `manifest.json` and returns it.
    pub fn finish(
        &mut self,
        strategy: StrategyType,
        dim: Option<u32>,
        params: serde_json::Value,
    ) -> Result<BundleManifest> {
        let manifest = BundleManifest {
            format_version: BUNDLE_FORMAT_VERSION,
            strategy,
            version: content_version(&self.files),
            dataset: DatasetInfo {
                name: "synthetic".into(),
                fingerprint: "0".repeat(64),
                users: 0,
                items: 0,
                interactions: 0,
            },
            params,
            metrics: BTreeMap::new(),
            dim,
            created_at: "2026-01-01T00:00:00Z".into(),
            files: self.files.clone(),
        };
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| Error::Bundle(e.to_string()))?;
        let path = self.dir.join(MANIFEST_FILE);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(manifest)
    }
}

/// CSR offsets for rows of the given lengths.
pub fn offsets(lengths: impl IntoIterator<Item = usize>) -> Vec<i64> {
    let mut out = vec![0i64];
    for l in lengths {
        out.push(out.last().copied().unwrap_or(0) + l as i64);
    }
    out
}

fn value_info(name: &str, elem: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = |d: &Option<i64>| tensor_shape_proto::Dimension {
        value: Some(match d {
            Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
            None => tensor_shape_proto::dimension::Value::DimParam("batch".into()),
        }),
        ..Default::default()
    };
    let tensor = type_proto::Tensor {
        elem_type: elem as i32,
        shape: Some(TensorShapeProto {
            dim: dims.iter().map(dim).collect(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        attribute: attrs,
        ..Default::default()
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: value,
        ..Default::default()
    }
}

fn i64_initializer(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::INT64 as i32,
        dims: vec![values.len() as i64],
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

/// An ONNX encoder over an `[n, dim]` item table: the L2-normalised masked sum of the history's
/// item vectors, with input length `history_length`. `output_name` is `user_embedding` for a
/// contract-conforming model (anything else makes a model the worker must refuse).
pub fn encoder_onnx(
    table: &[f32],
    dim: usize,
    history_length: usize,
    output_name: &str,
) -> Vec<u8> {
    let table = table_initializer(table, dim);
    let l = Some(history_length as i64);
    let graph = GraphProto {
        name: "kan_synthetic_encoder".into(),
        node: vec![
            node(
                "Gather",
                &["item_table", "history_ids"],
                "embedded",
                vec![int_attr("axis", 0)],
            ),
            node("Unsqueeze", &["history_mask", "axis2"], "mask3", vec![]),
            node("Mul", &["embedded", "mask3"], "masked", vec![]),
            node(
                "ReduceSum",
                &["masked", "axis1"],
                "summed",
                vec![int_attr("keepdims", 0)],
            ),
            node(
                "LpNormalization",
                &["summed"],
                output_name,
                vec![int_attr("axis", 1), int_attr("p", 2)],
            ),
        ],
        initializer: vec![
            table,
            i64_initializer("axis1", &[1]),
            i64_initializer("axis2", &[2]),
        ],
        input: vec![
            value_info("history_ids", DataType::INT64, &[None, l]),
            value_info("history_mask", DataType::FLOAT, &[None, l]),
        ],
        output: vec![value_info(
            output_name,
            DataType::FLOAT,
            &[None, Some(dim as i64)],
        )],
        ..Default::default()
    };
    model_bytes(graph)
}

fn table_initializer(table: &[f32], dim: usize) -> TensorProto {
    let n = table.len() / dim.max(1);
    TensorProto {
        name: "item_table".into(),
        data_type: DataType::FLOAT as i32,
        dims: vec![n as i64, dim as i64],
        raw_data: table.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn model_bytes(graph: GraphProto) -> Vec<u8> {
    let model = ModelProto {
        ir_version: 8,
        producer_name: "kan-worker synthetic".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
            ..Default::default()
        }],
        graph: Some(graph).into(),
        ..Default::default()
    };
    // Writing a message built from plain fields cannot fail except on >2 GiB models.
    model.write_to_bytes().unwrap_or_default()
}

/// A multi-interest test encoder over an `[n, dim]` item table: `user_embedding` `[B, K, D]`
/// whose interest `j` is the L2-normalised vector of the history's item at position `j mod L`
/// (the `j`-th most recent; padding gives item 0's). A fixture for the worker's K-search path, not a
/// model: `kan train`'s multi-interest encoder pools the history instead.
pub fn interests_encoder_onnx(
    table: &[f32],
    dim: usize,
    history_length: usize,
    interests: usize,
) -> Vec<u8> {
    let l = Some(history_length as i64);
    let k = interests.max(1) as i64;
    let positions: Vec<i64> = (0..k).map(|j| j % history_length.max(1) as i64).collect();
    let graph = GraphProto {
        name: "kan_synthetic_interests_encoder".into(),
        node: vec![
            node(
                "Gather",
                &["item_table", "history_ids"],
                "embedded",
                vec![int_attr("axis", 0)],
            ),
            node(
                "Gather",
                &["embedded", "positions"],
                "recent",
                vec![int_attr("axis", 1)],
            ),
            node(
                "LpNormalization",
                &["recent"],
                "user_embedding",
                vec![int_attr("axis", 2), int_attr("p", 2)],
            ),
        ],
        initializer: vec![
            table_initializer(table, dim),
            i64_initializer("positions", &positions),
        ],
        input: vec![
            value_info("history_ids", DataType::INT64, &[None, l]),
            value_info("history_mask", DataType::FLOAT, &[None, l]),
        ],
        output: vec![value_info(
            "user_embedding",
            DataType::FLOAT,
            &[None, Some(k), Some(dim as i64)],
        )],
        ..Default::default()
    };
    model_bytes(graph)
}
