#!/usr/bin/env bash
# Installs onnxruntime from PyPI into ./.tools (git-ignored) and prints the path of its shared
# library, for ORT_DYLIB_PATH:
#
#   export ORT_DYLIB_PATH="$(scripts/install-onnxruntime.sh)"          # tests, the service
#   scripts/install-onnxruntime.sh --bench                              # also the bench's peer
#
#   .tools/ort         the onnxruntime wheel alone (pip --target, no dependencies): the library
#   .tools/bench-venv  with --bench: a venv with onnxruntime, numpy, pillow, fastapi, uvicorn (uvloop, httptools),
#                      what `cargo bench -p inference` runs its Python peer with (PYTHON=...)
#
# Pinned to the version the container image ships (ORT_VERSION in the Dockerfile). Idempotent:
# what is already installed at the pinned version is kept. Logs go to stderr, the path to stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
ORT_VERSION="$(sed -n 's/^ARG ORT_VERSION=//p' "$ROOT/Dockerfile")"
# The bench peer's packages, pinned for repeatable figures.
BENCH_PACKAGES=(numpy==2.4.6 pillow==13.0.0 fastapi==0.165.0 uvicorn==0.54.0 uvloop==0.23.0 httptools==0.9.0)

log() { printf '[install-onnxruntime] %s\n' "$*" >&2; }

[[ -n "$ORT_VERSION" ]] || { log "no ARG ORT_VERSION in the Dockerfile"; exit 1; }

library="$TOOLS/ort/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
if [[ -f "$library" ]]; then
  log "onnxruntime $ORT_VERSION: already installed"
else
  log "onnxruntime $ORT_VERSION: installing into $TOOLS/ort"
  rm -rf "$TOOLS/ort"
  python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-deps \
    --target "$TOOLS/ort" "onnxruntime==$ORT_VERSION" >&2
fi
[[ -f "$library" ]] || { log "the wheel has no $library"; exit 1; }

if [[ "${1:-}" == "--bench" ]]; then
  venv="$TOOLS/bench-venv"
  if "$venv/bin/python" -c "import onnxruntime, numpy, PIL, fastapi, uvicorn
assert onnxruntime.__version__ == '$ORT_VERSION'" 2>/dev/null; then
    log "bench venv: already installed"
  else
    log "bench venv: installing onnxruntime $ORT_VERSION ${BENCH_PACKAGES[*]} into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
      "onnxruntime==$ORT_VERSION" "${BENCH_PACKAGES[@]}" >&2
  fi
  log "run the bench with: PYTHON=$venv/bin/python ORT_DYLIB_PATH=$library cargo bench -p inference"
fi

printf '%s\n' "$library"
