//! The exported ONNX user encoders compute what the candle training forward pass computes
//! (max abs diff ≤ 1e-4), run through ONNX Runtime. Skips when ORT_DYLIB_PATH is not set.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;

/// Each history through `model` as the worker and `kan eval` run it (one history per run,
/// padded to `l`): one row per history, its K·`dim` values.
fn encode(model: &[u8], histories: &[&[u32]], l: usize, dim: usize) -> Vec<Vec<f32>> {
    let env = kan_onnx::environment(None).unwrap();
    let encoder =
        kan_onnx::UserEncoder::load(env, kan_onnx::Model::Bytes(model), l, dim, 1, 1).unwrap();
    histories
        .iter()
        .map(|h| encoder.encode(h).unwrap().concat())
        .collect()
}

use kan_train::data::Format;
use kan_train::pipeline::prepare;
use kan_train::progress::Progress;
use kan_train::split::SplitSpec;
use kan_train::strategies::twotower::{self, Kind, batch_inputs};
use kan_train::strategies::{Context, TrainOptions};

#[test]
fn exported_dssm_gat_spectral_and_sequence_encoders_match_the_training_forward_pass() {
    if kan_onnx::dylib_path(None).is_err() {
        eprintln!(
            "skipping ONNX parity: ORT_DYLIB_PATH is not set or missing (source scripts/env.sh after ./scripts/install-tools.sh)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::write_communities(tmp.path());
    let p = prepare(
        tmp.path(),
        Format::Csv,
        Some(SplitSpec::Temporal { n: 1 }),
        3,
    )
    .unwrap();
    let opts = TrainOptions {
        epochs: Some(2),
        dim: 16,
        seed: 3,
        history_length: 8,
        progress: false,
        params: Default::default(),
    };
    let progress = Progress::new(false);
    let ctx = Context {
        ds: &p.ds,
        split: &p.split,
        history: &p.history,
        opts: &opts,
        progress: &progress,
    };
    let n = p.ds.n_items() as u32;
    // Rows: empty, short, full (L = 8), longer than L (truncated), repeated items.
    let histories: Vec<Vec<u32>> = vec![
        vec![],
        vec![3],
        (0..8).collect(),
        (0..12).map(|i| (i * 5) % n).collect(),
        vec![7, 7, 7, 1],
    ];
    let refs: Vec<&[u32]> = histories.iter().map(|h| h.as_slice()).collect();
    for kind in [Kind::Dssm, Kind::Gat] {
        let model = twotower::train(&ctx, kind).unwrap();
        let (ids, mask) = batch_inputs(&refs, 8).unwrap();
        let want = model
            .encoder
            .forward(&ids, &mask)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let got = encode(&model.encoder.to_onnx().unwrap(), &refs, 8, 16);
        assert_eq!(got.len(), want.len());
        let mut max_diff = 0f32;
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.len(), 16);
            for (a, b) in g.iter().zip(w) {
                max_diff = max_diff.max((a - b).abs());
            }
            let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-4,
                "{kind:?}: output is L2-normalised, norm {norm}"
            );
        }
        assert!(max_diff <= 1e-4, "{kind:?}: max abs diff {max_diff}");
        eprintln!("{kind:?}: ONNX vs candle max abs diff {max_diff:e}");
    }
    // spectral: the exported encoder sums the history rows the trainer scores with.
    let model = kan_train::strategies::spectral::train(&ctx).unwrap();
    let want = model.encode(&refs);
    let got = encode(&model.to_onnx().unwrap(), &refs, 8, model.dim);
    let max_diff = got
        .iter()
        .zip(&want)
        .flat_map(|(g, w)| g.iter().zip(w).map(|(a, b)| (a - b).abs()))
        .fold(0f32, f32::max);
    assert_eq!(got[2].len(), model.dim);
    assert!(max_diff <= 1e-4, "spectral: max abs diff {max_diff}");
    // sequence: two blocks of two-head causal attention, dropout off at export; the history
    // longer than L is cut to its 8 most recent items on both sides.
    let seq_opts = TrainOptions {
        params: kan_train::strategies::HyperParams::parse(&["heads=2"]).unwrap(),
        ..opts.clone()
    };
    let seq_ctx = Context {
        opts: &seq_opts,
        ..ctx
    };
    let model = kan_train::strategies::sequence::train(&seq_ctx).unwrap();
    let want = model.encode(&refs).unwrap();
    let got = encode(&model.to_onnx().unwrap(), &refs, 8, 16);
    let mut max_diff = 0f32;
    for (g, (w, h)) in got.iter().zip(want.iter().zip(&refs)) {
        assert_eq!(g.len(), 16);
        for (a, b) in g.iter().zip(w) {
            max_diff = max_diff.max((a - b).abs());
        }
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        // An empty history has no direction of its own (the final norm's bias).
        if !h.is_empty() {
            assert!((norm - 1.0).abs() < 1e-4, "sequence: norm {norm}");
        }
    }
    assert!(max_diff <= 1e-4, "sequence: max abs diff {max_diff}");
    eprintln!("sequence: ONNX vs candle max abs diff {max_diff:e}");
}

