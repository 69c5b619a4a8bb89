#!/usr/bin/env bash
# Quality and training cost of Kan's queues vs implicit ALS/BPR (BENCHMARKS.md, "Peers: quality
# and training cost"). Needs the release `kan` (cargo build --release -p kan), ./data/ml-100k
# (make data), ../shared/data/gowalla and ORT_DYLIB_PATH for dssm/gat bundles (scripts/env.sh).
# Usage: bench/quality/run.sh [--datasets ml100k,gowalla] [--seeds 1,2,3] [--runs 3] [--ours ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -f scripts/env.sh ]] && source scripts/env.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kan-target}
VENV=${KAN_BENCH_VENV:-$HOME/.cache/kan-tools/bench-venv}
"$VENV/bin/python" -c "import implicit" 2>/dev/null || bench/quality/setup-venv.sh
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u); load: $(uptime | sed 's/.*load average: //')"
exec "$VENV/bin/python" bench/quality/run.py "$@"
