#!/usr/bin/env bash
# Installs Azurite (Microsoft's Azure Storage emulator, from npm) into $KAN_TOOLS/azurite
# (default ~/.cache/kan-tools/azurite), idempotently. The az:// tests start its blob service on
# a free port. Needs node and npm (Debian's packages).
set -euo pipefail
tools=${KAN_TOOLS:-$HOME/.cache/kan-tools}
azurite_version=3.37.0
prefix="$tools/azurite"
if [[ -x "$prefix/node_modules/.bin/azurite-blob" ]]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "error: installing azurite needs node and npm (apt install nodejs npm)" >&2
  exit 1
fi
echo "installing azurite $azurite_version into $prefix"
rm -rf "$prefix"
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "azurite@$azurite_version"
