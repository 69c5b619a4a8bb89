# One image for every role (operator, worker, gateway): `kan <subcommand>`.
# Build: docker build -t kan:dev .   (kind: kind load docker-image kan:dev)

# --- build the binary -------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kan && cp target/release/kan /kan

# --- ONNX Runtime from the PyPI wheel (ort loads it at run time) -------------------------------
FROM python:3.11-slim-bookworm AS onnxruntime
RUN pip install --no-cache-dir --no-deps --target /ort onnxruntime==1.31.1 \
 && cp /ort/onnxruntime/capi/libonnxruntime.so.1.31.1 /libonnxruntime.so

# --- runtime: distroless (glibc, CA certificates, no shell), non-root --------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /kan /usr/local/bin/kan
COPY --from=onnxruntime /libonnxruntime.so /usr/local/lib/libonnxruntime.so
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/kan"]
CMD ["--help"]
