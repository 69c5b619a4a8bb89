#!/usr/bin/env bash
# Installs the Python environment of the bring-your-own-model example (numpy and onnx from
# PyPI, no PyTorch) into $KAN_TOOLS/byo (default ~/.cache/kan-tools/byo), idempotently. The
# test that packs examples/byo/make_toy_encoder.py's model runs this venv's python.
set -euo pipefail
tools=${KAN_TOOLS:-$HOME/.cache/kan-tools}
numpy_version=2.2.6
onnx_version=1.19.1
venv="$tools/byo"
stamp="$venv/.kan-numpy-$numpy_version-onnx-$onnx_version"
if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "error: the BYO example needs python3 with venv (apt install python3-venv)" >&2
  exit 1
fi
echo "installing numpy $numpy_version and onnx $onnx_version into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "numpy==$numpy_version" "onnx==$onnx_version"
touch "$stamp"
