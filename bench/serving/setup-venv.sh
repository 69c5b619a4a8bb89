#!/usr/bin/env bash
# Creates the Python venv the peer benchmarks in bench/ use (outside the repo; never part of
# serving or training). Pinned versions so a fresh machine reruns the same peers.
set -euo pipefail
VENV=${KAN_BENCH_VENV:-$HOME/.cache/kan-tools/bench-venv}
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet \
  "numpy==2.2.6" \
  "faiss-cpu==1.15.1" \
  "matplotlib==3.10.7"
"$VENV/bin/python" -c "import faiss, numpy, matplotlib; print('bench venv ready:', '$VENV', 'faiss', faiss.__version__, 'numpy', numpy.__version__, 'matplotlib', matplotlib.__version__)"
