#!/usr/bin/env bash
# Installs Triton's Python HTTP client (tritonclient[http]) from PyPI into a virtualenv of its
# own, ./.tools/tritonclient (git-ignored), for inference/tests/tritonclient.rs: the official
# client of the Open Inference Protocol, run against our inference service.
#
# Idempotent: when the pinned versions are already installed the script returns at once.
# Prints nothing on stdout but the virtualenv's python, so callers can capture it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TRITONCLIENT_VENV:-$ROOT/.tools/tritonclient}"

TRITONCLIENT_VERSION="2.73.0"
NUMPY_VERSION="2.3.3"

log() { printf '[install-tritonclient] %s\n' "$*" >&2; }

installed=""
if [[ -x "$VENV/bin/python" ]]; then
  installed="$("$VENV/bin/python" -c 'from importlib.metadata import version as v
print(v("tritonclient"), v("numpy"))' 2>/dev/null || true)"
fi
if [[ "$installed" == "$TRITONCLIENT_VERSION $NUMPY_VERSION" ]]; then
  log "tritonclient $TRITONCLIENT_VERSION: already installed in $VENV"
  echo "$VENV/bin/python"
  exit 0
fi

command -v python3 >/dev/null || { log "error: python3 is required"; exit 1; }
log "installing tritonclient[http] $TRITONCLIENT_VERSION into $VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  "tritonclient[http]==$TRITONCLIENT_VERSION" "numpy==$NUMPY_VERSION" >&2
echo "$VENV/bin/python"
