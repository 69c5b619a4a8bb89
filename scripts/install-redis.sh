#!/usr/bin/env bash
# Installs redis-server (Debian's package) for the signal store tests, idempotently: prints
# nothing when it is already on PATH. The tests start their own servers on free ports; nothing
# is left running (the package's own service is stopped and disabled when systemd is there).
set -euo pipefail
if command -v redis-server >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null || [[ $(id -u) != 0 ]]; then
  echo "error: redis-server not found and cannot apt-get it: install the redis-server package" >&2
  exit 1
fi
echo "installing redis-server (apt) for the signal store tests"
apt-get install -y -q redis-server >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q redis-server >/dev/null 2>&1; } \
  || { echo "error: could not install redis-server" >&2; exit 1; }
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
command -v redis-server >/dev/null
