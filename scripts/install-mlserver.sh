#!/usr/bin/env bash
# Installs Seldon MLServer and onnxruntime from PyPI into a virtualenv of their own,
# ./.tools/mlserver (git-ignored), for pipeline/tests/mlserver.rs: a third-party Open Inference
# Protocol (v2) server that the dispatcher and the load tester are tested against.
#
# Kept apart from .tools/venv (the deployment checks) because MLServer pins many packages of its
# own. Idempotent: when the pinned versions are already installed the script returns at once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MLSERVER_VENV:-$ROOT/.tools/mlserver}"

MLSERVER_VERSION="1.7.1"
ONNXRUNTIME_VERSION="1.22.1"
PILLOW_VERSION="11.3.0"

log() { printf '[install-mlserver] %s\n' "$*"; }

installed=""
if [[ -x "$VENV/bin/python" ]]; then
  installed="$("$VENV/bin/python" -c 'from importlib.metadata import version as v
print(v("mlserver"), v("onnxruntime"), v("pillow"))' 2>/dev/null || true)"
fi
if [[ "$installed" == "$MLSERVER_VERSION $ONNXRUNTIME_VERSION $PILLOW_VERSION" ]]; then
  log "mlserver $MLSERVER_VERSION, onnxruntime $ONNXRUNTIME_VERSION: already installed in $VENV"
  exit 0
fi

command -v python3 >/dev/null || { log "error: python3 is required" >&2; exit 1; }
log "installing mlserver $MLSERVER_VERSION and onnxruntime $ONNXRUNTIME_VERSION into $VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "mlserver==$MLSERVER_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" "pillow==$PILLOW_VERSION"
log "$("$VENV/bin/mlserver" --version 2>/dev/null || echo 'mlserver installed')"
