#!/usr/bin/env bash
# ANN vs FAISS of BENCHMARKS.md (## ANN vs FAISS): kan's embedded HNSW and exact scan, then FAISS
# HNSW and flat on the very same files (base.npy, queries.npy, gt.npy from kan).
#   usage: bench/serving/ann.sh OUT_DIR [kan bench ann flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
KAN=${KAN:-$CARGO_TARGET_DIR/release/kan}
PY=${KAN_BENCH_VENV:-$HOME/.cache/kan-tools/bench-venv}/bin/python
[[ -x $PY ]] || bench/serving/setup-venv.sh
out=$1; shift
echo "# $(date -u +%FT%TZ) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg): kan bench ann --out $out $*"
"$KAN" bench ann --out "$out" "$@"
echo "# $(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg): faiss_hnsw.py --dir $out"
"$PY" bench/serving/faiss_hnsw.py --dir "$out"
echo "# $(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg): done"
