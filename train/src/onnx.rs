//! A small ONNX graph builder over `onnx-protobuf` message types, used to export user encoders.
//! Opset 17 (ReduceSum/Unsqueeze take axes as inputs; ReduceL2 is not used).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Tensor as TypeTensor};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::error::{Error, Result};

pub const OPSET: i64 = 17;
/// IR version 8 pairs with opset 17.
pub const IR_VERSION: i64 = 8;

/// A dimension of a graph input/output: fixed or symbolic.
#[derive(Clone, Debug)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

#[derive(Default)]
pub struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    counter: usize,
}

pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.to_string();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(match d {
            Dim::Fixed(v) => dimension::Value::DimValue(*v),
            Dim::Named(n) => dimension::Value::DimParam(n.to_string()),
        });
        shape.dim.push(dim);
    }
    let mut tt = TypeTensor::new();
    tt.elem_type = elem as i32;
    tt.shape = Some(shape).into();
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(tt));
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_string();
    vi.type_ = Some(tp).into();
    vi
}

impl Graph {
    /// A graph with the user-encoder contract's inputs and output declared:
    /// `history_ids` i64 [B, L], `history_mask` f32 [B, L] → `user_embedding` f32 [B, dim], B and
    /// L symbolic. Returns the graph and the names of the two inputs.
    pub fn user_encoder(dim: usize) -> (Self, String, String) {
        Self::user_encoder_with(dim, 1)
    }

    /// As [`Graph::user_encoder`] for a model with `interests` user vectors: `user_embedding`
    /// f32 [B, K, dim] when `interests` > 1 (the multi-interest form of the contract).
    pub fn user_encoder_with(dim: usize, interests: usize) -> (Self, String, String) {
        let mut g = Graph::default();
        let ids = g.input(
            "history_ids",
            DataType::INT64,
            &[Dim::Named("batch"), Dim::Named("history")],
        );
        let mask = g.input(
            "history_mask",
            DataType::FLOAT,
            &[Dim::Named("batch"), Dim::Named("history")],
        );
        let out = if interests > 1 {
            vec![
                Dim::Named("batch"),
                Dim::Fixed(interests as i64),
                Dim::Fixed(dim as i64),
            ]
        } else {
            vec![Dim::Named("batch"), Dim::Fixed(dim as i64)]
        };
        g.output("user_embedding", DataType::FLOAT, &out);
        (g, ids, mask)
    }

    pub fn input(&mut self, name: &str, elem: DataType, dims: &[Dim]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        name.to_string()
    }

    pub fn output(&mut self, name: &str, elem: DataType, dims: &[Dim]) {
        self.outputs.push(value_info(name, elem, dims));
    }

    pub fn f32_init(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.data_type = DataType::FLOAT as i32;
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(t);
        name.to_string()
    }

    pub fn i64_init(&mut self, name: &str, data: &[i64]) -> String {
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.data_type = DataType::INT64 as i32;
        t.dims = vec![data.len() as i64];
        t.raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializers.push(t);
        name.to_string()
    }

    /// Adds a node with one output; returns the output's name (`out` when given, else fresh).
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        out: Option<&str>,
    ) -> String {
        self.counter += 1;
        let output = out
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}_{}", op.to_lowercase(), self.counter));
        let mut n = NodeProto::new();
        n.op_type = op.to_string();
        n.name = format!("{op}_{}", self.counter);
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![output.clone()];
        n.attribute = attrs;
        self.nodes.push(n);
        output
    }

    /// `x / max(‖x‖₂, eps)` over the last axis: the contract's normalisation of
    /// `user_embedding`, and of anything else a graph compares by cosine. Its initialisers are
    /// named after `prefix`, so one graph can normalise more than once.
    pub fn l2_normalise(&mut self, x: &str, prefix: &str, eps: f32, out: Option<&str>) -> String {
        let ax_last = self.i64_init(&format!("{prefix}_axis_last"), &[-1]);
        let eps = self.f32_init(&format!("{prefix}_eps"), &[], &[eps]);
        let sq = self.node("Mul", &[x, x], vec![], None);
        let ss = self.node(
            "ReduceSum",
            &[&sq, &ax_last],
            vec![attr_int("keepdims", 1)],
            None,
        );
        let norm = self.node("Sqrt", &[&ss], vec![], None);
        let norm = self.node("Max", &[&norm, &eps], vec![], None);
        self.node("Div", &[x, &norm], vec![], out)
    }

    /// Serialised `ModelProto`.
    pub fn to_bytes(self, graph_name: &str) -> Result<Vec<u8>> {
        let mut g = GraphProto::new();
        g.name = graph_name.to_string();
        g.node = self.nodes;
        g.initializer = self.initializers;
        g.input = self.inputs;
        g.output = self.outputs;
        let mut opset = OperatorSetIdProto::new();
        opset.domain = String::new();
        opset.version = OPSET;
        let mut m = ModelProto::new();
        m.ir_version = IR_VERSION;
        m.producer_name = "kan-train".to_string();
        m.producer_version = env!("CARGO_PKG_VERSION").to_string();
        m.opset_import = vec![opset];
        m.graph = Some(g).into();
        m.write_to_bytes().map_err(|e| Error::Onnx(e.to_string()))
    }
}
