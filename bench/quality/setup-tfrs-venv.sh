#!/usr/bin/env bash
# The TensorFlow Recommenders peer's own venv, outside the repo (~/.cache/kan-tools/tfrs-venv):
# TensorFlow (CPU wheel) and TFRS, pinned so a fresh machine reruns the same peer. Kept apart
# from bench-venv (implicit, faiss) because TensorFlow pins its own numpy.
set -euo pipefail
VENV=${KAN_TFRS_VENV:-$HOME/.cache/kan-tools/tfrs-venv}
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
# TF 2.15 is the last release whose built-in Keras is Keras 2, which TFRS 0.7.3 is written for.
"$VENV/bin/pip" install --quiet --only-binary :all: \
  "tensorflow-cpu==2.15.1" \
  "tensorflow-recommenders==0.7.3" \
  "numpy==1.26.4"
"$VENV/bin/python" -c "import tensorflow as tf, tensorflow_recommenders as tfrs; print('tfrs venv ready:', '$VENV', 'tensorflow', tf.__version__, 'tfrs', tfrs.__version__)"
