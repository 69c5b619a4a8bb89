#!/usr/bin/env bash
# Quality and cost benchmarks of the offline pipeline (BENCHMARKS.md, "Training and evaluation").
# Usage: train/scripts/benchmarks.sh [ml100k|gowalla|lastfm]...  (default: all three)
# Needs a release build (`cargo build --release -p kan`), ORT_DYLIB_PATH (source scripts/env.sh),
# ./data/ml-100k (make data) and ../shared/data/{gowalla,lastfm}. Each trainer runs under
# /usr/bin/time -v; wall time, CPU seconds and peak RSS (KiB) are collected in
# $OUT/<dataset>/costs.tsv. Needs jq.
# Hyper-parameters are chosen on a validation split carved from the training data (never on
# test): `tune` trains each candidate with --split <valid split>, reads the validation recall@20
# the trainer records in the manifest, and the final bundle is trained on the whole training
# part with the winner. The grids and every candidate's score land in $OUT/<dataset>/tune-*.tsv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
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
  # CPU seconds (user + system) stay comparable when other work shares the machine; wall does not.
  local wall cpu rss
  wall=$(grep "Elapsed (wall clock)" "$OUT/$ds/$s.time" | awk '{print $NF}')
  cpu=$(awk -F': ' '/User time|System time/ {t += $2} END {printf "%.1f", t}' "$OUT/$ds/$s.time")
  rss=$(grep "Maximum resident set size" "$OUT/$ds/$s.time" | awk '{print $NF}')
  printf '%s\t%s\t%s\t%s\n' "$s" "$wall" "$cpu" "$rss" >> "$OUT/$ds/costs.tsv"
}

# tune dataset strategy data format valid-split "KEY=V KEY=V" ... → prints the best candidate
# (recall@20 on validation; ties keep the earlier candidate). Every score is appended to
# $OUT/<dataset>/tune-<strategy>.tsv; a candidate already scored in this run of the script (the
# same params in any order) is not trained again.
tune() {
  local ds=$1 s=$2 data=$3 fmt=$4 split=$5; shift 5
  local log="$OUT/$ds/tune-$s.tsv" best="" best_score=-1
  mkdir -p "$OUT/$ds"
  [[ -f $log ]] || printf 'params\tvalid_recall@20\tvalid_ndcg@20\n' > "$log"
  for cand in "$@"; do
    local dir="$OUT/$ds/tune/$s" r n
    r=$(scored "$ds" "$s" "$split" "$cand")
    if [[ $r == -1 ]]; then
      # shellcheck disable=SC2046,SC2086
      "$KAN" train --quiet --strategy "$s" --data "$data" --format "$fmt" --split "$split" \
        --threads "$THREADS" --out "$dir" $(flags $cand) > /dev/null
      r=$(jq '.metrics["recall@20"]' "$dir/manifest.json"); n=$(jq '.metrics["ndcg@20"]' "$dir/manifest.json")
      printf '%s\t%s\t%s\n' "$cand" "$r" "$n" >> "$log"
      printf '%s\t%s\n' "$(cache_key "$split" "$cand")" "$r" >> "$(cache_file "$ds" "$s")"
    fi
    if awk -v a="$r" -v b="$best_score" 'BEGIN{exit !(a>b)}'; then best=$cand; best_score=$r; fi
  done
  echo "tuned $s on $ds: $best (valid recall@20 $best_score)" >&2
  echo "$best"
}

# This run's scores (the main shell's PID names the file: command substitutions share it).
cache_file() { mkdir -p "$OUT/$1/tune"; echo "$OUT/$1/tune/$2.$$.scores"; }
cache_key() { echo "$1 $(tr ' ' '\n' <<< "$2" | sort | tr '\n' ' ')"; }
# scored dataset strategy split CAND → its validation recall@20 in this run, or -1.
scored() {
  local file key
  file=$(cache_file "$1" "$2"); key=$(cache_key "$3" "$4")
  [[ -f $file ]] || { echo -1; return; }
  awk -F'\t' -v k="$key" '$1 == k {r = $2} END {print (r == "" ? -1 : r)}' "$file"
}

flags() { for kv in "$@"; do printf -- '--param %s ' "$kv"; done; }

# edge_next VALUE STEP MIN V... → the next value to try when VALUE is the lowest or highest of
# the values V tried: one STEP past that edge (`+0.2` adds and subtracts, `x2` multiplies and
# divides), never below MIN; prints nothing and fails when VALUE is inside the grid.
edge_next() {
  local v=$1 step=$2 min=$3; shift 3
  awk -v v="$v" -v step="$step" -v min="$min" 'BEGIN {
    lo = v; hi = v
    for (i = 1; i < ARGC; i++) { if (ARGV[i] + 0 < lo) lo = ARGV[i] + 0; if (ARGV[i] + 0 > hi) hi = ARGV[i] + 0 }
    mult = substr(step, 1, 1) == "x"; s = mult ? substr(step, 2) + 0 : step + 0
    if (v + 0 == hi) next_v = mult ? v * s : v + s
    else if (v + 0 == lo) next_v = mult ? v / s : v - s
    else exit 1
    if (next_v < min - 1e-9) exit 1
    printf "%g\n", next_v; exit 0
  }' "$@"
}

