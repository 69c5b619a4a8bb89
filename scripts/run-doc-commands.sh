#!/usr/bin/env bash
# Runs every shell block (```sh / ```bash / ```shell) of README.md and docs/*.md, in the order a
# reader meets them (README.md first, then docs/ by name), on the demo data, and fails when one
# fails. This is how the docs stay true: a command that does not work as written fails CI.
#
# * Set-up is the README's: `source scripts/env.sh` (tools and the `kan` debug build on PATH,
#   ONNX Runtime). The binary must be built first (`make build`).
# * Blocks run from the repository root, one `bash -euo pipefail` each, in order, so a block may
#   use what an earlier one wrote (`make demo`'s bundles, `out/bundles`, /tmp/toy). They may
#   write only ignored paths (data/, out/) or outside the checkout: the tree must be unchanged
#   afterwards. (Not a copy of the checkout: cargo keys workspace crates by path, so `make demo`
#   in a copy would rebuild every crate.)
# * A block that talks to `localhost:8080` / `127.0.0.1:8080` runs against
#   `kan up examples/quickstart`, which this script starts in the background on a free port
#   (the block's `:8080` is rewritten to it) before the first such block, and stops at the end.
# * Commands that need what CI does not have are skipped, each with its reason (SKIPS below). A
#   block is skipped only when every command in it is; a block that mixes skipped and runnable
#   commands is an error (split it, so the runnable part runs).
# * Slow blocks are made fast in the docs themselves (the command as written is the one run).
#
# Usage: scripts/run-doc-commands.sh [FILE.md ...]   (default: README.md docs/*.md)
# Env: KAN_DOC_BLOCK_TIMEOUT_S (default 900) bounds each block.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
files=("$@")
[[ ${#files[@]} -gt 0 ]] || files=(README.md docs/*.md)
block_timeout=${KAN_DOC_BLOCK_TIMEOUT_S:-900}

# Why a command is not run here; empty when it is. $1 = the command's words.
skip_reason() {
  local cmd=$1
  read -r -a w <<<"$cmd"
  local i=0
  while [[ $i -lt ${#w[@]} ]] && [[ ${w[$i]} =~ ^(do|then|else|time|[A-Za-z_][A-Za-z0-9_]*=.*)$ ]]; do i=$((i + 1)); done
  local first=${w[$i]:-} second=${w[$((i + 1))]:-}
  case "$first" in
    kubectl) echo "needs a Kubernetes cluster (tests/e2e/kind.sh walks through it on kind)" ;;
    helm)
      if [[ $second =~ ^(install|upgrade|uninstall|rollback|test)$ ]]; then
        echo "needs a Kubernetes cluster (scripts/test.sh runs helm lint and template)"
      fi
      ;;
    kind) echo "needs Docker: kind's nodes are containers" ;;
    docker) echo "needs a container runtime" ;;
    make) if [[ $second == test ]]; then echo "is this test suite: it would run itself"; fi ;;
    kan)
      if [[ $second == operator ]]; then
        echo "needs a Kubernetes API server (cli/tests/operator_standin.rs runs it against the stand-in)"
      elif [[ $cmd =~ (^|[[:space:]])(s3|gs|az)://[^[:space:]]* ]]; then
        echo "needs object storage (cli/tests/bundle.rs runs pack/push/verify against a moto S3 server)"
      fi
      ;;
  esac
  return 0
}

tmp=$(mktemp -d)
up_pid=""
cleanup() {
  if [[ -n $up_pid ]]; then
    kill -INT "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Extract blocks: $tmp/blocks/NNNN.sh with the block, NNNN.where with "file:line".
mkdir -p "$tmp/blocks"
awk -v out="$tmp/blocks" '
  FNR == 1 { inb = 0 }
  /^[[:space:]]*```/ {
    if (inb) { inb = 0; close(f); next }
    if ($0 ~ /^[[:space:]]*```(sh|bash|shell)([[:space:]]|$)/) {
      inb = 1; n++; f = sprintf("%s/%04d.sh", out, n)
      printf "%s:%d\n", FILENAME, FNR > sprintf("%s/%04d.where", out, n); close(sprintf("%s/%04d.where", out, n))
      printf "" > f
    }
    next
  }
  inb { print > f }
' "${files[@]}"

# The logical commands of a block: comments dropped, continuation lines joined, split on
# ; && || | (good enough for classification; the block itself runs unchanged).
commands_of() {
  awk '
    { line = $0; sub(/^[[:space:]]*#.*$/, "", line); sub(/[[:space:]]#.*$/, "", line) }
    line ~ /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); acc = acc line " "; next }
    { print acc line; acc = "" }
  ' "$1" | sed -E 's/(\&\&|\|\||;|\|)/\n/g' | grep -v '^[[:space:]]*$' || true
}

source scripts/env.sh
# Errors as a newcomer's shell shows them: the message, not a backtrace that hides it.
export RUST_BACKTRACE=0
if ! command -v kan >/dev/null; then
  echo "error: kan is not on PATH after 'source scripts/env.sh' (CARGO_TARGET_DIR=$CARGO_TARGET_DIR): build it first (make build)" >&2
  exit 1
fi
before=$(git status --porcelain --untracked-files=all)

# Starts `kan up examples/quickstart` on a free port and waits until every queue is routed.
start_up() {
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  kan up examples/quickstart --listen "127.0.0.1:$port" >"$tmp/up.log" 2>&1 &
  up_pid=$!
  local want
  want=$(grep -l '^kind: RecallQueue' examples/quickstart/*.yaml | wc -l)
  for _ in $(seq 1 240); do
    if ! kill -0 "$up_pid" 2>/dev/null; then
      cat "$tmp/up.log" >&2
      echo "error: kan up examples/quickstart exited" >&2
      exit 1
    fi
    routed=$(curl -sf "http://127.0.0.1:$port/ui/config" \
      | python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("endpoints") or {}))' 2>/dev/null || echo 0)
    [[ $routed -ge $want ]] && { echo "   (kan up examples/quickstart on 127.0.0.1:$port, $routed queues routed)"; return; }
    sleep 0.5
  done
  tail -20 "$tmp/up.log" >&2
  echo "error: kan up examples/quickstart did not route its $want queues within 120 s" >&2
  exit 1
}

ran=0
failed=()
skipped=()
started=$SECONDS
for block in "$tmp"/blocks/*.sh; do
  [[ -e $block ]] || continue
  where=$(cat "${block%.sh}.where")
  runnable=0
  reasons=()
  while IFS= read -r cmd; do
    reason=$(skip_reason "$cmd")
    if [[ -n $reason ]]; then reasons+=("'$(sed -E 's/^[[:space:]]+//' <<<"$cmd")': $reason"); else runnable=$((runnable + 1)); fi
  done < <(commands_of "$block")
  if [[ ${#reasons[@]} -gt 0 && $runnable -gt 0 ]]; then
    echo "FAIL $where: the block mixes commands this test skips with ones it runs; split it:" >&2
    printf '     %s\n' "${reasons[@]}" >&2
    failed+=("$where (mixed block)")
    continue
  fi
  if [[ ${#reasons[@]} -gt 0 ]]; then
    for r in "${reasons[@]}"; do skipped+=("$where $r"); done
    continue
  fi
  [[ $runnable -gt 0 ]] || continue
  script=$(cat "$block")
  if grep -qE '(localhost|127\.0\.0\.1):8080' <<<"$script"; then
    [[ -n $up_pid ]] || start_up
    script=$(sed -E "s/(localhost|127\.0\.0\.1):8080/127.0.0.1:$port/g" <<<"$script")
  fi
  t0=$SECONDS
  echo "-- $where"
  if timeout "$block_timeout" bash -euo pipefail -c "$script" >"$tmp/out" 2>&1; then
    ran=$((ran + 1))
    echo "   ok ($((SECONDS - t0)) s)"
    tail -3 "$tmp/out" | cut -c1-160 | sed 's/^/   > /'
  else
    rc=$?
    echo "FAIL $where (exit $rc after $((SECONDS - t0)) s):" >&2
    sed 's/^/   | /' <<<"$script" >&2
    echo "   output (last 30 lines):" >&2
    tail -30 "$tmp/out" | sed 's/^/   > /' >&2
    failed+=("$where")
  fi
done

for s in "${skipped[@]}"; do echo "skipped: $s"; done
after=$(git status --porcelain --untracked-files=all)
if [[ $before != "$after" ]]; then
  echo "FAIL: the documented commands changed the checkout (they may write only ignored paths):" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  failed+=("checkout changed")
fi
echo "$ran block(s) ran, ${#skipped[@]} command(s) skipped, ${#failed[@]} failure(s), $((SECONDS - started)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
