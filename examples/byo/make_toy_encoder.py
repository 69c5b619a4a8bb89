#!/usr/bin/env python3
"""Writes a toy "trained elsewhere" two-tower model for `kan bundle pack`, with numpy and onnx
only (no PyTorch): what a team's own training code hands over.

    python make_toy_encoder.py OUT_DIR [--items 200] [--dim 16] [--users 50] [--seed 7]

OUT_DIR receives:
  model.onnx        user encoder meeting Kan's contract: history_ids int64[B, L] and
                    history_mask float32[B, L] -> user_embedding float32[B, D] (L2-normalised);
                    here the normalised masked sum of the history items' vectors, L dynamic
  item_vectors.npy  float32[N, D], L2-normalised item tower output (row i = line i of items.txt)
  items.txt         external item ids, one per line
  interactions.csv  user_id,item_id,timestamp: stored histories for users
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ONNX Runtime 1.31 reads IR version 10 and opset 21; pinning both keeps the model loadable
# whatever onnx release wrote it.
IR_VERSION = 10
OPSET = 17


def item_vectors(n_items: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Clustered unit vectors, so similar items exist and recall has structure."""
    clusters = rng.normal(size=(8, dim))
    v = clusters[np.arange(n_items) % 8] + 0.3 * rng.normal(size=(n_items, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def encoder(table: np.ndarray) -> onnx.ModelProto:
    """user_embedding = normalise(sum_j mask_j * table[history_ids_j])."""
    nodes = [
        helper.make_node("Gather", ["item_table", "history_ids"], ["embedded"], axis=0),
        helper.make_node("Unsqueeze", ["history_mask", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["embedded", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("LpNormalization", ["summed"], ["user_embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "toy_user_tower",
        inputs=[
            helper.make_tensor_value_info("history_ids", TensorProto.INT64, ["B", "L"]),
            helper.make_tensor_value_info("history_mask", TensorProto.FLOAT, ["B", "L"]),
        ],
        outputs=[
            helper.make_tensor_value_info(
                "user_embedding", TensorProto.FLOAT, ["B", table.shape[1]]
            )
        ],
        initializer=[
            numpy_helper.from_array(table, "item_table"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)

    vectors = item_vectors(args.items, args.dim, rng)
    onnx.save(encoder(vectors), os.path.join(args.out, "model.onnx"))
    np.save(os.path.join(args.out, "item_vectors.npy"), vectors)
    with open(os.path.join(args.out, "items.txt"), "w") as f:
        f.writelines(f"item{i}\n" for i in range(args.items))
    with open(os.path.join(args.out, "interactions.csv"), "w") as f:
        f.write("user_id,item_id,timestamp\n")
        for u in range(args.users):
            # Each user reads within one cluster, so their history predicts their next items.
            cluster = u % 8
            for t, i in enumerate(rng.choice(np.arange(cluster, args.items, 8), size=5)):
                f.write(f"user{u},item{i},{1_700_000_000 + 60 * t}\n")
    print(f"wrote model.onnx, item_vectors.npy, items.txt, interactions.csv to {args.out}")


if __name__ == "__main__":
    main()
