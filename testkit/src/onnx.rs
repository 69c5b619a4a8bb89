//! Tiny ONNX user encoders that meet the encoder contract: Gather → masked sum → L2 normalise
//! (the normalised mean of the history's item vectors), and a multi-interest one whose K vectors
//! are the K most recent items'.

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto, type_proto,
};

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
        producer_name: "kan-testkit synthetic".into(),
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
