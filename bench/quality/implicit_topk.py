"""Trains implicit's CPU ALS or BPR on a split written by `kan eval --dump-split` and writes the
top-K of every held-out user as `kan eval --predictions` JSON lines (dataset ids, best first,
the user's known items filtered out the way Kan's queues exclude them).

Prints one JSON line with the timings and the peak RSS at the end of training, so a caller can
compare training cost without the prediction step; run it under /usr/bin/time -v for the whole
process.
"""

import argparse
import json
import resource
import sys
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


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


def load(path, uidx, iidx, grow):
    """Binary user × item CSR of a `user<TAB>item` file. Ids become integers while reading
    (only the id maps hold strings), so the loader's memory stays small next to the model's.
    With grow=False, pairs outside the indices are skipped."""
    rows, cols = array("i"), array("i")
    with open(path) as f:
        for line in f:
            u, i = line.rstrip("\n").split("\t")
            if grow:
                rows.append(uidx.add(u))
                cols.append(iidx.add(i))
            elif u in uidx.pos and i in iidx.pos:
                rows.append(uidx.pos[u])
                cols.append(iidx.pos[i])
    rows, cols = np.frombuffer(rows, dtype=np.int32), np.frombuffer(cols, dtype=np.int32)
    m = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(uidx.ids), len(iidx.ids)),
    )
    m.sum_duplicates()
    m.data[:] = 1.0  # a repeated interaction counts once, as in Kan's histories
    return m


def held_out_users(path, uidx):
    with open(path) as f:
        return sorted({uidx.pos[u] for u in (line.split("\t", 1)[0] for line in f) if u in uidx.pos})


def top_k(scores, k, threads):
    """Unordered top-k column indices per row; numpy's partition releases the GIL, so row
    chunks run on `threads` threads."""
    def part(rows):
        return np.argpartition(scores[rows], scores.shape[1] - k, axis=1)[:, -k:]

    chunks = np.array_split(np.arange(scores.shape[0]), threads)
    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate(list(pool.map(part, chunks)))


def model_for(args):
    if args.model == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=args.factors,
            regularization=args.regularization,
            alpha=args.alpha,
            iterations=args.iterations,
            random_state=args.seed,
            num_threads=args.threads,
        )
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking(
        factors=args.factors,
        learning_rate=args.learning_rate,
        regularization=args.regularization,
        iterations=args.iterations,
        random_state=args.seed,
        num_threads=args.threads,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split-dir", type=Path, required=True)
    ap.add_argument("--part", choices=["valid", "test"], required=True,
                    help="held-out part to predict; valid: known = train, test: known = train + valid")
    ap.add_argument("--model", choices=["als", "bpr"], required=True)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--regularization", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0, help="ALS confidence scale")
    ap.add_argument("--learning-rate", type=float, default=0.01, help="BPR")
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=300)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    t0 = time.perf_counter()
    uidx, iidx = Index(), Index()
    train = load(args.split_dir / "train.tsv", uidx, iidx, grow=True)
    known = train
    if args.part == "test":
        known = train + load(args.split_dir / "valid.tsv", uidx, iidx, grow=False)
        known.data[:] = 1.0
    # Held-out users the model knows (every user keeps a training interaction in Kan's splits).
    targets = held_out_users(args.split_dir / f"{args.part}.tsv", uidx)
    t1 = time.perf_counter()

    with threadpool_limits(limits=1, user_api="blas"):
        model = model_for(args)
        model.fit(train, show_progress=False)
    t2 = time.perf_counter()
    rss_train_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    userids = np.array(targets, dtype=np.int32)
    # Scoring as implicit's recommend() does it (a dot product; BPR's factors carry the item
    # bias), written out so the batch is one BLAS product with the same threads.
    uf, itf = np.asarray(model.user_factors), np.asarray(model.item_factors)
    k = min(args.k, len(iidx.ids))
    item_ids = np.array(iidx.ids, dtype=object)
    with threadpool_limits(limits=args.threads, user_api="blas"), open(args.out, "w") as out:
        for start in range(0, len(userids), 1024):
            batch = userids[start:start + 1024]
            scores = uf[batch] @ itf.T
            rows = known[batch].tocoo()
            scores[rows.row, rows.col] = -np.inf
            top = top_k(scores, k, args.threads)
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            ranked = np.take_along_axis(top, order, axis=1)
            finite = np.isfinite(np.take_along_axis(scores, ranked, axis=1))
            for u, row, ok in zip(batch.tolist(), ranked, finite):
                items = item_ids[row[ok]].tolist()
                out.write(json.dumps({"user": uidx.ids[u], "items": items}) + "\n")
    t3 = time.perf_counter()

    print(json.dumps({
        "model": args.model,
        "seed": args.seed,
        "load_seconds": round(t1 - t0, 3),
        "fit_seconds": round(t2 - t1, 3),
        "predict_seconds": round(t3 - t2, 3),
        "peak_rss_after_fit_kib": rss_train_kib,
        "users": len(uidx.ids),
        "items": len(iidx.ids),
        "train_interactions": int(train.nnz),
        "predicted_users": len(targets),
    }))


if __name__ == "__main__":
    sys.exit(main())