# widen dataset strategy data format valid-split KEY STEP MIN "FIXED" V... → tunes KEY over the
# values V (with the FIXED params), then, while the winner sits on an edge of what was tried,
# tries one value past it (edge_next), at most WIDEN_ROUNDS (4) times. Prints the winning
# candidate ("KEY=V FIXED"); every score lands in $OUT/<dataset>/tune-<strategy>.tsv.
widen() {
  local ds=$1 s=$2 data=$3 fmt=$4 split=$5 key=$6 step=$7 min=$8 fixed=$9; shift 9
  local -a vals=("$@") cands=()
  local v best next
  for v in "${vals[@]}"; do cands+=("$key=$v${fixed:+ $fixed}"); done
  best=$(tune "$ds" "$s" "$data" "$fmt" "$split" "${cands[@]}")
  for _ in $(seq "${WIDEN_ROUNDS:-4}"); do
    v=${best%% *}; v=${v#*=}
    next=$(edge_next "$v" "$step" "$min" "${vals[@]}") || break
    vals+=("$next")
    echo "widening $key on $ds past $v: trying $next" >&2
    best=$(best_of "$ds" "$s" "$split" "$best" "$(tune "$ds" "$s" "$data" "$fmt" "$split" "$key=$next${fixed:+ $fixed}")")
  done
  echo "$best"
}

# best_of dataset strategy split CAND... → the candidate with the best validation recall@20
# scored in this run (ties keep the earlier argument).
best_of() {
  local ds=$1 s=$2 split=$3; shift 3
  local best="" best_score=-1 c r
  for c in "$@"; do
    r=$(scored "$ds" "$s" "$split" "$c")
    if awk -v a="$r" -v b="$best_score" 'BEGIN{exit !(a>b)}'; then best=$c; best_score=$r; fi
  done
  echo "$best"
}

# RP3β in passes: α (walk-probability exponent) × β (popularity penalty; 0 is plain P3α)
# around the values the RP3β paper reports as good on sparse data; then α and β each widened
# past the grid's edge while the winner sits on it (a winner at the lowest α gained on
# validation and test when widened by hand); then the neighbour-list length at the best pair,
# widened ×2 the same way. Prints the winner's --param flags.
tune_itemcf() { # dataset data format valid-split
  local grid=() best a b
  for a in 0.6 0.8 1.0; do for b in 0.0 0.1 0.2 0.35 0.5; do grid+=("alpha=$a beta=$b"); done; done
  best=$(tune "$1" itemcf "$2" "$3" "$4" "${grid[@]}")
  b=${best#* }
  best=$(widen "$1" itemcf "$2" "$3" "$4" alpha +0.2 0.1 "$b" 0.6 0.8 1.0)
  a=${best%% *}
  best=$(widen "$1" itemcf "$2" "$3" "$4" beta +0.15 0 "$a" 0.0 0.1 0.2 0.35 0.5)
  # Reorder as "alpha=… beta=…" for the top-N pass.
  b=${best%% *}
  best=$(widen "$1" itemcf "$2" "$3" "$4" top_n x2 10 "$a $b" 100 200 400)
  # shellcheck disable=SC2086
  flags $best
}

# tune_merge dataset data format valid-split itemcf-flags → prints --weight flags for the best
# RRF merge of itemcf with the cheap queues (social, popular), all trained on the validation
# split and scored on validation (a seeded sample of 3000 users). itemcf's weight is 1; a weight
# of 0 leaves the queue out. The neural queues are not in this search: training them twice
# (validation + final) does not fit this machine's budget, so their merges keep equal weights.
tune_merge() {
  local ds=$1 data=$2 fmt=$3 split=$4; shift 4
  local dir="$OUT/$ds/valid" log="$OUT/$ds/tune-merge.tsv" best="" best_score=-1
  mkdir -p "$dir"; printf 'weights\tvalid_recall@20\n' > "$log"
  # shellcheck disable=SC2068
  "$KAN" train --quiet --strategy itemcf --data "$data" --format "$fmt" --split "$split" --threads "$THREADS" --out "$dir/itemcf" $@ > /dev/null
  for s in social popular; do
    "$KAN" train --quiet --strategy "$s" --data "$data" --format "$fmt" --split "$split" --threads "$THREADS" --out "$dir/$s" > /dev/null
  done
  for ws in 0.5 0.2 0; do for wp in 0.1 0; do
    local args=(--bundle "itemcf=$dir/itemcf") weights=()
    if [[ $ws != 0 ]]; then args+=(--bundle "social=$dir/social"); weights+=(--weight "social=$ws"); fi
    if [[ $wp != 0 ]]; then args+=(--bundle "popular=$dir/popular"); weights+=(--weight "popular=$wp"); fi
    # No extra queue: itemcf alone is the baseline a merge has to beat.
    "$KAN" eval --quiet --threads "$THREADS" --data "$data" --format "$fmt" --validation --max-users 3000 \
      "${args[@]}" "${weights[@]}" --merge rrf --out "$dir/eval" > /dev/null
    local r
    r=$(jq '([.rows[] | select(.kind == "merge")][0] // .rows[0]).metrics["recall@20"]' "$dir/eval/report.json")
    printf 'social=%s popular=%s\t%s\n' "$ws" "$wp" "$r" >> "$log"
    if awk -v a="$r" -v b="$best_score" 'BEGIN{exit !(a>b)}'; then best="${weights[*]}"; best_score=$r; fi
  done; done
  echo "tuned merge on $ds: $best (valid recall@20 $best_score)" >&2
  echo "$best"
}

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
  itemcf=$(tune_itemcf ml100k data/ml-100k ml100k random:0.8:0.1)
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
  itemcf=$(tune_itemcf gowalla "$SHARED/gowalla" lightgcn provided:0.1)
  # shellcheck disable=SC2086
  train gowalla itemcf "$SHARED/gowalla" lightgcn provided:0 $itemcf
  for s in popular item2vec social; do
    train gowalla "$s" "$SHARED/gowalla" lightgcn provided:0
  done
  # Gowalla is 10x ML-100K: the neural towers get fewer epochs to fit this machine (2 cores).
  train gowalla dssm "$SHARED/gowalla" lightgcn provided:0 --epochs "${GOWALLA_DSSM_EPOCHS:-3}"
  train gowalla gat "$SHARED/gowalla" lightgcn provided:0 --epochs "${GOWALLA_GAT_EPOCHS:-1}"
  evaluate gowalla "$SHARED/gowalla" lightgcn popular itemcf item2vec social dssm gat
  # shellcheck disable=SC2086
  best_merge gowalla "$SHARED/gowalla" lightgcn $itemcf
}

run_lastfm() {
  mkdir -p "$OUT/lastfm"; : > "$OUT/lastfm/costs.tsv"
  local itemcf
  itemcf=$(tune_itemcf lastfm "$SHARED/lastfm" sociallgn provided:0.1)
  # shellcheck disable=SC2086
  train lastfm itemcf "$SHARED/lastfm" sociallgn provided:0 $itemcf
  for s in popular item2vec social exploratory; do
    train lastfm "$s" "$SHARED/lastfm" sociallgn provided:0
  done
  # ML-100K-sized: the towers get the epochs the ML-100K runs showed converge on 2 cores.
  train lastfm dssm "$SHARED/lastfm" sociallgn provided:0 --epochs "${LASTFM_DSSM_EPOCHS:-5}"
  train lastfm gat "$SHARED/lastfm" sociallgn provided:0 --epochs "${LASTFM_GAT_EPOCHS:-3}"
  evaluate lastfm "$SHARED/lastfm" sociallgn popular itemcf item2vec exploratory dssm gat
  mv "$OUT/lastfm/eval" "$OUT/lastfm/eval-without-social"; mv "$OUT/lastfm/eval.md" "$OUT/lastfm/eval-without-social.md"
  evaluate lastfm "$SHARED/lastfm" sociallgn popular itemcf item2vec social exploratory dssm gat
  # shellcheck disable=SC2086
  best_merge lastfm "$SHARED/lastfm" sociallgn $itemcf
}

# best_merge dataset data format itemcf-flags → RRF of itemcf with the queues and weights chosen
# on validation (tune_merge), scored on test into $OUT/<dataset>/eval-best-merge.
best_merge() {
  local ds=$1 data=$2 fmt=$3; shift 3
  local weights args=(--bundle "itemcf=$OUT/$ds/itemcf")
  weights=$(tune_merge "$ds" "$data" "$fmt" provided:0.1 "$@")
  for w in $weights; do
    [[ $w == --weight ]] && continue
    args+=(--bundle "${w%%=*}=$OUT/$ds/${w%%=*}" --weight "$w")
  done
  "$KAN" eval --quiet --threads "$THREADS" --data "$data" --format "$fmt" "${args[@]}" --merge rrf \
    --out "$OUT/$ds/eval-best-merge" | tee "$OUT/$ds/eval-best-merge.md"
}

# Sourcing the script (for one step by hand) defines the functions and runs nothing.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0
mkdir -p "$OUT"
for d in "${@:-ml100k gowalla lastfm}"; do
  for x in $d; do "run_$x"; done
done
