#!/usr/bin/env bash
# The sequence (SASRec-style) queue on ML-100K with RecBole's leave-last-out split: a grid of
# settings scored on validation only, then the validation winner scored on test.
#
#   bench/train/sequence.sh KAN [DATA_DIR]          (DATA_DIR default data/ml-100k)
#
# `--split temporal` is RecBole's `LS: valid_and_test` with `order: TO`: per user by time, the
# last item is test, the one before it validation. Every run trains on the training part and
# stops early on validation R@20 (best epoch kept), as RecBole trains and early-stops before
# its test; so the winning bundle itself is the one scored on test, its input history then
# holding the validation item too. Each setting is `NAME dim lr temperature dropout [params...]`
# in $GRID (one per line); results land in $RES/sequence-ml100k.tsv. Settings may run as
# parallel invocations (GRID=one line, EVAL=0); a finished setting is not trained again.
set -euo pipefail
KAN=${1:?kan binary}; DATA=${2:-data/ml-100k}
OUT=${OUT:-out/sequence}; RES=${RES:-$(dirname "$0")/results}
EPOCHS=${EPOCHS:-60}
# The grid of BENCHMARKS.md: temperature at lr 0.003, then lr at τ 0.1, widened past 0.006.
GRID=${GRID:-"lr3e-3-t0.1 64 0.003 0.1 0.2
lr3e-3-t0.05 64 0.003 0.05 0.2
lr3e-3-t0.2 64 0.003 0.2 0.2
lr6e-3-t0.1 64 0.006 0.1 0.2
lr1.2e-2-t0.1 64 0.012 0.1 0.2"}
# candle's element-wise ops otherwise run on a spinning barrier pool that, on this model's
# small tensors and a shared 2-core machine, triples the CPU seconds (BENCHMARKS.md).
export CANDLE_NUM_THREADS=${CANDLE_NUM_THREADS:-1}
mkdir -p "$OUT" "$RES"
tsv="$RES/sequence-ml100k.tsv"
[ -f "$tsv" ] || printf 'name\tdim\tlr\ttemperature\tdropout\textra\tvalid_r20\tvalid_n20\tbest_epoch\tepochs\tcpu_s\twall_s\tpeak_rss_mb\tload\n' > "$tsv"

while read -r name dim lr t drop extra; do
  [ -n "$name" ] || continue
  dir="$OUT/valid/$name"
  if [ ! -f "$dir/manifest.json" ]; then
    params=(--param "learning_rate=$lr" --param "temperature=$t" --param "dropout=$drop")
    for p in $extra; do params+=(--param "$p"); done
    /usr/bin/time -f 'TIME %U %S %e %M' -o "$OUT/$name.time" nice -n 10 "$KAN" train --quiet \
      --strategy sequence --data "$DATA" --format ml100k --split temporal --threads 2 \
      --dim "$dim" --epochs "$EPOCHS" "${params[@]}" --out "$dir"
  fi
  if ! cut -f1 "$tsv" | grep -qx "$name"; then
    read -r _ u s e m < "$OUT/$name.time"
    jq -r --arg n "$name" --arg d "$dim" --arg lr "$lr" --arg t "$t" --arg dr "$drop" \
      --arg x "${extra:--}" --arg cpu "$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')" \
      --arg w "$e" --arg m "$((m / 1024))" --arg load "$(cut -d' ' -f1 /proc/loadavg)" \
      '[$n, $d, $lr, $t, $dr, $x, (.metrics["recall@20"]|tostring), (.metrics["ndcg@20"]|tostring),
        (.params.best_epoch|tostring), (.params.epochs|tostring), $cpu, $w, $m, $load] | @tsv' \
      "$dir/manifest.json" >> "$tsv"
  fi
done <<< "$GRID"
column -t -s $'\t' "$tsv"

# The validation winner, on test (kan eval re-creates the split from the bundle's params).
[ "${EVAL:-1}" = 1 ] || exit 0
best=$(tail -n +2 "$tsv" | sort -t$'\t' -k7,7gr | head -n1 | cut -f1)
echo "validation winner: $best"
nice -n 10 "$KAN" eval --threads 2 --data "$DATA" --format ml100k \
  --bundle "sequence=$OUT/valid/$best" --out "$OUT/eval-$best"
