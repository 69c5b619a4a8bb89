"""Quality and training cost of Kan's queues vs implicit's ALS and BPR, scored by `kan eval`.

Stages, per dataset (see bench/README.md):
  split  `kan eval --dump-split` writes the exact split Kan's bundles train on (and a tuning
         split whose validation part is carved from the training data);
  tune   each ALS/BPR candidate of the grid trains on the tuning split's train part and is
         scored on its validation part with `kan eval --validation --predictions` (never test);
  final  the winners train on the final split with several seeds, under /usr/bin/time -v;
  ours   Kan's cheap trainers run the same number of times under /usr/bin/time -v (same threads);
  eval   one `kan eval` scores Kan's bundles and every implicit run on the test part;
  report medians, spread and cost ratios → summary.md and summary.json.

Run with the bench venv's python from the repository root, e.g.
  ~/.cache/kan-tools/bench-venv/bin/python bench/quality/run.py --datasets ml100k,gowalla
"""

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SPLIT_SEED = 42  # `kan train`'s default seed: the split our bundles were trained on

DATASETS = {
    "gowalla": {
        "data": "../shared/data/gowalla",
        "format": "lightgcn",
        "split": "provided:0",  # the LightGCN split, all of train.txt trains
        "tune_split": "provided:0.1",  # 10% of each user's train.txt rows validate
        "ks": [20],
    },
    "ml100k": {
        "data": "data/ml-100k",
        "format": "ml100k",
        "split": "random:0.8:0.1",  # 8:1:1 has its own validation part
        "tune_split": "random:0.8:0.1",
        "ks": [10, 20],
    },
}

