//! The user-encoder contract: inputs `history_ids` i64[B, L] and `history_mask` f32[B, L],
//! output `user_embedding` f32[B, D] (L2-normalised), or f32[B, K, D] for a multi-interest
//! model (K vectors per user, each L2-normalised; each is searched and the lists merged with
//! [`kan_core::interests::merge`]). A model with other required inputs is refused.

use ort::value::{TensorElementType, ValueType};

use kan_core::interests::MAX_INTERESTS;

use crate::error::{Error, Result};

/// Input names of the encoder contract.
pub const INPUT_IDS: &str = "history_ids";
pub const INPUT_MASK: &str = "history_mask";
/// Output name of the encoder contract.
pub const OUTPUT: &str = "user_embedding";
/// The sizes a model declares beyond the contract's names and types (`None`: dynamic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    /// `L` of `history_ids` / `history_mask` when the model fixes it.
    pub history_length: Option<usize>,
    /// `D` of `user_embedding` when the model fixes it.
    pub dim: Option<usize>,
    /// True when `user_embedding` is `[B, K, D]` (K interest vectors per user).
    pub multi_interest: bool,
    /// `K` of a `[B, K, D]` output when the model fixes it.
    pub interests: Option<usize>,
}

/// History length `pack` uses for a model with a dynamic `L` when none is asked for (the
/// RecallQueue's `historyLength` default).
pub const DEFAULT_HISTORY_LENGTH: usize = 50;

/// Checks a session's declared inputs and outputs against the encoder contract; `dim` is the
/// bundle's embedding dimension. Returns the sizes the model fixes.
pub fn check_contract(
    inputs: &[(String, ValueType)],
    outputs: &[(String, ValueType)],
    dim: usize,
) -> Result<Declared> {
    let find = |list: &[(String, ValueType)], name: &str| {
        list.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone())
    };
    let expect = |kind: &str,
                  name: &str,
                  ty: Option<ValueType>,
                  elem: TensorElementType,
                  ranks: &[usize]|
     -> Result<Vec<i64>> {
        match ty {
            None => Err(Error::Model(format!(
                "model.onnx has no {kind} '{name}': the encoder contract needs {INPUT_IDS} i64[B, L], {INPUT_MASK} f32[B, L] -> {OUTPUT} f32[B, D] (or f32[B, K, D] for K interest vectors)"
            ))),
            Some(ValueType::Tensor { ty, shape, .. })
                if ty == elem && ranks.contains(&shape.len()) =>
            {
                Ok(shape.to_vec())
            }
            Some(other) => Err(Error::Model(format!(
                "model.onnx {kind} '{name}' is {other:?}, expected a {} {elem:?} tensor",
                if ranks.len() == 1 {
                    "rank-2"
                } else {
                    "[B, D] or [B, K, D]"
                }
            ))),
        }
    };
    let ids = expect(
        "input",
        INPUT_IDS,
        find(inputs, INPUT_IDS),
        TensorElementType::Int64,
        &[2],
    )?;
    let mask = expect(
        "input",
        INPUT_MASK,
        find(inputs, INPUT_MASK),
        TensorElementType::Float32,
        &[2],
    )?;
    let fixed = |d: i64| (d > 0).then_some(d as usize);
    if let (Some(a), Some(b)) = (fixed(ids[1]), fixed(mask[1]))
        && a != b
    {
        return Err(Error::Model(format!(
            "model.onnx declares {INPUT_IDS} of length {a} but {INPUT_MASK} of length {b}: both are [B, L]"
        )));
    }
    if let Some((extra, _)) = inputs
        .iter()
        .find(|(n, _)| n != INPUT_IDS && n != INPUT_MASK)
    {
        return Err(Error::Model(format!(
            "model.onnx has input '{extra}', which the worker cannot feed: only {INPUT_IDS} and {INPUT_MASK} are supported"
        )));
    }
    let out = expect(
        "output",
        OUTPUT,
        find(outputs, OUTPUT),
        TensorElementType::Float32,
        &[2, 3],
    )?;
    let out_dim = out[out.len() - 1];
    if out_dim > 0 && out_dim as usize != dim {
        return Err(Error::Model(format!(
            "model.onnx outputs {OUTPUT} of dimension {out_dim}, but the bundle's item vectors have {dim}"
        )));
    }
    let multi_interest = out.len() == 3;
    let interests = if multi_interest { fixed(out[1]) } else { None };
    if let Some(k) = interests
        && k > MAX_INTERESTS
    {
        return Err(Error::Model(format!(
            "model.onnx outputs {k} interest vectors per user ({OUTPUT} [B, {k}, D]); the worker searches at most {MAX_INTERESTS}"
        )));
    }
    Ok(Declared {
        history_length: fixed(ids[1]).or(fixed(mask[1])),
        dim: fixed(out_dim),
        multi_interest,
        interests,
    })
}

