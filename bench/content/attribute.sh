#!/usr/bin/env bash
# Attribute recall on ML-100K and LastFM (with and without KG / tag-co-occurrence expansion) and
# the cold-start table (10 % of items held out entirely). Settings were chosen on the validation
# part (`kan eval --validation`, see BENCHMARKS.md "Attribute recall"); this script reports the
# test part once. Usage: bench/content/attribute.sh [KAN] [LASTFM_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
kan=${1:-${CARGO_TARGET_DIR:-target}/debug/kan}
lastfm=${2:-../shared/data/lastfm}
out=out/bench-attribute
mkdir -p "$out"
make data >/dev/null

source bench/content/lib.sh

"$kan" train --strategy attribute --data data/ml-100k --format ml100k --threads 2 --quiet --out "$out/ml100k/attribute"
"$kan" eval --data data/ml-100k --format ml100k --threads 2 --quiet --merge rrf --out "$out/ml100k/eval" \
  --queues "$(queue attribute ml-attribute "$out/ml100k/attribute" '{}')" \
  --queues "$(queue attribute ml-attribute-kg1 "$out/ml100k/attribute" '{kgExpansion: true}')" \
  --queues "$(queue attribute ml-attribute-kg2 "$out/ml100k/attribute" '{kgExpansion: true, kgHops: 2}')" >/dev/null
table "$out/ml100k/eval/report.json"

"$kan" train --strategy attribute --data "$lastfm" --format sociallgn --split provided:0 --param prior_power=1 \
  --threads 2 --quiet --out "$out/lastfm/attribute"
"$kan" eval --data "$lastfm" --format sociallgn --threads 2 --quiet --merge rrf --out "$out/lastfm/eval" \
  --queues "$(queue attribute lf-attribute "$out/lastfm/attribute" '{}')" \
  --queues "$(queue attribute lf-attribute-kg1 "$out/lastfm/attribute" '{kgExpansion: true, kgHopDecay: 0.1}')" \
  --queues "$(queue attribute lf-attribute-kg2 "$out/lastfm/attribute" '{kgExpansion: true, kgHops: 2}')" >/dev/null
table "$out/lastfm/eval/report.json"

# Cold start: every queue trained on the same cold-item split, scored on the held-out items.
cold() { # NAME DATA FORMAT STRATEGIES... (attribute's prior power per dataset as above)
  local name=$1 data=$2 format=$3; shift 3
  local bundles=()
  for s in "$@"; do
    local extra=()
    [[ $s == attribute && $format == lastfm ]] && extra=(--param prior_power=1)
    "$kan" train --strategy "$s" --data "$data" --format "$format" --split cold:0.1 --threads 2 --quiet \
      "${extra[@]}" --out "$out/cold-$name/$s" >/dev/null
    bundles+=(--bundle "$s=$out/cold-$name/$s")
  done
  "$kan" eval --data "$data" --format "$format" --threads 2 --quiet --merge rrf "${bundles[@]}" \
    --out "$out/cold-$name/eval" >/dev/null
  table "$out/cold-$name/eval/report.json"
}
cold ml100k data/ml-100k ml100k popular itemcf item2vec social exploratory attribute
cold lastfm "$lastfm" lastfm popular itemcf social attribute
