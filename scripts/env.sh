# Source me: puts Kan's tools on PATH and points ort at ONNX Runtime.
export KAN_TOOLS=${KAN_TOOLS:-$HOME/.cache/kan-tools}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/kan-target}
export PATH="$KAN_TOOLS/bin:$PATH"
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$KAN_TOOLS/py/onnxruntime/capi/libonnxruntime.so.1.31.1}
