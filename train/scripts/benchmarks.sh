#!/usr/bin/env bash
# Quality and cost benchmarks of the offline pipeline (BENCHMARKS.md, "Training and evaluation").
# Usage: train/scripts/benchmarks.sh [ml100k|gowalla|lastfm]...  (default: all three)
# Needs a release build (`cargo build --release -p kan`), ORT_DYLIB_PATH (source scripts/env.sh),
# ./data/ml-100k (make data) and ../shared/data/{gowalla,lastfm}. Each trainer runs under
# /usr/bin/time -v; wall time and peak RSS are collected in $OUT/<dataset>/costs.tsv.
# Hyper-parameters are chosen on a validation split carved from the training data (never on
# test): `tune` trains each candidate with --split <valid split>, reads the validation recall@20
# the trainer records in the manifest, and the final bundle is trained on the whole training
# part with the winner. The grids and every candidate's score land in $OUT/<dataset>/tune-*.tsv.
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

# tune dataset strategy data format valid-split "KEY=V KEY=V" ... → prints the best candidate's
# parameters as --param flags (recall@20 on validation; ties keep the earlier candidate).
tune() {
  local ds=$1 s=$2 data=$3 fmt=$4 split=$5; shift 5
  local log="$OUT/$ds/tune-$s.tsv" best="" best_score=-1
  mkdir -p "$OUT/$ds"; printf 'params\tvalid_recall@20\tvalid_ndcg@20\n' > "$log"
  for cand in "$@"; do
    local flags=() dir="$OUT/$ds/tune/$s"
    for kv in $cand; do flags+=(--param "$kv"); done
    "$KAN" train --quiet --strategy "$s" --data "$data" --format "$fmt" --split "$split" \
      --threads "$THREADS" --out "$dir" "${flags[@]}" "${TUNE_FLAGS[@]}" > /dev/null
    local r n
    r=$(jq '.metrics["recall@20"]' "$dir/manifest.json"); n=$(jq '.metrics["ndcg@20"]' "$dir/manifest.json")
    printf '%s\t%s\t%s\n' "$cand" "$r" "$n" >> "$log"
    if awk -v a="$r" -v b="$best_score" 'BEGIN{exit !(a>b)}'; then best=$cand; best_score=$r; fi
  done
  echo "tuned $s on $ds: $best (valid recall@20 $best_score)" >&2
  for kv in $best; do printf -- '--param %s ' "$kv"; done
}

# The RP3β grid: α (walk-probability exponent) and β (popularity penalty) around the values the
# RP3β paper reports as good on sparse data, and the neighbour-list length.
ITEMCF_GRID=()
for a in 0.6 0.8 1.0; do for b in 0.2 0.35 0.5; do ITEMCF_GRID+=("alpha=$a beta=$b top_n=200"); done; done
TUNE_FLAGS=()

evaluate() { # dataset data format queues...
  local ds=$1 data=$2 fmt=$3; shift 3
  local args=()
  for q in "$@"; do args+=(--bundle "$q=$OUT/$ds/$q"); done
  "$KAN" eval --quiet --threads "$THREADS" --data "$data" --format "$fmt" "${args[@]}" --out "$OUT/$ds/eval" | tee "$OUT/$ds/eval.md"
}

run_ml100k() {
  mkdir -p "$OUT/ml100k"; : > "$OUT/ml100k/costs.tsv"
  # 8:1:1 already has a validation part: tune on it, evaluate on test.
  local itemcf
  itemcf=$(tune ml100k itemcf data/ml-100k ml100k random:0.8:0.1 "${ITEMCF_GRID[@]}")
  for s in popular item2vec social exploratory dssm gat; do
    train ml100k "$s" data/ml-100k ml100k random:0.8:0.1
  done
  # shellcheck disable=SC2086
  train ml100k itemcf data/ml-100k ml100k random:0.8:0.1 $itemcf
  evaluate ml100k data/ml-100k ml100k popular itemcf item2vec social exploratory dssm gat
}

run_gowalla() {
  mkdir -p "$OUT/gowalla"; : > "$OUT/gowalla/costs.tsv"
  local itemcf
  itemcf=$(tune gowalla itemcf "$SHARED/gowalla" lightgcn provided:0.1 "${ITEMCF_GRID[@]}")
  # shellcheck disable=SC2086
  train gowalla itemcf "$SHARED/gowalla" lightgcn provided:0 $itemcf
  for s in popular item2vec social; do
    train gowalla "$s" "$SHARED/gowalla" lightgcn provided:0
  done
  # Gowalla is 10x ML-100K: the neural towers get fewer epochs to fit this machine (2 cores).
  train gowalla dssm "$SHARED/gowalla" lightgcn provided:0 --epochs "${GOWALLA_DSSM_EPOCHS:-3}"
  train gowalla gat "$SHARED/gowalla" lightgcn provided:0 --epochs "${GOWALLA_GAT_EPOCHS:-1}"
  evaluate gowalla "$SHARED/gowalla" lightgcn popular itemcf item2vec social dssm gat
}

run_lastfm() {
  mkdir -p "$OUT/lastfm"; : > "$OUT/lastfm/costs.tsv"
  local itemcf
  itemcf=$(tune lastfm itemcf "$SHARED/lastfm" lastfm provided:0.1 "${ITEMCF_GRID[@]}")
  # shellcheck disable=SC2086
  train lastfm itemcf "$SHARED/lastfm" lastfm provided:0 $itemcf
  for s in popular item2vec social exploratory dssm gat; do
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
