# syntax=docker/dockerfile:1.7
#
# One Dockerfile, four images. The services share one cargo workspace and one Cargo.lock, so a
# single build stage compiles the dependency graph once for all four binaries; each runtime
# stage copies one binary out of it. Build one image with `--target`:
#
#   DOCKER_BUILDKIT=1 docker build --target inference   -t inference-harness/inference:0.1.0 .
#   DOCKER_BUILDKIT=1 docker build --target dispatcher  -t inference-harness/dispatcher:0.1.0 .
#   DOCKER_BUILDKIT=1 docker build --target load-tester -t inference-harness/load-tester:0.1.0 .
#   DOCKER_BUILDKIT=1 docker build --target autoscaler  -t inference-harness/autoscaler:0.1.0 .
#
# Dependency caching uses BuildKit cache mounts (cargo registry, git checkouts and target/):
# after the first build only the crates that changed are recompiled, without the
# dummy-main.rs layer tricks. Runtime images are distroless (glibc, CA certificates, no shell,
# no package manager) and run as the numeric non-root user 65532, so they satisfy
# `runAsNonRoot` and work with `readOnlyRootFilesystem: true`.

ARG RUST_VERSION=1.95
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# The onnxruntime library the inference image runs, taken from the PyPI wheel (CPU build,
# x86-64, glibc 2.28 or newer; Debian 12 has 2.36). Change both lines together: the build
# refuses a wheel whose SHA-256 differs.
ARG ORT_VERSION=1.32.0
ARG ORT_WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d

# --- onnxruntime: libonnxruntime.so out of the pinned, checked wheel ----------------------
FROM python:3.11-slim-bookworm AS onnxruntime
ARG ORT_VERSION
ARG ORT_WHEEL_SHA256
WORKDIR /wheel
# Only the shared library is kept; it needs libstdc++ and glibc, which the runtime image has.
RUN pip download --no-cache-dir --no-deps --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --python-version 3.11 \
        "onnxruntime==${ORT_VERSION}" \
    && wheel="onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl" \
    && printf '%s  %s\n' "${ORT_WHEEL_SHA256}" "${wheel}" > wheel.sha256 \
    && sha256sum -c wheel.sha256 \
    && mkdir -p /out/lib \
    && python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], '/wheel/x')" \
        "${wheel}" "onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" \
    && cp "/wheel/x/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}" /out/lib/

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# target/ lives in a cache mount that is not part of the layer, so the binaries are copied out
# in the same step. `--locked` refuses to build if Cargo.lock is stale.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        --bin inference --bin dispatcher --bin load-tester --bin autoscaler \
    && mkdir -p /out/bin /out/reports \
    && cp target/release/inference target/release/dispatcher \
          target/release/load-tester target/release/autoscaler /out/bin/

# --- inference: the classifier with its model and onnxruntime baked in ----------------------
# The library keeps its versioned file name: the service reads the version from it for its
# start-up log and `inference_runtime_info`. INFERENCE_RUNTIME=tract runs the compiled-in runtime.
FROM ${RUNTIME_IMAGE} AS inference
ARG ORT_VERSION
COPY --from=build /out/bin/inference /usr/local/bin/inference
COPY --from=onnxruntime /out/lib/ /usr/local/lib/onnxruntime/
COPY inference/model/efficientnet-lite0.onnx inference/model/imagenet-labels.txt /model/
ENV MODEL_PATH=/model/efficientnet-lite0.onnx \
    LABELS_PATH=/model/imagenet-labels.txt \
    ORT_DYLIB_PATH=/usr/local/lib/onnxruntime/libonnxruntime.so.${ORT_VERSION} \
    INFERENCE_RUNTIME=onnxruntime \
    LISTEN_ADDR=0.0.0.0:8000
EXPOSE 8000
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/inference"]

# --- dispatcher ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS dispatcher
COPY --from=build /out/bin/dispatcher /usr/local/bin/dispatcher
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/dispatcher"]

# --- load tester: photo pool and default workload included; reports go to /reports ---------
# With a read-only root filesystem, mount an emptyDir or a volume on /reports.
FROM ${RUNTIME_IMAGE} AS load-tester
COPY --from=build /out/bin/load-tester /usr/local/bin/load-tester
COPY images/ /data/images/
COPY workload.txt /data/workload.txt
COPY --from=build --chown=65532:65532 /out/reports /reports
ENV IMAGES_DIR=/data/images \
    WORKLOAD_FILE=/data/workload.txt \
    REPORTS_DIR=/reports \
    LISTEN_ADDR=0.0.0.0:3003
EXPOSE 3003
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/load-tester"]
CMD ["serve"]

# --- predictive autoscaler ------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS autoscaler
COPY --from=build /out/bin/autoscaler /usr/local/bin/autoscaler
ENV LISTEN_ADDR=0.0.0.0:8090
EXPOSE 8090
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/autoscaler"]
CMD ["serve"]