#[test]
fn multi_interest_encoders_match_the_rust_pooling_and_output_k_normalised_vectors() {
    if kan_onnx::dylib_path(None).is_err() {
        eprintln!("skipping ONNX parity: ORT_DYLIB_PATH is not set or missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    common::write_communities(tmp.path());
    let p = prepare(
        tmp.path(),
        Format::Csv,
        Some(SplitSpec::Temporal { n: 1 }),
        3,
    )
    .unwrap();
    let n = p.ds.n_items() as u32;
    // Rows: empty, one item (K repeated seeds), two items, full, longer than L, repeats.
    let histories: Vec<Vec<u32>> = vec![
        vec![],
        vec![3],
        vec![3, 9],
        (0..8).collect(),
        (0..12).map(|i| (i * 5) % n).collect(),
        vec![7, 7, 7, 1],
    ];
    let refs: Vec<&[u32]> = histories.iter().map(|h| h.as_slice()).collect();
    // Learned interests (the default), then the unweighted pooling of a single-vector dssm.
    for (attention, learned) in [("interest_attention=1", 3), ("interest_attention=0", 0)] {
        let opts = TrainOptions {
            epochs: Some(2),
            dim: 16,
            seed: 3,
            history_length: 8,
            progress: false,
            params: kan_train::strategies::HyperParams::parse(&["interests=3", attention]).unwrap(),
        };
        let progress = Progress::new(false);
        let ctx = Context {
            ds: &p.ds,
            split: &p.split,
            history: &p.history,
            opts: &opts,
            progress: &progress,
        };
        let model = twotower::train(&ctx, Kind::Dssm).unwrap();
        assert_eq!(model.interests, 3);
        assert_eq!(model.encoder.learned_interests(), learned, "{attention}");
        let want = model.encoder.forward_interests(&refs, 8, 3).unwrap();
        let got = encode(&model.encoder.to_onnx_with(3).unwrap(), &refs, 8, 16);
        assert_eq!(got.len(), want.len());
        let mut max_diff = 0f32;
        for (row, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), 3 * 16, "row {row}: [K, D] per history");
            for (a, b) in g.iter().zip(w) {
                max_diff = max_diff.max((a - b).abs());
            }
            if row > 0 {
                for v in g.chunks(16) {
                    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    assert!((norm - 1.0).abs() < 1e-4, "row {row}: norm {norm}");
                }
            }
        }
        assert!(
            max_diff <= 1e-4,
            "dssm interests=3 {attention}: max abs diff {max_diff}"
        );
        eprintln!("dssm interests=3 {attention}: ONNX vs Rust max abs diff {max_diff:e}");
        if learned > 0 {
            // The learned heads attend differently: a history's interests are not all equal.
            let full = &got[3];
            let spread = full[..16]
                .iter()
                .zip(&full[16..32])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(spread > 1e-3, "interests 0 and 1 coincide: {spread}");
        }
    }

    // The tower-less encoder `kan bench worker --user-vectors` serves.
    let table: Vec<f32> = (0..n as usize * 16)
        .map(|i| ((i * 7919) % 23) as f32 / 23.0 - 0.5)
        .collect();
    let bytes = kan_train::strategies::interests::mean_encoder_onnx(&table, 16, 2).unwrap();
    let got = encode(&bytes, &refs[1..], 8, 16);
    let pooled = kan_train::strategies::interests::pooled(&table, 16, &refs[1..], 8, 2);
    for (g, w) in got.iter().zip(pooled.chunks(2 * 16)) {
        for (gv, wv) in g.chunks(16).zip(w.chunks(16)) {
            let norm: f32 = wv.iter().map(|x| x * x).sum::<f32>().sqrt();
            for (a, b) in gv.iter().zip(wv) {
                assert!((a - b / norm).abs() <= 1e-4, "{a} vs {}", b / norm);
            }
        }
    }
}

