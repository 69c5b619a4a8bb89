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

# One RecallQueue file per setting, evaluated on the test part.
queue() { # NAME BUNDLE SETTINGS
  mkdir -p "$out/q/$1"
  printf 'apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: %s}\nspec:\n  strategy: {type: attribute, attribute: %s}\n  bundle: {uri: %s}\n' \
    "$1" "$3" "$(realpath "$2")" >"$out/q/$1/queue.yaml"
  echo "$out/q/$1/queue.yaml"
}
table() { # REPORT.json
  python3 - "$1" <<'P'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"# {r['dataset']}: {r['split']}, {r['part']}, {r['users']} users, {r['items']} items")
for x in r['rows']:
    m = x['metrics']
    print(f"| {x['name']} | {m['recall@20']:.4f} | {m['ndcg@20']:.4f} | {m['recall@50']:.4f} | {m['coverage@20']:.4f} | {m['coverage@300']:.4f} |")
P
}

"$kan" train --strategy attribute --data data/ml-100k --format ml100k --threads 2 --quiet --out "$out/ml100k/attribute"
"$kan" eval --data data/ml-100k --format ml100k --threads 2 --quiet --merge rrf --out "$out/ml100k/eval" \
  --queues "$(queue ml-attribute "$out/ml100k/attribute" '{}')" \
  --queues "$(queue ml-attribute-kg1 "$out/ml100k/attribute" '{kgExpansion: true}')" \
  --queues "$(queue ml-attribute-kg2 "$out/ml100k/attribute" '{kgExpansion: true, kgHops: 2}')" >/dev/null
table "$out/ml100k/eval/report.json"

"$kan" train --strategy attribute --data "$lastfm" --format sociallgn --split provided:0 --param prior_power=1 \
  --threads 2 --quiet --out "$out/lastfm/attribute"
"$kan" eval --data "$lastfm" --format sociallgn --threads 2 --quiet --merge rrf --out "$out/lastfm/eval" \
  --queues "$(queue lf-attribute "$out/lastfm/attribute" '{}')" \
  --queues "$(queue lf-attribute-kg1 "$out/lastfm/attribute" '{kgExpansion: true, kgHopDecay: 0.1}')" \
  --queues "$(queue lf-attribute-kg2 "$out/lastfm/attribute" '{kgExpansion: true, kgHops: 2}')" >/dev/null
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
