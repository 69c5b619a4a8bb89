#!/usr/bin/env bash
# Trainer speed, old binary vs new, in one run: examples per CPU-second of the training loop.
#
#   bench/train/speed.sh OLD_KAN NEW_KAN [STRATEGY...]     (default strategies: dssm gat)
#
# Workload: the first $USERS users of the Gowalla LightGCN split (all 40,981 items kept, so the
# embedding tables have Gowalla's full size), batch 1024, d = 64, $EPOCHS epoch(s), 2 threads.
# Each binary trains with --epochs 0 (loading, bundle writing) and with --epochs $EPOCHS; the
# difference of their CPU seconds (user + system, /usr/bin/time) is the training loop's. The
# two binaries alternate for $REPS repetitions (this VM's CPU seconds drift by tens of per cent
# over minutes); the speed-up is the ratio of the medians.
set -euo pipefail
OLD=${1:?old kan binary}; NEW=${2:?new kan binary}; shift 2
STRATEGIES=${*:-dssm gat}
DATA=${DATA:-$(dirname "$0")/../../../shared/data/gowalla}
USERS=${USERS:-3000}; EPOCHS=${EPOCHS:-1}; REPS=${REPS:-3}
OUT=${OUT:-$(dirname "$0")/results}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$WORK/data"
head -n "$USERS" "$DATA/train.txt" > "$WORK/data/train.txt"
head -n "$USERS" "$DATA/test.txt" > "$WORK/data/test.txt"
# A test-only user holding every item registers the full catalogue (never trained on).
{ printf '999999'; seq -s ' ' -f ' %g' 0 40980 | tr -s ' '; echo; } >> "$WORK/data/test.txt"

run() { # BIN STRATEGY EPOCHS -> "cpu_seconds examples"
  local log="$WORK/log"
  /usr/bin/time -f 'TIME %U %S %M' nice -n 5 "$1" train --quiet --strategy "$2" --data "$WORK/data" \
    --format lightgcn --split provided:0 --epochs "$3" --threads 2 --out "$WORK/bundle" > "$log" 2>&1
  local cpu ex
  cpu=$(awk '/^TIME/ {print $2 + $3}' "$log")
  ex=$(sed -n 's/.* \([0-9]*\) training interactions.*/\1/p' "$log")
  echo "$cpu $ex"
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

{
  echo "# $(date -u +%FT%TZ) $(uname -n), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# old=$OLD new=$NEW users=$USERS epochs=$EPOCHS reps=$REPS"
  printf '%-6s %-4s %3s %10s %10s %12s %14s\n' strategy bin rep cpu_0 cpu_n examples examples_per_cpu_s
  for s in $STRATEGIES; do
    : > "$WORK/rates_old"; : > "$WORK/rates_new"
    for rep in $(seq "$REPS"); do
      for which in old new; do
        bin=$OLD; [ "$which" = new ] && bin=$NEW
        read -r c0 _ < <(run "$bin" "$s" 0)
        read -r cn ex < <(run "$bin" "$s" "$EPOCHS")
        rate=$(awk -v c0="$c0" -v cn="$cn" -v ex="$ex" -v e="$EPOCHS" 'BEGIN {printf "%.0f", ex * e / (cn - c0)}')
        printf '%-6s %-4s %3s %10s %10s %12s %14s\n' "$s" "$which" "$rep" "$c0" "$cn" "$ex" "$rate"
        echo "$rate" >> "$WORK/rates_$which"
      done
    done
    old_rate=$(median < "$WORK/rates_old"); new_rate=$(median < "$WORK/rates_new")
    awk -v a="$new_rate" -v b="$old_rate" -v s="$s" \
      'BEGIN {printf "# %s medians: old %.0f, new %.0f examples per CPU-second; speed-up %.1fx\n", s, b, a, a / b}'
  done
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$OUT/speed.txt"