/// The user vectors in one history's `user_embedding` output (`[1, D]` or `[1, K, D]`), or an
/// inference error naming the shape that does not fit.
pub fn user_vectors(shape: &[i64], data: &[f32], dim: usize) -> Result<Vec<Vec<f32>>> {
    let k = match shape {
        [1, d] if *d as usize == dim => 1,
        [1, k, d] if *d as usize == dim && (1..=MAX_INTERESTS as i64).contains(k) => *k as usize,
        _ => {
            return Err(Error::Inference(format!(
                "{OUTPUT} has shape {shape:?}, expected [1, {dim}] or [1, K, {dim}] with 1 <= K <= {MAX_INTERESTS}"
            )));
        }
    };
    if dim == 0 || data.len() != k * dim {
        return Err(Error::Inference(format!(
            "{OUTPUT} holds {} values for shape {shape:?}",
            data.len()
        )));
    }
    Ok(data.chunks_exact(dim).map(<[f32]>::to_vec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(ty: TensorElementType, shape: &[i64]) -> ValueType {
        ValueType::Tensor {
            ty,
            shape: ort::value::Shape::new(shape.iter().copied()),
            dimension_symbols: ort::value::SymbolicDimensions::empty(shape.len()),
        }
    }

    type Io = Vec<(String, ValueType)>;

    fn io(output: &[i64]) -> (Io, Io) {
        let inputs = vec![
            (
                INPUT_IDS.to_string(),
                tensor(TensorElementType::Int64, &[-1, 20]),
            ),
            (
                INPUT_MASK.to_string(),
                tensor(TensorElementType::Float32, &[-1, 20]),
            ),
        ];
        let outputs = vec![(
            OUTPUT.to_string(),
            tensor(TensorElementType::Float32, output),
        )];
        (inputs, outputs)
    }

    #[test]
    fn the_contract_takes_one_vector_or_k_interest_vectors_per_user() {
        let (i, o) = io(&[-1, 8]);
        let one = check_contract(&i, &o, 8).unwrap();
        assert!(!one.multi_interest);
        assert_eq!(
            (one.history_length, one.dim, one.interests),
            (Some(20), Some(8), None)
        );
        let (i, o) = io(&[-1, 3, 8]);
        let three = check_contract(&i, &o, 8).unwrap();
        assert!(three.multi_interest);
        assert_eq!((three.dim, three.interests), (Some(8), Some(3)));
        let (i, o) = io(&[-1, -1, 8]);
        let dynamic = check_contract(&i, &o, 8).unwrap();
        assert!(dynamic.multi_interest && dynamic.interests.is_none());
    }

    #[test]
    fn interest_outputs_of_the_wrong_width_rank_or_count_are_refused_with_the_reason() {
        let (i, o) = io(&[-1, 2, 16]);
        let e = check_contract(&i, &o, 8).unwrap_err().to_string();
        assert!(e.contains("dimension 16") && e.contains("have 8"), "{e}");
        let (i, o) = io(&[-1, 2, 2, 8]);
        let e = check_contract(&i, &o, 8).unwrap_err().to_string();
        assert!(e.contains("[B, D] or [B, K, D]"), "{e}");
        let (i, o) = io(&[-1, 40, 8]);
        let e = check_contract(&i, &o, 8).unwrap_err().to_string();
        assert!(
            e.contains("40 interest vectors") && e.contains("at most 16"),
            "{e}"
        );
    }

    #[test]
    fn an_encoder_answer_splits_into_one_vector_per_interest() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
        assert_eq!(
            user_vectors(&[1, 3, 2], &data, 2).unwrap(),
            vec![vec![0.0, 1.0], vec![2.0, 3.0], vec![4.0, 5.0]]
        );
        assert_eq!(
            user_vectors(&[1, 2], &data[..2], 2).unwrap(),
            vec![vec![0.0, 1.0]]
        );
        for bad in [&[1i64, 3, 3][..], &[2, 3, 2], &[1, 0, 2], &[1, 6]] {
            let e = user_vectors(bad, &data, 2).unwrap_err().to_string();
            assert!(e.contains("expected [1, 2] or [1, K, 2]"), "{bad:?}: {e}");
        }
        let e = user_vectors(&[1, 3, 2], &data[..4], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds 4 values"), "{e}");
    }
}
