"""Trains a TensorFlow Recommenders two-tower model of the same shape as Kan's `dssm` queue on a
split written by `kan eval --dump-split` and writes the top-K of every held-out user as
`kan eval --predictions` JSON lines (dataset ids, best first, known items filtered out).

Same shape as train/src/strategies/twotower.rs (Kind::Dssm):
* item tower: an item embedding table, L2-normalised;
* user tower: the mean of a second ("history") embedding table over up to L of the user's
  other items (a random L when there are more), then mean + W2·tanh(W1·mean + b1) + b2,
  L2-normalised;
* loss: in-batch softmax (TFRS Retrieval) with temperature, logQ correction from item
  frequencies and accidental hits removed; Adam; batch 1024; one example per training row.
Kan also draws 1024 uniform negatives per step, which TFRS's in-batch task has no option for.

Prints one JSON line with per-epoch CPU seconds (user + system of this process), wall seconds
and peak RSS, so a caller compares training cost epoch for epoch.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


class Index:
    """Dense indices in order of first appearance, like Kan's IdMap."""

    def __init__(self):
        self.ids, self.pos = [], {}

    def add(self, key):
        i = self.pos.get(key)
        if i is None:
            i = self.pos[key] = len(self.ids)
            self.ids.append(key)
        return i


def read_pairs(path, uidx, iidx, grow):
    pairs = []
    with open(path) as f:
        for line in f:
            u, i = line.rstrip("\n").split("\t")
            if grow:
                pairs.append((uidx.add(u), iidx.add(i)))
            elif u in uidx.pos and i in iidx.pos:
                pairs.append((uidx.pos[u], iidx.pos[i]))
    return pairs


def histories(pairs, n_users):
    """Per user, the distinct items in file order."""
    seen = [dict() for _ in range(n_users)]
    for u, i in pairs:
        seen[u].setdefault(i, None)
    return [np.fromiter(h.keys(), dtype=np.int32, count=len(h)) for h in seen]


def epoch_examples(hist, length, pad, rng):
    """One example per (user, item) of the training data: the item, and up to `length` of the
    user's other items (a random `length` of them when there are more), padded with `pad`."""
    items, ctx = [], []
    for u, a in enumerate(hist):
        n = len(a)
        if n == 0:
            continue
        m = np.full((n, length), pad, dtype=np.int32)
        if n - 1 <= length:
            # Row j: every item but a[j].
            idx = (np.arange(n)[:, None] + 1 + np.arange(n - 1)[None, :]) % n
            m[:, : n - 1] = a[idx]
        else:
            keys = rng.random((n, n))
            np.fill_diagonal(keys, np.inf)
            m[:] = a[np.argpartition(keys, length - 1, axis=1)[:, :length]]
        items.append(a)
        ctx.append(m)
    return np.concatenate(items), np.concatenate(ctx)