# factors fixed at 64 (Kan's --dim). Values around implicit's defaults (ALS reg 0.01, alpha 1,
# 15 iterations; BPR lr 0.01, reg 0.01, 100 iterations) and the ranges its docs/examples use.
FULL_GRIDS = {
    "als": [
        {"regularization": r, "alpha": a, "iterations": 15}
        for r, a in itertools.product([0.01, 0.1, 1.0], [1.0, 10.0, 40.0])
    ],
    "bpr": [
        {"learning_rate": lr, "regularization": r, "iterations": it}
        for lr, r, it in itertools.product([0.01, 0.05, 0.1], [0.001, 0.01], [100, 300])
    ],
}
# Gowalla is 10x the data and the machine has 2 shared cores: a smaller grid (a BPR epoch takes
# ~1.5 s there, prediction for 30k users ~30 s).
SMALL_GRIDS = {
    "als": [
        {"regularization": r, "alpha": a, "iterations": 15}
        for r, a in itertools.product([0.01, 0.1], [1.0, 10.0, 40.0])
    ],
    "bpr": [
        {"learning_rate": lr, "regularization": 0.01, "iterations": 100} for lr in [0.05, 0.1]
    ],
}
DATASETS["ml100k"].update(grids=FULL_GRIDS, ours="popular,itemcf,item2vec,social")
DATASETS["gowalla"].update(grids=SMALL_GRIDS, ours="popular,itemcf")
MODELS = ["als", "bpr"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    log(" ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def timed(cmd, time_file, env=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout, wall seconds, peak RSS KiB)."""
    with open(time_file, "w") as err:
        out = subprocess.run(["/usr/bin/time", "-v"] + [str(c) for c in cmd], check=True,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    text = Path(time_file).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return out.stdout, secs, rss


def peer_env(threads):
    # implicit_topk.py caps BLAS at one thread while fitting (as implicit's docs ask: it
    # parallelises itself) and lets it use `threads` for the scoring product.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    return env


def dump_split(kan, cfg, split, out):
    meta = out / "split.json"
    if meta.exists() and json.loads(meta.read_text())["split"] == split:
        return
    sh([kan, "eval", "--quiet", "--data", cfg["data"], "--format", cfg["format"], "--split", split,
        "--seed", SPLIT_SEED, "--dump-split", out])


def implicit_cmd(args, split_dir, part, model, params, seed, k, out):
    cmd = [sys.executable, HERE / "implicit_topk.py", "--split-dir", split_dir, "--part", part,
           "--model", model, "--factors", 64, "--seed", seed, "--threads", args.threads,
           "--k", k, "--out", out]
    for key, v in params.items():
        cmd += ["--" + key.replace("_", "-"), v]
    return cmd


def kan_eval(kan, cfg, split, args_extra, out_dir):
    cmd = [kan, "eval", "--quiet", "--threads", ARGS.threads, "--data", cfg["data"],
           "--format", cfg["format"], "--split", split, "--seed", SPLIT_SEED, "--merge", "",
           "--out", out_dir] + args_extra
    sh(cmd, stdout=subprocess.DEVNULL)
    return json.loads((ROOT / out_dir / "report.json").read_text())


def tune(kan, name, cfg, work):
    split_dir = work / "split-tune"
    dump_split(kan, cfg, cfg["tune_split"], split_dir)
    best = {}
    for model, grid in cfg["grids"].items():
        results_file = work / "tune" / f"{model}.json"
        if results_file.exists():
            best[model] = json.loads(results_file.read_text())["best"]
            log(f"{name} {model}: tuned before: {best[model]}")
            continue
        (work / "tune").mkdir(parents=True, exist_ok=True)
        preds = []
        for n, params in enumerate(grid):
            out = work / "tune" / f"{model}-{n}.jsonl"
            # Only @20 decides, so 50 items per list are plenty here.
            sh(implicit_cmd(ARGS, split_dir, "valid", model, params, 1, 50, out),
               env=peer_env(ARGS.threads), stdout=subprocess.DEVNULL)
            preds += ["--predictions", f"{model}-{n}={out}"]
        report = kan_eval(kan, cfg, cfg["tune_split"], ["--validation"] + preds,
                          work / "tune" / f"eval-{model}")
        rows = {r["name"]: r["metrics"] for r in report["rows"]}
        scored = [
            {"params": p, "valid_recall@20": rows[f"{model}-{n}"]["recall@20"],
             "valid_ndcg@20": rows[f"{model}-{n}"]["ndcg@20"]}
            for n, p in enumerate(grid)
        ]
        winner = max(scored, key=lambda s: s["valid_recall@20"])  # first of ties
        best[model] = winner["params"]
        results_file.write_text(json.dumps({"grid": scored, "best": winner["params"]}, indent=1))
        for f in (work / "tune").glob(f"{model}-*.jsonl"):
            f.unlink()
        log(f"{name} {model}: best {winner}")
    return best


def final(kan, name, cfg, work, best):
    split_dir = work / "split-final"
    dump_split(kan, cfg, cfg["split"], split_dir)
    runs = []
    (work / "final").mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        for seed in ARGS.seeds:
            out = work / "final" / f"{model}-s{seed}.jsonl"
            stdout, wall, rss = timed(
                implicit_cmd(ARGS, split_dir, "test", model, best[model], seed, 300, out),
                work / "final" / f"{model}-s{seed}.time", env=peer_env(ARGS.threads))
            info = json.loads(stdout.strip().splitlines()[-1])
            info.update(process_wall_seconds=wall, process_peak_rss_kib=rss,
                        name=f"implicit-{model}-s{seed}", file=str(out))
            runs.append(info)
            log(f"{name} {model} seed {seed}: fit {info['fit_seconds']} s, rss {rss} KiB")
    return runs


def ours(kan, name, cfg, work):
    runs = []
    for strategy in [s for s in (ARGS.ours or cfg["ours"]).split(",") if s]:
        for r in range(1, ARGS.runs + 1):
            out = work / "ours" / f"{strategy}-r{r}"
            out.parent.mkdir(parents=True, exist_ok=True)
            _, wall, rss = timed(
                [kan, "train", "--quiet", "--strategy", strategy, "--data", cfg["data"],
                 "--format", cfg["format"], "--split", cfg["split"], "--seed", SPLIT_SEED,
                 "--threads", ARGS.threads, "--out", out],
                work / "ours" / f"{strategy}-r{r}.time")
            manifest = json.loads((ROOT / out / "manifest.json").read_text())
            runs.append({"strategy": strategy, "run": r, "bundle": str(out),
                         "fit_seconds": manifest["params"].get("train_seconds"),
                         "process_wall_seconds": wall, "process_peak_rss_kib": rss})
            log(f"{name} ours {strategy} run {r}: wall {wall} s, rss {rss} KiB")
    return runs


def bundles_to_score(name, work, our_runs):
    """Per strategy, the first of: the tuned bundle in out/benchmarks/<dataset>/<strategy>, the
    bundle of our first cost run, a bundle in a --bundles-from directory."""
    found = {}

    def scan(where):
        if where.is_dir():
            for d in sorted(where.iterdir()):
                if (d / "manifest.json").exists() and d.name not in ("tune", "eval"):
                    found.setdefault(d.name, str(d.relative_to(ROOT)))

    scan(ROOT / "out" / "benchmarks" / name)
    for r in our_runs:
        found.setdefault(r["strategy"], os.path.relpath(r["bundle"], ROOT))
    for d in ARGS.bundles_from:
        scan(ROOT / d)
    return found


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return (min(xs), max(xs)) if xs else (float("nan"), float("nan"))


def report(name, cfg, work, peer_runs, our_runs, report_json):
    rows = {r["name"]: r for r in report_json["rows"]}
    lines = []
    ks = cfg["ks"]
    metric_cols = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    head = "| model | " + " | ".join(
        c.replace("recall", "R").replace("ndcg", "N") for c in metric_cols
    ) + " | fit s (median) | fit ratio ours/ALS | fit ratio ours/BPR | peak RSS MiB | RSS ratio ours/ALS | RSS ratio ours/BPR |"
    lines += [head, "|" + " --- |" * (1 + len(metric_cols) + 6)]
    summary = {"dataset": name, "split": cfg["split"], "models": {}}

    def cost(runs, fit_key, rss_key):
        return med([r[fit_key] for r in runs if r[fit_key] is not None]), med([r[rss_key] for r in runs]) / 1024

    peer_cost = {}
    for model in MODELS:
        mine = [r for r in peer_runs if r["model"] == model]
        peer_cost[model] = cost(mine, "fit_seconds", "peak_rss_after_fit_kib")
    entries = []
    for strategy in sorted({r["strategy"] for r in our_runs} | set(bundles_to_score(name, work, our_runs))):
        runs = [r for r in our_runs if r["strategy"] == strategy]
        metrics = rows.get(strategy, {}).get("metrics")
        if metrics is None:
            continue
        label = f"kan {strategy}"
        if runs:
            fit, rss = cost(runs, "fit_seconds", "process_peak_rss_kib")
        else:
            # Not rerun here: the bundle's own record of its training time (one run, other load).
            bundle = ROOT / bundles_to_score(name, work, our_runs)[strategy] / "manifest.json"
            fit = json.loads(bundle.read_text())["params"].get("train_seconds", float("nan"))
            rss = float("nan")
            label += " †"
        entries.append((label, {c: (metrics[c], None) for c in metric_cols}, fit, rss, runs))
    for model in MODELS:
        mine = [r for r in peer_runs if r["model"] == model]
        vals = {c: [rows[r["name"]]["metrics"][c] for r in mine] for c in metric_cols}
        fit, rss = peer_cost[model]
        entries.append((f"implicit {model.upper()}", {c: (med(v), spread(v)) for c, v in vals.items()},
                        fit, rss, mine))
    for label, metrics, fit, rss, runs in entries:
        cells = []
        for c in metric_cols:
            v, sp = metrics[c]
            cells.append(f"{v:.4f}" if sp is None else f"{v:.4f} ({sp[0]:.4f}–{sp[1]:.4f})")
        is_ours = label.startswith("kan")
        ratio = lambda x, y: f"{x / y:.2f}" if is_ours and y and x == x else "—"
        fit_cell = f"{fit:.2f}"
        rss_cell = f"{rss:.0f}" if runs else "—"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {fit_cell} | "
                     f"{ratio(fit, peer_cost['als'][0])} | {ratio(fit, peer_cost['bpr'][0])} | {rss_cell} | "
                     f"{ratio(rss, peer_cost['als'][1])} | {ratio(rss, peer_cost['bpr'][1])} |")
        summary["models"][label] = {
            "metrics": {c: metrics[c][0] for c in metric_cols},
            "spread": {c: metrics[c][1] for c in metric_cols if metrics[c][1] is not None},
            "fit_seconds_median": fit, "peak_rss_mib_median": rss, "runs": runs,
        }
    scored = bundles_to_score(name, work, our_runs)
    process = ["", "† not rerun here: fit seconds as the bundle's manifest records them (one run, "
               "taken at another time and load); no RSS figure.", "",
               "Bundles scored: " + ", ".join(f"`{s}` = `{d}`" for s, d in sorted(scored.items())),
               "", "Whole-process cost under /usr/bin/time -v (median of runs): wall s / peak RSS MiB",
               ""]
    for label, _, _, _, runs in entries:
        if runs:
            process.append(f"* {label}: {med([r['process_wall_seconds'] for r in runs]):.2f} s / "
                           f"{med([r['process_peak_rss_kib'] for r in runs]) / 1024:.0f} MiB "
                           f"({len(runs)} runs)")
    tuned = {m: json.loads((work / "tune" / f"{m}.json").read_text()) for m in MODELS}
    grid_lines = ["", "Tuned on the validation part (R@20), chosen values:", ""]
    for m, t in tuned.items():
        grid_lines.append(f"* {m.upper()}: {t['best']} (grid of {len(t['grid'])}: best valid R@20 "
                          f"{max(g['valid_recall@20'] for g in t['grid']):.4f}, worst "
                          f"{min(g['valid_recall@20'] for g in t['grid']):.4f})")
    summary["tuned"] = tuned
    summary["users"] = report_json["users"]
    summary["warnings"] = report_json["warnings"]
    text = "\n".join(
        [f"### {name}: split {cfg['split']} (seed {SPLIT_SEED}), {report_json['users']} test users, "
         f"{report_json['items']} items", ""] + lines + process + grid_lines) + "\n"
    (work / "summary.md").write_text(text)
    (work / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.md").write_text(text)
    print(text)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="ml100k,gowalla")
    ap.add_argument("--kan", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "kan"))
    ap.add_argument("--out", default="out/benchmarks/peers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="1,2,3", help="implicit random_state per final run")
    ap.add_argument("--runs", type=int, default=3, help="runs of each of our trainers")
    ap.add_argument("--bundles-from", action="append", default=[],
                    help="more directories of Kan bundles (<dir>/<strategy>) to score for strategies "
                         "neither out/benchmarks/<dataset> nor the cost runs have")
    ap.add_argument("--rescore", action="store_true",
                    help="reuse the timed runs of a previous run; only rerun kan eval and the report")
    ap.add_argument("--ours", help="our trainers to rerun for cost (default: the cheap ones per dataset)")
    ARGS = ap.parse_args()
    ARGS.seeds = [int(s) for s in ARGS.seeds.split(",")]
    kan = Path(ARGS.kan).resolve()
    if not kan.exists():
        sys.exit(f"{kan} not found: build it with `cargo build --release -p kan` or pass --kan")
    for name in ARGS.datasets.split(","):
        cfg = DATASETS[name]
        if not (ROOT / cfg["data"]).is_dir():
            log(f"skipping {name}: {cfg['data']} is missing")
            continue
        work = Path(ARGS.out) / name
        (ROOT / work).mkdir(parents=True, exist_ok=True)
        work = ROOT / work
        runs_file = work / "runs.json"
        if ARGS.rescore and runs_file.exists():
            # Only rescore (e.g. once the tuned bundles exist): keep the timed runs.
            runs = json.loads(runs_file.read_text())
            peer_runs, our_runs = runs["implicit"], runs["kan"]
        else:
            best = tune(kan, name, cfg, work)
            peer_runs = final(kan, name, cfg, work, best)
            our_runs = ours(kan, name, cfg, work)
            runs_file.write_text(json.dumps({"implicit": peer_runs, "kan": our_runs}, indent=1))
        extra = []
        for strategy, bundle in bundles_to_score(name, work, our_runs).items():
            extra += ["--bundle", f"{strategy}={bundle}"]
        for r in peer_runs:
            extra += ["--predictions", f"{r['name']}={r['file']}"]
        rep = kan_eval(kan, cfg, cfg["split"], extra, work / "eval")
        report(name, cfg, work, peer_runs, our_runs, rep)


if __name__ == "__main__":
    main()
