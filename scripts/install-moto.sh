#!/usr/bin/env bash
# Installs moto (an S3-compatible server, from PyPI) into $KAN_TOOLS/moto (default
# ~/.cache/kan-tools/moto), idempotently. The object-storage tests start it on a free port.
set -euo pipefail
tools=${KAN_TOOLS:-$HOME/.cache/kan-tools}
moto_version=5.2.5
venv="$tools/moto"
if [[ -x "$venv/bin/moto_server" && -x "$venv/bin/python" ]]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "error: installing moto needs python3 with venv (apt install python3-venv)" >&2
  exit 1
fi
echo "installing moto[server] $moto_version into $venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "moto[server]==$moto_version"
