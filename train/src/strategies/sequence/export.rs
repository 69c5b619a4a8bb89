//! The sequence network as an ONNX user encoder (the contract of `bundle::files::MODEL`): the
//! same operations as [`Net::forward`], node for node. `L` stays symbolic up to the trained
//! length: the positional table and the causal bias are sliced to the input's `L`.

use super::net::{LN_EPS, MASK_BIAS, NORM_EPS, Net, causal_bias};
use crate::error::Result;
use crate::onnx::{Graph, attr_float, attr_int, attr_ints};

pub fn to_onnx(net: &Net) -> Result<Vec<u8>> {
    let s = net.shape;
    let (d, heads) = (s.dim as i64, s.heads as i64);
    let dh = d / heads;
    let (mut g, ids, mask) = Graph::user_encoder(s.dim);
    let init = |g: &mut Graph, name: &str| -> Result<String> {
        let (shape, data) = net.weights(name)?;
        Ok(g.f32_init(name, &shape, &data))
    };
    let item = init(&mut g, "item")?;
    let pos = init(&mut g, "pos")?;
    let causal = g.f32_init(
        "causal_bias",
        &[s.max_len, s.max_len],
        &causal_bias(s.max_len),
    );
    let scale = g.f32_init("input_scale", &[], &[(s.dim as f32).sqrt()]);
    let inv_sqrt_dh = g.f32_init("inv_sqrt_dh", &[], &[1.0 / (dh as f32).sqrt()]);
    let one = g.f32_init("one", &[], &[1.0]);
    let big = g.f32_init("mask_bias", &[], &[MASK_BIAS]);
    let zero1 = g.i64_init("zero_1", &[0]);
    let zero2 = g.i64_init("zero_2", &[0, 0]);
    let one1 = g.i64_init("one_1", &[1]);
    let two1 = g.i64_init("two_1", &[2]);
    let axes01 = g.i64_init("axes_0_1", &[0, 1]);
    let axes12 = g.i64_init("axes_1_2", &[1, 2]);
    let split_shape = g.i64_init("split_heads", &[0, 0, heads, dh]);
    let merge_shape = g.i64_init("merge_heads", &[0, 0, d]);
    let first = g.i64_init("most_recent", &[0]);

    // L from the input, as a [1] tensor, then [L] and [L, L] slices of the tables.
    let shape = g.node("Shape", &[&ids], vec![], None);
    let l = g.node("Slice", &[&shape, &one1, &two1, &zero1], vec![], None);
    let ll = g.node("Concat", &[&l, &l], vec![attr_int("axis", 0)], None);
    let pos = g.node("Slice", &[&pos, &zero1, &l, &zero1], vec![], None);
    let causal = g.node("Slice", &[&causal, &zero2, &ll, &axes01], vec![], None);

    let e = g.node("Gather", &[&item, &ids], vec![attr_int("axis", 0)], None);
    let e = g.node("Mul", &[&e, &scale], vec![], None);
    let x = g.node("Add", &[&e, &pos], vec![], None);
    let m = g.node("Unsqueeze", &[&mask, &two1], vec![], None);
    let mut x = g.node("Mul", &[&x, &m], vec![], None);
    let off = g.node("Sub", &[&mask, &one], vec![], None);
    let pad = g.node("Mul", &[&off, &big], vec![], None);
    let pad = g.node("Unsqueeze", &[&pad, &axes12], vec![], None);
    let bias = g.node("Add", &[&pad, &causal], vec![], None);

    let ln = |g: &mut Graph, x: &str, gname: &str, bname: &str| -> Result<String> {
        let gamma = init(g, gname)?;
        let beta = init(g, bname)?;
        Ok(g.node(
            "LayerNormalization",
            &[x, &gamma, &beta],
            vec![attr_int("axis", -1), attr_float("epsilon", LN_EPS as f32)],
            None,
        ))
    };
    for k in 0..s.blocks {
        let name = |n: &str| format!("b{k}_{n}");
        let h = ln(&mut g, &x, &name("ln1_g"), &name("ln1_b"))?;
        let heads_of = |g: &mut Graph, w: &str, perm: &[i64]| -> Result<String> {
            let w = init(g, &name(w))?;
            let t = g.node("MatMul", &[&h, &w], vec![], None);
            let t = g.node("Reshape", &[&t, &split_shape], vec![], None);
            Ok(g.node("Transpose", &[&t], vec![attr_ints("perm", perm)], None))
        };
        let q = heads_of(&mut g, "wq", &[0, 2, 1, 3])?;
        let kt = heads_of(&mut g, "wk", &[0, 2, 3, 1])?;
        let v = heads_of(&mut g, "wv", &[0, 2, 1, 3])?;
        let scores = g.node("MatMul", &[&q, &kt], vec![], None);
        let scores = g.node("Mul", &[&scores, &inv_sqrt_dh], vec![], None);
        let scores = g.node("Add", &[&scores, &bias], vec![], None);
        let att = g.node("Softmax", &[&scores], vec![attr_int("axis", -1)], None);
        let o = g.node("MatMul", &[&att, &v], vec![], None);
        let o = g.node(
            "Transpose",
            &[&o],
            vec![attr_ints("perm", &[0, 2, 1, 3])],
            None,
        );
        let o = g.node("Reshape", &[&o, &merge_shape], vec![], None);
        x = g.node("Add", &[&x, &o], vec![], None);
        let h = ln(&mut g, &x, &name("ln2_g"), &name("ln2_b"))?;
        let (w1, b1, w2, b2) = (
            init(&mut g, &name("w1"))?,
            init(&mut g, &name("b1"))?,
            init(&mut g, &name("w2"))?,
            init(&mut g, &name("b2"))?,
        );
        let f = g.node("MatMul", &[&h, &w1], vec![], None);
        let f = g.node("Add", &[&f, &b1], vec![], None);
        let f = g.node("Relu", &[&f], vec![], None);
        let f = g.node("MatMul", &[&f, &w2], vec![], None);
        let f = g.node("Add", &[&f, &b2], vec![], None);
        let y = g.node("Add", &[&x, &f], vec![], None);
        x = g.node("Mul", &[&y, &m], vec![], None);
    }
    let x = ln(&mut g, &x, "final_g", "final_b")?;
    // [B, 1, D] at the most recent position, then [B, D].
    let u = g.node("Gather", &[&x, &first], vec![attr_int("axis", 1)], None);
    let u = g.node("Squeeze", &[&u, &one1], vec![], None);
    g.l2_normalise(&u, "output", NORM_EPS as f32, Some("user_embedding"));
    g.to_bytes("kan-sequence-user-encoder")
}