class UserTower(tf.keras.Model):
    def __init__(self, n_items, dim):
        super().__init__()
        self.pad = n_items
        self.history = tf.keras.layers.Embedding(n_items + 1, dim, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.1))
        self.w1 = tf.keras.layers.Dense(dim, activation="tanh")
        self.w2 = tf.keras.layers.Dense(dim)

    def call(self, hist):
        mask = tf.cast(hist < self.pad, tf.float32)[:, :, None]
        e = self.history(hist) * mask
        mean = tf.reduce_sum(e, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return tf.math.l2_normalize(mean + self.w2(self.w1(mean)), axis=1)


class ItemTower(tf.keras.Model):
    def __init__(self, n_items, dim):
        super().__init__()
        self.item = tf.keras.layers.Embedding(n_items, dim, embeddings_initializer=tf.keras.initializers.RandomNormal(stddev=0.1))

    def call(self, items):
        return tf.math.l2_normalize(self.item(items), axis=1)


class TwoTower(tfrs.Model):
    def __init__(self, n_items, dim, temperature):
        super().__init__()
        self.user = UserTower(n_items, dim)
        self.items = ItemTower(n_items, dim)
        self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=True)

    def compute_loss(self, features, training=False):
        return self.task(
            self.user(features["hist"]),
            self.items(features["item"]),
            candidate_sampling_probability=features["prob"],
            candidate_ids=features["item"],
            compute_metrics=False,
        )


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split-dir", type=Path, required=True)
    ap.add_argument("--part", choices=["valid", "test"], required=True,
                    help="held-out part to predict; valid: known = train, test: known = train + valid")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--history-length", type=int, default=50)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--learning-rate", type=float, default=0.005)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=300)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.random.set_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    uidx, iidx = Index(), Index()
    train = read_pairs(args.split_dir / "train.tsv", uidx, iidx, grow=True)
    n_users, n_items = len(uidx.ids), len(iidx.ids)
    hist = histories(train, n_users)
    known = hist
    if args.part == "test":
        extra = read_pairs(args.split_dir / "valid.tsv", uidx, iidx, grow=False)
        known = histories(train + extra, n_users)
    counts = np.bincount(np.concatenate(hist), minlength=n_items).astype(np.float64)
    prob = (counts / counts.sum()).astype(np.float32)

    model = TwoTower(n_items, args.dim, args.temperature)
    model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate))
    epochs = []
    for epoch in range(args.epochs):
        c0, w0 = cpu_seconds(), time.perf_counter()
        items, ctx = epoch_examples(hist, args.history_length, n_items, rng)
        data = (
            tf.data.Dataset.from_tensor_slices({"item": items, "hist": ctx, "prob": prob[items]})
            .shuffle(len(items), seed=args.seed + epoch)
            .batch(args.batch)
            .prefetch(2)
        )
        loss = model.fit(data, epochs=1, verbose=0).history["loss"][-1]
        epochs.append({
            "epoch": epoch + 1,
            "loss": float(loss),
            "cpu_seconds": round(cpu_seconds() - c0, 2),
            "wall_seconds": round(time.perf_counter() - w0, 2),
            "examples": int(len(items)),
        })
        print(json.dumps(epochs[-1]), file=sys.stderr, flush=True)
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    # Held-out users, encoded from (up to L of) their known items, scored against every item.
    targets = sorted({uidx.pos[u] for u in (l.split("\t", 1)[0] for l in open(args.split_dir / f"{args.part}.tsv")) if u in uidx.pos})
    items_v = model.items(tf.range(n_items)).numpy()
    k = min(args.k, n_items)
    with open(args.out, "w") as out:
        for start in range(0, len(targets), 1024):
            batch = targets[start:start + 1024]
            h = np.full((len(batch), args.history_length), n_items, dtype=np.int32)
            for r, u in enumerate(batch):
                a = known[u][: args.history_length]
                h[r, : len(a)] = a
            scores = model.user(tf.constant(h)).numpy() @ items_v.T
            for r, u in enumerate(batch):
                scores[r, known[u]] = -np.inf
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            ranked = np.take_along_axis(top, order, axis=1)
            for r, u in enumerate(batch):
                row = [iidx.ids[i] for i in ranked[r] if np.isfinite(scores[r, i])]
                out.write(json.dumps({"user": uidx.ids[u], "items": row}) + "\n")

    print(json.dumps({
        "model": "tfrs-two-tower",
        "tensorflow": tf.__version__,
        "tfrs": tfrs.__version__,
        "dim": args.dim,
        "history_length": args.history_length,
        "batch": args.batch,
        "learning_rate": args.learning_rate,
        "temperature": args.temperature,
        "threads": args.threads,
        "epochs": epochs,
        "peak_rss_kib": peak_rss_kib,
        "users": n_users,
        "items": n_items,
        "predicted_users": len(targets),
    }))


if __name__ == "__main__":
    sys.exit(main())