#[test]
fn only_dssm_takes_the_interests_parameter() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_communities(tmp.path());
    let p = prepare(
        tmp.path(),
        Format::Csv,
        Some(SplitSpec::Temporal { n: 1 }),
        3,
    )
    .unwrap();
    let opts = TrainOptions {
        epochs: Some(1),
        dim: 16,
        seed: 3,
        history_length: 8,
        progress: false,
        params: kan_train::strategies::HyperParams::parse(&["interests=2"]).unwrap(),
    };
    let progress = Progress::new(false);
    let ctx = Context {
        ds: &p.ds,
        split: &p.split,
        history: &p.history,
        opts: &opts,
        progress: &progress,
    };
    let e = twotower::train(&ctx, Kind::Gat).err().unwrap().to_string();
    assert!(e.contains("only dssm"), "{e}");
}

/// An encoder that sums its history rows without normalising them (the contract asks for unit
/// vectors; the served path must not depend on a model delivering them).
fn unnormalised_sum_encoder(table: &[f32], dim: usize) -> Vec<u8> {
    use kan_train::onnx::{Graph, attr_int};
    let (mut g, ids, mask) = Graph::user_encoder(dim);
    let table = g.f32_init("table", &[table.len() / dim, dim], table);
    let ax1 = g.i64_init("axis_1", &[1]);
    let ax2 = g.i64_init("axis_2", &[2]);
    let e = g.node("Gather", &[&table, &ids], vec![attr_int("axis", 0)], None);
    let m = g.node("Unsqueeze", &[&mask, &ax2], vec![], None);
    let em = g.node("Mul", &[&e, &m], vec![], None);
    g.node(
        "ReduceSum",
        &[&em, &ax1],
        vec![attr_int("keepdims", 0)],
        Some(kan_onnx::OUTPUT),
    );
    g.to_bytes("sum-encoder").unwrap()
}

#[test]
fn the_served_encoder_vectors_read_the_first_l_items_have_unit_length_and_need_a_direction() {
    if kan_onnx::dylib_path(None).is_err() {
        eprintln!("skipping: ORT_DYLIB_PATH is not set or missing");
        return;
    }
    // Item 1 is item 0 reversed; item 2 points elsewhere.
    let table = [1.0f32, 2.0, 2.0, -1.0, -2.0, -2.0, 0.0, 3.0, 4.0];
    let model = unnormalised_sum_encoder(&table, 3);
    let env = kan_onnx::environment(None).unwrap();
    let encoder =
        kan_onnx::UserEncoder::load(env, kan_onnx::Model::Bytes(&model), 2, 3, 1, 1).unwrap();
    // L = 2: the third item is not read.
    assert_eq!(
        encoder.encode(&[2, 0, 1]).unwrap(),
        vec![vec![1.0, 5.0, 6.0]]
    );
    let served = encoder.query_vectors(&[2, 0, 1]).unwrap();
    let norm = 62f32.sqrt();
    assert_eq!(served.len(), 1);
    for (got, want) in served[0].iter().zip([1.0 / norm, 5.0 / norm, 6.0 / norm]) {
        assert!((got - want).abs() < 1e-6, "{served:?}");
    }
    // A sum without direction searches nothing; an empty history is not even encoded.
    assert_eq!(encoder.encode(&[0, 1]).unwrap(), vec![vec![0.0; 3]]);
    assert!(encoder.query_vectors(&[0, 1]).unwrap().is_empty());
    assert!(encoder.query_vectors(&[]).unwrap().is_empty());
    // The output must have the bundle's dimension.
    let e = kan_onnx::UserEncoder::load(env, kan_onnx::Model::Bytes(&model), 2, 4, 1, 1)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("dimension") || e.contains("[1, 4]"), "{e}");
}
