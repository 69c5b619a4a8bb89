#!/usr/bin/env bash
# Worker benchmarks of BENCHMARKS.md (## Worker, ## Scaling): every strategy through
# Worker::recall on synthetic 64-d bundles; dssm across catalogue sizes for the scaling plot.
# Appends one JSON line per run to bench/serving/results/worker.jsonl (stdout keeps the log).
#   usage: bench/serving/worker.sh [strategy...]    (default: all)
#   env: WORKER_FLAGS="--bundle-cache DIR" keeps HNSW graphs between runs; DSSM_SIZES, RATE, DURATION
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
KAN=${KAN:-$CARGO_TARGET_DIR/release/kan}
OUT=bench/serving/results/worker.jsonl
RATE=${RATE:-200}
DURATION=${DURATION:-5}
run() {
  echo "# $(date -u +%FT%TZ) nproc=$(nproc) mem=$(free -g | awk '/Mem:/{print $2}')GiB load=$(cut -d' ' -f1-3 /proc/loadavg): kan bench worker $*" >&2
  "$KAN" bench worker --json --duration-s "$DURATION" --rate "$RATE" ${WORKER_FLAGS:-} "$@" | tee -a "$OUT"
}
strategies=("$@")
[[ ${#strategies[@]} -gt 0 ]] || strategies=(dssm item2vec gat itemcf social exploratory popular operational)
for s in "${strategies[@]}"; do
  case $s in
    dssm) run --strategy dssm ${DSSM_SIZES:---items 10000 --items 30000 --items 100000 --items 300000 --items 1000000} ;;
    item2vec) run --strategy item2vec ${ITEM2VEC_SIZES:---items 100000 --items 1000000} ;;
    operational) run --strategy operational --items 100 ;;
    gat) run --strategy gat --items 100000 ;;
    *) run --strategy "$s" --items 100000 --items 1000000 ;;
  esac
done
