#!/usr/bin/env bash
# Fetches MovieLens-100K (RecBole atomic files) from the recbole==1.2.1 wheel on PyPI into
# DIR/ml-100k. Idempotent. The data's licence forbids redistribution: it is never committed.
set -euo pipefail
dest=${1:-data}
target="$dest/ml-100k"
if [[ -f "$target/ml-100k.inter" ]]; then
  echo "ml-100k already in $target"
  exit 0
fi
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
  echo "error: fetching ML-100K needs python3 with pip (apt install python3-pip), then rerun 'make data'" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps recbole==1.2.1 -d "$tmp"
wheel=$(ls "$tmp"/recbole-1.2.1-*.whl)
mkdir -p "$target"
python3 - "$wheel" "$target" <<'PY'
import sys, zipfile, os
wheel, target = sys.argv[1], sys.argv[2]
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"error: {wheel} has no {prefix}")
    for n in names:
        with open(os.path.join(target, os.path.basename(n)), "wb") as f:
            f.write(z.read(n))
print(f"ml-100k: {len(names)} files in {target}")
PY
