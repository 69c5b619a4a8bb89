#!/usr/bin/env bash
# Gateway scaling curves of BENCHMARKS.md (## Scaling): latency vs number of queues (candidates
# 300) and vs candidates per queue (5 queues), concurrency 1 (latency, not saturation), rrf,
# k 500, fake queues answering at once. One JSON line per point in results/gateway.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
KAN=${KAN:-$CARGO_TARGET_DIR/release/kan}
OUT=bench/serving/results/gateway.jsonl
DURATION=${DURATION:-3}
point() { # sweep queues candidates
  echo "# $(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg): kan bench gateway --queues $2 --candidates $3" >&2
  "$KAN" bench gateway --queues "$2" --candidates "$3" --k 500 --concurrency 1 \
    --duration-s "$DURATION" --warmup-s 1 --queue-latency-ms 0 \
    | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(sweep='$1', queues=$2, candidates=$3, load_average=open('/proc/loadavg').read().split()[:3]); print(json.dumps(r))" \
    | tee -a "$OUT"
}
for q in 1 2 3 5 7 10; do point queues "$q" 300; done
for c in 100 200 300 500 750 1000; do point candidates 5 "$c"; done
