#!/usr/bin/env bash
# Adds the quality peers (implicit's CPU ALS/BPR, scipy) to the shared benchmark venv outside the
# repo (~/.cache/kan-tools/bench-venv; bench/serving/setup-venv.sh adds faiss). Pinned versions so
# a fresh machine reruns the same peers. Python never enters Kan's serving or training paths.
set -euo pipefail
VENV=${KAN_BENCH_VENV:-$HOME/.cache/kan-tools/bench-venv}
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
# --only-binary: the CPU wheel from PyPI, never a local source build (which would pick up
# whatever BLAS/compiler flags this machine has).
"$VENV/bin/pip" install --quiet --only-binary :all: \
  "numpy==2.2.6" \
  "scipy==1.15.3" \
  "threadpoolctl==3.6.0" \
  "implicit==0.7.2"
"$VENV/bin/python" -c "import implicit, numpy, scipy; print('bench venv ready:', '$VENV', 'implicit', implicit.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__)"
