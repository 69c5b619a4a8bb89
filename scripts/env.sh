# Source me: puts Kan's tools and the `kan` binary (the debug build) on PATH and points ort at
# ONNX Runtime.
export KAN_TOOLS=${KAN_TOOLS:-$HOME/.cache/kan-tools}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kan-target}
export PATH="$KAN_TOOLS/bin:$CARGO_TARGET_DIR/debug:$PATH"
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$KAN_TOOLS/py/onnxruntime/capi/libonnxruntime.so.1.31.1}
