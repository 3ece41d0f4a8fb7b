#!/usr/bin/env bash
# A cluster-free run of the rendered deployment (root, Linux): renders the chart with the real
# helm for every autoscaling mode (and reads the plain manifests in k8s/), starts every rendered
# workload's binary as the image would run it, each pod in a network namespace of its own where
# the Services' names resolve, checks every probe, and follows k8s/README.md's walkthrough
# command by command; in the default mode a real Prometheus and Alertmanager load the chart's
# configuration, the dashboard's queries must return data and a fault drill must deliver the
# chart's alerts. See deploy/checks/clusterrun/ and k8s/README.md.
#
#   scripts/install-deploy-tools.sh && cargo build --workspace --bins --locked
#   sudo scripts/cluster-run.sh [--bin-dir DIR] [--only hpa keda none ...] [--max-images N]
#
# The binaries come from --bin-dir, else $CLUSTER_RUN_BIN_DIR, else target/debug. Ends with
# `cluster run: N passed, M failed`; exits non-zero if anything failed. Whatever it set up
# (processes, namespaces, the bridge, mount points) is removed on exit, however it exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
PYTHON="$TOOLS/venv/bin/python"
BIN_DIR="${CLUSTER_RUN_BIN_DIR:-$ROOT/target/debug}"

for tool in "$TOOLS/bin/helm" "$TOOLS/bin/kubectl" "$PYTHON"; do
  if [[ ! -x "$tool" ]]; then
    echo "cluster-run: $tool not found; run scripts/install-deploy-tools.sh first" >&2
    exit 2
  fi
done
for tool in ip unshare setpriv nsenter curl jq openssl prometheus prometheus-alertmanager; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "cluster-run: $tool not found (see the system packages in .ci/run)" >&2
    exit 2
  fi
done
if [[ "$(id -u)" != 0 ]]; then
  echo "cluster-run: needs root for network and mount namespaces" >&2
  exit 2
fi

# The inference image ships the onnxruntime library from the pinned PyPI wheel; the pods get the
# same wheel's library (installed once into .tools).
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/install-onnxruntime.sh)}"
export ORT_DYLIB_PATH

clusterrun() { PYTHONPATH="$ROOT/deploy/checks" "$PYTHON" -m clusterrun "$@"; }
trap 'clusterrun cleanup' EXIT
clusterrun run --bin-dir "$BIN_DIR" --tools "$TOOLS/bin" "$@"
