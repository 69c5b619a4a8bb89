#!/usr/bin/env bash
# Propensity on ML-100K: R@20 of popular, item-CF, attribute and their rrf merge, without and
# with the gateway's propensity stage (each user's context from ml-100k.user), overall and per
# audience segment. The stage comes from a RecallGateway file (`filters.propensity`), as a
# platform would deploy it; the keys and boost were chosen on the validation part (the sweep
# below), the test part is reported once. Usage: bench/content/propensity.sh [KAN]
set -euo pipefail
cd "$(dirname "$0")/../.."
kan=${1:-${CARGO_TARGET_DIR:-target}/debug/kan}
out=out/bench-propensity
mkdir -p "$out/q"
make data >/dev/null

for s in popular itemcf attribute; do
  "$kan" train --strategy "$s" --data data/ml-100k --format ml100k --threads 2 --quiet --out "$out/$s" >/dev/null
  printf 'apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: %s}\nspec:\n  strategy: {type: %s}\n  bundle: {uri: ../%s}\n' \
    "$s" "$s" "$s" >"$out/q/$s.yaml"
done
# The lift table is read from the popular bundle (every bundle of this data carries the same one).
cat >"$out/q/gateway.yaml" <<'Y'
apiVersion: kan.dev/v1alpha1
kind: RecallGateway
metadata: {name: feed}
spec:
  queues: [{name: popular}, {name: itemcf}, {name: attribute}]
  merge: {policy: rrf}
  filters:
    propensity: {table: ../popular, keys: [age_band, gender], boost: 0.5}
Y

r20() { grep '^| ' "$1" | awk -F'|' 'NR > 2 && NF > 8 {printf "%s=%s ", $2, $7}' | tr -s ' '; echo; }

echo "# validation sweep (keys, boost): name=R@20"
for keys in age_band gender region occupation age_band,gender age_band,gender,occupation,region; do
  for boost in 0.1 0.25 0.5 1; do
    "$kan" eval --data data/ml-100k --format ml100k --threads 2 --quiet --merge rrf --validation \
      --queues "$out/q" --propensity-keys "$keys" --propensity-boost "$boost" >"$out/valid.md"
    echo "$keys $boost: $(r20 "$out/valid.md")"
  done
done

echo "# test part, the gateway file's stage"
"$kan" eval --data data/ml-100k --format ml100k --threads 2 --quiet --merge rrf \
  --queues "$out/q" --out "$out/test" >/dev/null
cat "$out/test/report.md"
