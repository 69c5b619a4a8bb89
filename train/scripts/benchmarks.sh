#!/usr/bin/env bash
# Quality and cost benchmarks of the offline pipeline (BENCHMARKS.md, "Training and evaluation").
# Usage: train/scripts/benchmarks.sh [ml100k|gowalla|lastfm]...  (default: all three)
# Needs a release build (`cargo build --release -p kan`), ORT_DYLIB_PATH (source scripts/env.sh),
# ./data/ml-100k (make data) and ../shared/data/{gowalla,lastfm}. Each trainer runs under
# /usr/bin/time -v; wall time and peak RSS are collected in $OUT/<dataset>/costs.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
KAN=${KAN:-$CARGO_TARGET_DIR/release/kan}
OUT=${OUT:-out/benchmarks}
THREADS=${THREADS:-2}
SHARED=${SHARED:-../shared/data}

train() { # dataset strategy data format split [extra flags...]
  local ds=$1 s=$2 data=$3 fmt=$4 split=$5; shift 5
  mkdir -p "$OUT/$ds"
  /usr/bin/time -v "$KAN" train --quiet --strategy "$s" --data "$data" --format "$fmt" --split "$split" \
    --threads "$THREADS" --out "$OUT/$ds/$s" "$@" 2> "$OUT/$ds/$s.time" | tee "$OUT/$ds/$s.log"
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$OUT/$ds/$s.time" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$OUT/$ds/$s.time" | awk '{print $NF}')
  printf '%s\t%s\t%s\n' "$s" "$wall" "$rss" >> "$OUT/$ds/costs.tsv"
}

evaluate() { # dataset data format queues...
  local ds=$1 data=$2 fmt=$3; shift 3
  local args=()
  for q in "$@"; do args+=(--bundle "$q=$OUT/$ds/$q"); done
  "$KAN" eval --quiet --threads "$THREADS" --data "$data" --format "$fmt" "${args[@]}" --out "$OUT/$ds/eval" | tee "$OUT/$ds/eval.md"
}

run_ml100k() {
  mkdir -p "$OUT/ml100k"; : > "$OUT/ml100k/costs.tsv"
  for s in popular itemcf item2vec social exploratory dssm gat; do
    train ml100k "$s" data/ml-100k ml100k random:0.8:0.1
  done
  evaluate ml100k data/ml-100k ml100k popular itemcf item2vec social exploratory dssm gat
}

run_gowalla() {
  mkdir -p "$OUT/gowalla"; : > "$OUT/gowalla/costs.tsv"
  for s in popular itemcf item2vec social dssm gat; do
    train gowalla "$s" "$SHARED/gowalla" lightgcn provided:0
  done
  evaluate gowalla "$SHARED/gowalla" lightgcn popular itemcf item2vec social dssm gat
}

run_lastfm() {
  mkdir -p "$OUT/lastfm"; : > "$OUT/lastfm/costs.tsv"
  for s in popular itemcf item2vec social exploratory dssm gat; do
    train lastfm "$s" "$SHARED/lastfm" lastfm provided:0
  done
  evaluate lastfm "$SHARED/lastfm" lastfm popular itemcf item2vec exploratory dssm gat
  mv "$OUT/lastfm/eval" "$OUT/lastfm/eval-without-social"; mv "$OUT/lastfm/eval.md" "$OUT/lastfm/eval-without-social.md"
  evaluate lastfm "$SHARED/lastfm" lastfm popular itemcf item2vec social exploratory dssm gat
}

mkdir -p "$OUT"
for d in "${@:-ml100k gowalla lastfm}"; do
  for x in $d; do "run_$x"; done
done
