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

# --- inference: the classifier with its model baked in ------------------------------------
FROM ${RUNTIME_IMAGE} AS inference
COPY --from=build /out/bin/inference /usr/local/bin/inference
COPY inference/model/efficientnet-lite0.onnx inference/model/imagenet-labels.txt /model/
ENV MODEL_PATH=/model/efficientnet-lite0.onnx \
    LABELS_PATH=/model/imagenet-labels.txt \
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
