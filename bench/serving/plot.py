#!/usr/bin/env python3
"""Scaling plots of BENCHMARKS.md from bench/serving/results/*.jsonl (worker.sh, gateway.sh):
  worker_scaling.png   dssm worker latency (HNSW and exact scan, p50/p99) vs catalogue size
  gateway_scaling.png  gateway latency and overhead vs queues and vs candidates per queue
The last line per point wins, so a rerun replaces earlier figures.

  ~/.cache/kan-tools/bench-venv/bin/python bench/serving/plot.py
"""
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).parent
RESULTS = HERE / "results"


def lines(name):
    path = RESULTS / name
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def worker_plot():
    runs = {}
    for r in lines("worker.jsonl"):
        if r["strategy"] == "dssm" and r.get("exact"):
            runs[r["items"]] = r
    if not runs:
        return
    sizes = sorted(runs)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(sizes, [runs[n]["closed"]["p50_ms"] for n in sizes], "o-", label="HNSW p50")
    ax.plot(sizes, [runs[n]["closed"]["p99_ms"] for n in sizes], "o--", label="HNSW p99")
    ax.plot(sizes, [runs[n]["exact"]["closed"]["p50_ms"] for n in sizes], "s-", label="exact scan p50")
    ax.plot(sizes, [runs[n]["exact"]["closed"]["p99_ms"] for n in sizes], "s--", label="exact scan p99")
    if all(runs[n].get("inference_mean_ms") for n in sizes):
        ax.plot(sizes, [runs[n]["inference_mean_ms"] for n in sizes], "^:", label="ort encoder (mean)")
    for n in sizes:
        ax.annotate(f"R@100 {runs[n]['exact']['recall_at_k']:.3f}", (n, runs[n]["closed"]["p99_ms"]),
                    textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items, 64-d)")
    ax.set_ylabel("latency per request (ms)")
    ax.set_title("kan worker, dssm, k=100, closed loop (2 clients), in-process")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "worker_scaling.png", dpi=120)


def gateway_plot():
    points = {}
    for r in lines("gateway.jsonl"):
        points[(r["sweep"], r["queues"], r["candidates"])] = r
    if not points:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, sweep, key, label in [
        (axes[0], "queues", "queues", "queues (300 candidates each)"),
        (axes[1], "candidates", "candidates", "candidates per queue (5 queues)"),
    ]:
        pts = sorted((v[key], v) for (s, _, _), v in points.items() if s == sweep)
        if not pts:
            continue
        xs = [x for x, _ in pts]
        for field, style, name in [
            ("latency_p50_ms", "o-", "client latency p50"),
            ("latency_p99_ms", "o--", "client latency p99"),
            ("overhead_p50_ms", "s-", "overhead p50 (− slowest queue)"),
            ("internal_overhead_p50_ms", "^-", "gateway-internal overhead p50"),
        ]:
            ax.plot(xs, [v[field] for _, v in pts], style, label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("ms")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("kan gateway, rrf merge, k=500, 1 client, fake queues answering at once")
    fig.tight_layout()
    fig.savefig(HERE / "gateway_scaling.png", dpi=120)


if __name__ == "__main__":
    worker_plot()
    gateway_plot()
