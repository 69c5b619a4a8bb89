#!/usr/bin/env bash
# The TensorFlow Recommenders peer of Kan's dssm queue on Gowalla (BENCHMARKS.md, "Deep recall
# against TensorFlow Recommenders"): a TFRS two-tower of the same shape (bench/quality/
# tfrs_topk.py) trains on exactly the split Kan's bundles train on (`kan eval --dump-split`),
# and `kan eval --predictions` scores its lists with the same users, metric code and
# known-item filtering as the queues. Validation first (the tuning split), then the test split.
# Needs the release `kan` and ../shared/data/gowalla. Installs its venv (setup-tfrs-venv.sh).
# Usage: [PARTS=valid|test|"valid test"] bench/quality/tfrs.sh [--epochs N] [--threads N] [...]
# (flags go to tfrs_topk.py; choose them on PARTS=valid, then run PARTS=test once).
set -euo pipefail
cd "$(dirname "$0")/../.."
kan=${KAN:-${CARGO_TARGET_DIR:-$HOME/.cache/kan-target}/release/kan}
VENV=${KAN_TFRS_VENV:-$HOME/.cache/kan-tools/tfrs-venv}
"$VENV/bin/python" -c "import tensorflow_recommenders" 2>/dev/null || bench/quality/setup-tfrs-venv.sh
work=${KAN_TFRS_WORK:-out/tfrs}
data=../shared/data/gowalla
mkdir -p "$work"
echo "machine: $(nproc) cores; $(date -u); load: $(uptime | sed 's/.*load average: //')"
for part in ${PARTS:-valid test}; do
  if [[ $part == valid ]]; then split=provided:0.1; extra=(--validation); else split=provided:0; extra=(); fi
  dir="$work/split-$part"
  [[ -f $dir/split.json ]] || "$kan" eval --quiet --data "$data" --format lightgcn --split "$split" \
    --seed 42 --dump-split "$dir"
  "$VENV/bin/python" bench/quality/tfrs_topk.py --split-dir "$dir" --part "$part" \
    --out "$work/tfrs-$part.jsonl" "$@" | tail -1 > "$work/tfrs-$part.json"
  "$kan" eval --quiet --data "$data" --format lightgcn --split "$split" --seed 42 --merge "" \
    "${extra[@]}" --predictions "tfrs=$work/tfrs-$part.jsonl" --out "$work/eval-$part" >/dev/null
  echo "== $part ($*): $(cat "$work/tfrs-$part.json")"
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["rows"][0]["metrics"]; print("R@20 %.4f N@20 %.4f" % (m["recall@20"], m["ndcg@20"]))' \
    "$work/eval-$part/report.json"
done
