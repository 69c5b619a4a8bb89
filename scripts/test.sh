#!/usr/bin/env bash
# Every check CI runs, in order of cost. Installs its tools first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-tools.sh
./scripts/install-redis.sh
source scripts/env.sh
# Tests that need the tools installed above fail, rather than skip, without them.
export KAN_REQUIRE_TOOLS=1

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "build"
cargo build --locked -p kan
kan="$CARGO_TARGET_DIR/debug/kan"

step "CRD drift (kan crd vs crds/)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$kan" crd --out-dir "$tmp"
diff -ru crds "$tmp" || { echo "crds/ is stale: run 'make crds' and commit" >&2; exit 1; }
diff -ru crds charts/kan/crds || { echo "charts/kan/crds differs from crds/: run 'make crds' and commit" >&2; exit 1; }

step "CRDs and examples parse with kubectl (offline)"
KUBECONFIG=/dev/null kubectl label --local -o name -f crds/ kan.dev/checked=true
KUBECONFIG=/dev/null kubectl label --local -o name -f examples/ kan.dev/checked=true >/dev/null
"$kan" validate examples/

step "documented kan commands parse (README.md, docs/)"
./scripts/check-doc-commands.sh "$kan"

if [[ -d charts/kan ]]; then
  step "helm lint and template"
  helm lint --strict charts/kan
  helm template kan charts/kan --include-crds >/dev/null
fi

step "tests"
# numpy + onnx for the bring-your-own-model test (examples/byo/make_toy_encoder.py).
./scripts/install-byo-python.sh
cargo test --locked --workspace

step "documented commands run on the demo data (README.md, docs/)"
./scripts/run-doc-commands.sh

step "the console in headless Chromium (on make demo's bundles)"
./scripts/test-console.sh

step "done"
