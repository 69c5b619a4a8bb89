#!/usr/bin/env bash
# Exploratory recall on ML-100K and LastFM with and without interest expansion over the
# related-category graph (`kgExpansion`). The hop count and decay are chosen on the validation
# part (`--validation`); the test part is scored once with the chosen setting beside "off".
# Usage: bench/content/exploratory.sh [KAN] [LASTFM_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
kan=${1:-${CARGO_TARGET_DIR:-target}/debug/kan}
lastfm=${2:-../shared/data/lastfm}
out=out/bench-exploratory
mkdir -p "$out"
make data >/dev/null

source bench/content/lib.sh
# The grid, one queue file per cell: PREFIX-off, PREFIX-h1-d0.1 ... (hops 1, 2 × DECAYS).
grid() { # PREFIX BUNDLE DECAYS...
  local prefix=$1 bundle=$2; shift 2
  echo --queues; queue exploratory "$prefix-off" "$bundle" '{}'
  for hops in 1 2; do
    for decay in "$@"; do
      echo --queues
      queue exploratory "$prefix-h$hops-d$decay" "$bundle" "{kgExpansion: true, kgHops: $hops, kgHopDecay: $decay}"
    done
  done
}
best() { # REPORT.json: the queue with the best validation R@20 (ties: listed first)
  python3 - "$1" <<'P'
import json, sys
rows = json.load(open(sys.argv[1]))['rows']
print(max(rows, key=lambda x: x['metrics']['recall@20'])['name'])
P
}
run() { # PREFIX DATA FORMAT [TRAIN ARGS...]
  local prefix=$1 data=$2 format=$3; shift 3
  local bundle=$out/$prefix/exploratory
  "$kan" train --strategy exploratory --data "$data" --format "$format" --threads 2 --quiet "$@" \
    --out "$bundle"
  local decays=(0.1 0.25 0.5 1.0) qs chosen
  while :; do
    mapfile -t qs < <(grid "$prefix" "$bundle" "${decays[@]}")
    "$kan" eval --data "$data" --format "$format" --threads 2 --quiet --validation "${qs[@]}" \
      --out "$out/$prefix/valid" >/dev/null
    table "$out/$prefix/valid/report.json"
    chosen=$(best "$out/$prefix/valid/report.json")
    # A winner on the grid's lower edge widens it (1.0 is the setting's maximum).
    [[ $chosen == *-d${decays[0]} ]] || break
    decays=("$(python3 -c "print(${decays[0]} / 2)")" "${decays[@]}")
  done
  echo "chosen on validation: $chosen"
  qs=(--queues "$out/q/$prefix-off/queue.yaml")
  [[ $chosen == "$prefix-off" ]] || qs+=(--queues "$out/q/$chosen/queue.yaml")
  "$kan" eval --data "$data" --format "$format" --threads 2 --quiet "${qs[@]}" \
    --out "$out/$prefix/test" >/dev/null
  table "$out/$prefix/test/report.json"
}
run ml100k data/ml-100k ml100k
run lastfm "$lastfm" sociallgn --split provided:0.1
