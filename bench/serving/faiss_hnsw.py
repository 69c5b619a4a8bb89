#!/usr/bin/env python3
"""FAISS on the files `kan bench ann --out DIR` wrote: the same base vectors, the same queries and
the same exact ground truth (gt.npy, computed once by kan), so the two runs compare like for like.

Engines: IndexHNSWFlat (inner product on unit vectors = cosine; same M / efConstruction /
efSearch as kan's run) and IndexFlatIP (exact brute force). Latency: one query per call on one
OpenMP thread (includes ~µs of Python call overhead). Throughput: one batched search() call with
1..=threads OpenMP threads (FAISS's own parallel path).

Run with the venv of bench/serving/setup-venv.sh:
  ~/.cache/kan-tools/bench-venv/bin/python bench/serving/faiss_hnsw.py --dir DIR
"""
import argparse
import json
import time

import faiss
import numpy as np


def percentiles_ms(lat):
    lat = np.sort(np.asarray(lat))
    pick = lambda p: float(lat[max(int(np.ceil(len(lat) * p)) - 1, 0)] * 1000.0)
    return pick(0.5), pick(0.99)


def recall(found, gt):
    hits = 0
    wanted = 0
    for f, t in zip(found, gt):
        t = set(int(x) for x in t if x >= 0)
        wanted += len(t)
        hits += len(t.intersection(int(x) for x in f if x >= 0))
    return hits / max(wanted, 1)


def bench(name, index, queries, gt, k, threads, latency_queries, build_s):
    faiss.omp_set_num_threads(1)
    lat = []
    for q in queries[:latency_queries]:
        t = time.perf_counter()
        index.search(q[None, :], k)
        lat.append(time.perf_counter() - t)
    p50, p99 = percentiles_ms(lat)
    throughput = []
    found = None
    for n in range(1, threads + 1):
        faiss.omp_set_num_threads(n)
        t = time.perf_counter()
        _, found = index.search(queries, k)
        throughput.append({"threads": n, "qps": len(queries) / (time.perf_counter() - t)})
    return {
        "engine": name,
        "build_s": build_s,
        "recall_at_k": recall(found, gt),
        "p50_ms": p50,
        "p99_ms": p99,
        "throughput": throughput,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="the --out folder of kan bench ann")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exact-latency-queries", type=int, default=200)
    args = ap.parse_args()

    kan = json.load(open(f"{args.dir}/kan.json"))
    base = np.load(f"{args.dir}/base.npy")
    queries = np.load(f"{args.dir}/queries.npy")
    gt = np.load(f"{args.dir}/gt.npy")
    k = gt.shape[1]
    d = base.shape[1]

    engines = []
    faiss.omp_set_num_threads(args.threads)
    hnsw = faiss.IndexHNSWFlat(d, kan["m"], faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = kan["ef_construction"]
    t = time.perf_counter()
    hnsw.add(base)
    build_s = time.perf_counter() - t
    # kan raises ef to k when smaller; do the same.
    hnsw.hnsw.efSearch = max(kan["ef_search"], k)
    engines.append(bench("faiss IndexHNSWFlat", hnsw, queries, gt, k, args.threads, len(queries), build_s))
    # The same search widths kan swept (`kan bench ann --ef-sweep`), on one thread.
    ef_sweep = []
    for ef in kan.get("ef_sweep", []):
        hnsw.hnsw.efSearch = max(ef["ef_search"], k)
        point = bench("faiss", hnsw, queries, gt, k, 1, len(queries), build_s)
        ef_sweep.append({key: point[key] for key in ("recall_at_k", "p50_ms", "p99_ms")} | {"ef_search": ef["ef_search"]})
    del hnsw

    flat = faiss.IndexFlatIP(d)
    t = time.perf_counter()
    flat.add(base)
    build_s = time.perf_counter() - t
    engines.append(
        bench("faiss IndexFlatIP (exact)", flat, queries, gt, k, args.threads, args.exact_latency_queries, build_s)
    )

    out = {"faiss_version": faiss.__version__, "engines": engines, "ef_sweep": ef_sweep}
    with open(f"{args.dir}/faiss.json", "w") as f:
        json.dump(out, f, indent=2)
    for e in engines:
        qps = ", ".join(f"{t['threads']} thr {t['qps']:.0f} q/s" for t in e["throughput"])
        print(
            f"  {e['engine']:<26} build {e['build_s']:7.1f} s  recall@{k} {e['recall_at_k']:.4f}  "
            f"p50 {e['p50_ms']:.3f} ms  p99 {e['p99_ms']:.3f} ms  {qps}"
        )
    for p in ef_sweep:
        print(f"  faiss hnsw ef {p['ef_search']:<5} recall@{k} {p['recall_at_k']:.4f}  p50 {p['p50_ms']:.3f} ms  p99 {p['p99_ms']:.3f} ms")


if __name__ == "__main__":
    main()
