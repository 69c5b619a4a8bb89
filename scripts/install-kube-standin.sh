#!/usr/bin/env bash
# Installs the Python side of the Kubernetes API stand-in (kmock 0.8 from PyPI, and aiohttp)
# into $KAN_TOOLS/kube-standin (default ~/.cache/kan-tools/kube-standin), idempotently. The
# operator's end-to-end test (operator/tests/standin.rs) runs kube_standin.py from
# ../shared/tools/kube-standin (or $KAN_KUBE_STANDIN) with this interpreter.
set -euo pipefail
tools=${KAN_TOOLS:-$HOME/.cache/kan-tools}
# The stand-in's shim depends on kmock internals: keep this exact version.
kmock_version=0.8
venv="$tools/kube-standin"
stamp="$venv/.kmock-$kmock_version"
if [[ -x "$venv/bin/python" && -f "$stamp" ]]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "error: installing the kube stand-in needs python3 with venv (apt install python3-venv)" >&2
  exit 1
fi
echo "installing kmock $kmock_version into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "kmock==$kmock_version" aiohttp
"$venv/bin/python" -c 'import kmock, aiohttp'
touch "$stamp"
