#!/usr/bin/env bash
# The local demo: fetch ML-100K, train a bundle per strategy, start `kan up` on
# examples/quickstart (a gateway with an A/B experiment), send a few recall requests and print
# the merged candidates with titles, the queues that produced them and the user's arm.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
kan="$CARGO_TARGET_DIR/debug/kan"
port=${KAN_DEMO_PORT:-18080}
bundles=data/bundles/ml-100k
started=$SECONDS
step_start=$SECONDS
step() {
  local now=$SECONDS
  [[ -n "${current:-}" ]] && printf '   ... %s took %ss\n' "$current" "$((now - step_start))"
  current=$1
  step_start=$now
  printf '\n== %s\n' "$1"
}

step "fetch MovieLens-100K"
./scripts/fetch-ml100k.sh data

step "train bundles (popular, itemcf, item2vec, social, exploratory, attribute, dssm, gat)"
for s in popular itemcf item2vec social exploratory attribute dssm gat; do
  if [[ -f "$bundles/$s/manifest.json" ]]; then
    echo "$s: already trained ($bundles/$s)"
    continue
  fi
  # The neural models get few epochs so the demo stays a few minutes on 2 cores (gat: ~95 s per
  # epoch here); BENCHMARKS.md has the quality figures with the defaults.
  extra=()
  [[ $s == dssm ]] && extra=(--epochs 3)
  [[ $s == gat ]] && extra=(--epochs 1)
  t0=$SECONDS
  "$kan" train --strategy "$s" --data data/ml-100k --format ml100k --out "$bundles/$s" --quiet "${extra[@]}"
  echo "   $s trained in $((SECONDS - t0))s"
done

step "start kan up examples/quickstart"
log=$(mktemp)
"$kan" up examples/quickstart --listen "127.0.0.1:$port" --log-format text >"$log" 2>&1 &
up_pid=$!
trap 'kill -INT $up_pid 2>/dev/null; wait $up_pid 2>/dev/null || true; rm -f "$log"' EXIT
# Wait until every queue is Ready and routed (at most a minute).
for _ in $(seq 1 120); do
  routed=$(grep "routing updated" "$log" | tail -1 | grep -o '"[a-z0-9-]*"' | wc -l || true)
  [[ "$routed" -ge 7 ]] && break
  if ! kill -0 $up_pid 2>/dev/null; then cat "$log"; echo "kan up exited" >&2; exit 1; fi
  sleep 0.5
done
grep "routing updated" "$log" | tail -1 || true

step "recall for a few users"
python3 scripts/demo_requests.py "http://127.0.0.1:$port" data/ml-100k/ml-100k.item 1 2 3 42 196

step "done"
printf '\nTotal %ss. The demo (on :%s) has stopped. Run it yourself: source scripts/env.sh && kan up examples/quickstart\n(gateway on http://127.0.0.1:8080: POST /v1/recall, console at http://127.0.0.1:8080/ui)\n' "$((SECONDS - started))" "$port"
