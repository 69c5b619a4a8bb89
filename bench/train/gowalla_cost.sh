#!/usr/bin/env bash
# Wall time, CPU and peak RSS of training every Gowalla queue, one after another, in one run.
#
#   bench/train/gowalla_cost.sh KAN [OUT_DIR]
#
# Each queue trains on the whole training part of the LightGCN split (`provided:0`) with the
# settings chosen on validation (BENCHMARKS.md, issue 21): item-CF α 0.8 β 0.2; spectral rank
# 1024, ideal rank 512, α 0.3; dssm d 128, learning rate 0.0025, history dropout 0.3, 15 epochs;
# gat d 64, history dropout 0.3, 4 epochs. `--threads 2` (both cores). Prints one line per queue
# and the total, and appends them to bench/train/results/gowalla_cost.txt.
set -euo pipefail
KAN=${1:?kan binary}
WORK=${2:-$(mktemp -d)}
DATA=${DATA:-$(dirname "$0")/../../../shared/data/gowalla}
RESULTS=$(dirname "$0")/results
mkdir -p "$WORK" "$RESULTS"
common=(--quiet --data "$DATA" --format lightgcn --split provided:0 --threads 2)

queue() { # NAME ARGS... -> "name wall_s cpu_s rss_mb"
  local name=$1; shift
  /usr/bin/time -f 'TIME %e %U %S %M' -o "$WORK/$name.time" \
    "$KAN" train "${common[@]}" --out "$WORK/$name" "$@" > "$WORK/$name.log" 2>&1
  awk -v n="$name" '/^TIME/ {printf "%-9s %8.1f %8.1f %8.0f\n", n, $2, $3 + $4, $5 / 1024}' "$WORK/$name.time"
}

{
  echo "# $(date -u +%FT%TZ) $(uname -n), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg); kan=$KAN"
  printf '%-9s %8s %8s %8s\n' queue wall_s cpu_s rss_mb
  start=$(date +%s.%N)
  queue itemcf --strategy itemcf --param alpha=0.8 --param beta=0.2
  queue spectral --strategy spectral --history-length 1000 --param rank=1024 \
    --param ideal_rank=512 --param alpha=0.3
  queue dssm --strategy dssm --epochs 15 --dim 128 --param learning_rate=0.0025 \
    --param history_dropout=0.3
  queue gat --strategy gat --epochs 4 --param history_dropout=0.3
  awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "# all queues: %.1f s wall (%.1f min)\n", e - s, (e - s) / 60}'
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$RESULTS/gowalla_cost.txt"
