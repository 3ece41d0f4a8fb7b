#!/usr/bin/env bash
# Offline verification of everything that deploys the harness, with the real tools (installed
# into ./.tools by scripts/install-deploy-tools.sh). No cluster and no Docker daemon needed.
#
#   scripts/install-deploy-tools.sh && scripts/verify-deploy.sh
#   scripts/verify-deploy.sh --update   # regenerate k8s/optional/monitoring/ from its sources
#
# What it checks:
#   - Dockerfile: hadolint; its --bin names are the workspace's binaries, its COPY sources are
#     in the build context (.dockerignore), every image the manifests use is one of its targets
#   - k8s/: every manifest against the Kubernetes OpenAPI schemas of 1.33 and 1.37, strictly
#     (unknown fields are errors; a kind without a schema is an error unless it is an allowed
#     CRD: ScaledObject, ServiceMonitor); generated ConfigMaps up to date and byte-identical
#   - rules: promtool check rules, promtool test rules (unit tests), Prometheus configs
#   - dashboard: every PromQL expression parsed by promtool (Prometheus 2.42), job names known,
#     type-checked against @grafana/schema with tsc
#   - Helm chart: helm lint --strict and helm template for every autoscaling mode with
#     monitoring on and off (CI-only stub subcharts stand in for prometheus/grafana/loki),
#     every render schema-validated; scaler modes mutually exclusive; an invalid mode refused
#     with a clear message; dashboard and rules embedded byte for byte; the chart's Prometheus
#     configuration checked by promtool; k8s/ and the chart agree on env, ports and probes;
#     minReplicas=0 renders scale to zero for predictive and keda and is refused for hpa
#
# Ends with `deploy checks: N passed, M failed`; exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="$ROOT/.tools"
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$PATH"
PYTHON="$TOOLS/venv/bin/python"
CHART="$ROOT/helm/inference-metrics"
DASHBOARD="$CHART/dashboards/inference-harness.json"
GENERATED_DIR="$ROOT/k8s/optional/monitoring"
K8S_VERSIONS=(1.33.0 1.37.0)
ALLOWED_SCHEMALESS_KINDS=(ScaledObject ServiceMonitor)
MODES=(hpa predictive keda none)
RELEASE=harness
NAMESPACE=inference-harness

deploycheck() { "$PYTHON" "$ROOT/deploy/checks/deploycheck.py" "$@"; }

for tool in helm kubernetes-validate hadolint promtool "$TOOLS/node/node_modules/.bin/tsc" "$PYTHON"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "verify-deploy: $tool not found; run scripts/install-deploy-tools.sh first" >&2
    exit 2
  fi
done

if [[ "${1:-}" == "--update" ]]; then
  deploycheck generate "$GENERATED_DIR"
  exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0

# check NAME COMMAND...: one named check; its output is shown only when it fails.
check() {
  local name="$1"
  shift
  local log="$WORK/check.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    tail -n 40 "$log" | sed 's/^/      /'
  fi
}

# expect_failure PATTERN COMMAND...: the command must fail, saying PATTERN.
expect_failure() {
  local pattern="$1"
  shift
  local out
  if out="$("$@" 2>&1)"; then
    echo "expected a failure, but the command succeeded"
    return 1
  fi
  if ! grep -qF -- "$pattern" <<<"$out"; then
    echo "failed without saying: $pattern"
    echo "$out"
    return 1
  fi
  echo "refused as expected: $(grep -F -- "$pattern" <<<"$out" | head -n1)"
}

# kube_validate FILE: strict schema validation against every K8S_VERSIONS. A kind without a
# schema fails, except the allowed CRDs.
kube_validate() {
  local file="$1" out status=0 kind
  local args=(--strict --quiet)
  for version in "${K8S_VERSIONS[@]}"; do args+=(-k "$version"); done
  out="$(kubernetes-validate "${args[@]}" "$file" 2>&1)" || status=$?
  echo "$out"
  [[ $status -eq 0 ]] || return 1
  while read -r kind; do
    [[ -z "$kind" ]] && continue
    if [[ " ${ALLOWED_SCHEMALESS_KINDS[*]} " != *" $kind "* ]]; then
      echo "no schema for kind $kind, which is not an allowed CRD"
      return 1
    fi
  done < <(grep -o "Couldn't find schema for kind [A-Za-z]*" <<<"$out" | awk '{print $NF}' | sort -u)
  grep -q . "$file" || { echo "empty file"; return 1; }
  echo "$file: valid against Kubernetes ${K8S_VERSIONS[*]}"
}

# promtool_config FILE: promtool check config; Kubernetes discovery blocks are checked by
# deploycheck.py first, because Debian's promtool is built without Kubernetes discovery.
promtool_config() {
  local source="$1" dir="$WORK/promcfg-$RANDOM"
  deploycheck prometheus-config "$source" "$dir" && promtool check config "$dir/prometheus.yml"
}

echo "== Container images"
check "Dockerfile: hadolint" hadolint "$ROOT/Dockerfile"

echo "== Plain manifests (k8s/)"
generated_up_to_date() {
  deploycheck generate "$WORK/generated" >/dev/null &&
    diff -u "$GENERATED_DIR/grafana-dashboard.yaml" "$WORK/generated/grafana-dashboard.yaml" &&
    diff -u "$GENERATED_DIR/prometheus-config.yaml" "$WORK/generated/prometheus-config.yaml"
}
check "generated k8s/optional/monitoring/ is up to date (scripts/verify-deploy.sh --update)" \
  generated_up_to_date
while IFS= read -r manifest; do
  check "schema: ${manifest#"$ROOT/"}" kube_validate "$manifest"
done < <(find "$ROOT/k8s" -name '*.yaml' | sort)
check "k8s/: dashboard ConfigMap byte-identical to the dashboard source" \
  deploycheck identity --dashboard "$GENERATED_DIR/grafana-dashboard.yaml"
check "k8s/: Prometheus ConfigMap rules byte-identical to the rule sources" \
  deploycheck identity --rules "$GENERATED_DIR/prometheus-config.yaml"
sed 's/^  revisionHistoryLimit: 3/  revisionHistoryLimit: 3\n  replicaz: 2/' "$ROOT/k8s/30-dispatcher.yaml" >"$WORK/bad.yaml"
check "control: the schema check rejects an unknown field" \
  expect_failure "'replicaz' was unexpected" kube_validate "$WORK/bad.yaml"

echo "== Prometheus rules and configuration"
check "promtool check rules" promtool check rules "$CHART"/rules/*.yaml
check "promtool test rules (unit tests)" promtool test rules "$CHART"/rules/tests/*.yaml
check "promtool check config: deploy/prometheus/prometheus-local.yml" \
  promtool check config "$ROOT/deploy/prometheus/prometheus-local.yml"
check "promtool check config: deploy/prometheus/prometheus-kubernetes.yml" \
  promtool_config "$ROOT/deploy/prometheus/prometheus-kubernetes.yml"

echo "== Grafana dashboard"
dashboard_promql() {
  deploycheck dashboard-rules "$DASHBOARD" "$WORK/dashboard-rules.yaml" &&
    promtool check rules "$WORK/dashboard-rules.yaml"
}
check "dashboard PromQL parses in Prometheus 2.42 and names known jobs" dashboard_promql
# ts_check DIR DASHBOARD: scripts/dashboard-check/ assembled in DIR around DASHBOARD, then tsc.
ts_check() {
  local dir="$1" dashboard="$2"
  mkdir -p "$dir" &&
    cp "$ROOT"/scripts/dashboard-check/{tsconfig.json,check.ts,schema.ts} "$dir/" &&
    ln -sf "$TOOLS/node/node_modules" "$dir/node_modules" &&
    ln -sf "$dashboard" "$dir/inference-harness.json" &&
    deploycheck literal-ts "$dashboard" "$dir/literal.ts" >/dev/null &&
    "$TOOLS/node/node_modules/.bin/tsc" -p "$dir/tsconfig.json"
}
check "dashboard type-checks against @grafana/schema (tsc --noEmit)" ts_check "$WORK/ts" "$DASHBOARD"
sed 's/"mode": "absolute"/"mode": "absolut"/' "$DASHBOARD" >"$WORK/bad-dashboard.json"
check "control: the type check rejects an unknown threshold mode" \
  expect_failure "Type '\"absolut\"' is not assignable" ts_check "$WORK/ts-bad" "$WORK/bad-dashboard.json"

echo "== Helm chart"
# A temporary copy of the chart whose charts/ holds CI-only stubs of the monitoring subcharts:
# the real ones cannot be downloaded here, and Chart.yaml keeps the real dependency entries.
STUB_CHART="$WORK/chart/inference-metrics"
mkdir -p "$WORK/chart"
cp -r "$CHART" "$STUB_CHART"
rm -rf "$STUB_CHART/charts"
"$PYTHON" - "$STUB_CHART" <<'PY'
import re, sys, pathlib, yaml
chart = pathlib.Path(sys.argv[1])
for dep in yaml.safe_load((chart / "Chart.yaml").read_text())["dependencies"]:
    lowest = re.search(r">=\s*([0-9]+\.[0-9]+\.[0-9]+)", dep["version"]).group(1)
    stub = chart / "charts" / dep["name"]
    stub.mkdir(parents=True)
    (stub / "Chart.yaml").write_text(
        "apiVersion: v2\n"
        f"name: {dep['name']}\n"
        f"version: {lowest}\n"
        "description: CI-only stub standing in for the real chart in offline checks.\n"
        "type: application\n")
PY
stubs_in_place() {
  local out
  out="$(helm dependency list "$STUB_CHART")" && echo "$out" &&
    [[ "$(grep -cE '(unpacked|ok)[[:space:]]*$' <<<"$out")" -eq 3 ]]
}
check "stub subcharts stand in for every dependency (helm dependency list)" stubs_in_place

# render_and_validate OUT [helm args...]: helm template into OUT, then the schema check.
render_and_validate() {
  local out="$1"
  shift
  helm template "$RELEASE" "$STUB_CHART" --namespace "$NAMESPACE" "$@" >"$out" && kube_validate "$out"
}

for mode in "${MODES[@]}"; do
  for monitoring in on off; do
    args=(--set "autoscaling.mode=$mode")
    if [[ $monitoring == on ]]; then
      args+=(--set prometheus.enabled=true --set grafana.enabled=true --set loki.enabled=true)
    else
      # An external Prometheus (as in k8s/README.md) for the modes that read from one.
      args+=(--set prometheus.enabled=false --set grafana.enabled=false --set loki.enabled=false
        --set monitoring.prometheusUrl=http://prometheus-server.monitoring.svc:80)
    fi
    out="$WORK/render-$mode-$monitoring.yaml"
    check "helm lint --strict: mode=$mode monitoring=$monitoring" helm lint --strict "$STUB_CHART" "${args[@]}"
    check "helm template + schema: mode=$mode monitoring=$monitoring" render_and_validate "$out" "${args[@]}"
  done
done

echo "== Autoscaling modes are mutually exclusive"
SCALERS=(HorizontalPodAutoscaler ScaledObject "Deployment/$RELEASE-autoscaler" Role RoleBinding ServiceAccount)
without() { local keep=() s; for s in "${SCALERS[@]}"; do [[ " $* " == *" $s "* ]] || keep+=("$s"); done; echo "${keep[@]}"; }
for monitoring in on off; do
  # shellcheck disable=SC2046 # word splitting of the kind lists is intended
  check "mode=hpa renders the HPA and no other scaler (monitoring=$monitoring)" \
    deploycheck kinds "$WORK/render-hpa-$monitoring.yaml" --expect HorizontalPodAutoscaler \
    --forbid $(without HorizontalPodAutoscaler) --replicas "$RELEASE-inference=none"
  # shellcheck disable=SC2046
  check "mode=predictive renders the autoscaler with its RBAC and no other scaler (monitoring=$monitoring)" \
    deploycheck kinds "$WORK/render-predictive-$monitoring.yaml" \
    --expect "Deployment/$RELEASE-autoscaler" Role RoleBinding ServiceAccount \
    --forbid HorizontalPodAutoscaler ScaledObject --replicas "$RELEASE-inference=none"
  # shellcheck disable=SC2046
  check "mode=keda renders the ScaledObject and no other scaler (monitoring=$monitoring)" \
    deploycheck kinds "$WORK/render-keda-$monitoring.yaml" --expect ScaledObject \
    --forbid $(without ScaledObject) --replicas "$RELEASE-inference=none"
  # shellcheck disable=SC2046
  check "mode=none renders no scaler and a fixed replica count (monitoring=$monitoring)" \
    deploycheck kinds "$WORK/render-none-$monitoring.yaml" --forbid $(without) \
    --replicas "$RELEASE-inference=1"
done
check "an invalid autoscaling.mode is refused by values.schema.json" \
  expect_failure "value must be one of 'hpa', 'predictive', 'keda', 'none'" \
  helm template "$RELEASE" "$STUB_CHART" --set autoscaling.mode=both
check "an invalid autoscaling.mode is refused by the templates with a clear message" \
  expect_failure "autoscaling.mode must be one of hpa, predictive, keda or none (got \"both\")" \
  helm template "$RELEASE" "$STUB_CHART" --set autoscaling.mode=both --skip-schema-validation
check "mode=keda without any Prometheus is refused with a clear message" \
  expect_failure "autoscaling.mode=keda reads the queue length from Prometheus" \
  helm template "$RELEASE" "$STUB_CHART" --set autoscaling.mode=keda --set prometheus.enabled=false \
  --set grafana.enabled=false

echo "== Scale to zero (autoscaling.minReplicas=0)"
# zero_render FILE MODE: in a minReplicas=0 render, KEDA's ScaledObject goes to 0 with an
# activation threshold, or the predictive autoscaler gets MIN_WARM_REPLICAS=0; either way the
# dispatcher stays ready with no inference pod.
zero_render() {
  "$PYTHON" - "$@" <<'PY'
import sys, yaml
path, mode = sys.argv[1:3]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
def env(suffix):
    d = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(suffix))
    return {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0].get("env", [])}
if env("-dispatcher").get("READY_WITHOUT_ENDPOINTS") != "true":
    sys.exit("dispatcher: READY_WITHOUT_ENDPOINTS is not \"true\"")
if mode == "keda":
    spec = next(d for d in docs if d["kind"] == "ScaledObject")["spec"]
    meta = spec["triggers"][0]["metadata"]
    if spec["minReplicaCount"] != 0 or meta.get("activationThreshold") != "0":
        sys.exit(f"ScaledObject: minReplicaCount {spec['minReplicaCount']}, trigger {meta}")
elif env("-autoscaler").get("MIN_WARM_REPLICAS") != "0":
    sys.exit(f"autoscaler env: {env('-autoscaler')}")
print(f"mode={mode}: scales to zero, and the dispatcher stays ready with no inference pod")
PY
}
for mode in predictive keda; do
  check "helm template + schema: mode=$mode minReplicas=0" \
    render_and_validate "$WORK/render-$mode-zero.yaml" --set "autoscaling.mode=$mode" \
    --set autoscaling.minReplicas=0 --set prometheus.enabled=true
  check "mode=$mode minReplicas=0 scales to zero and activates on queued work" \
    zero_render "$WORK/render-$mode-zero.yaml" "$mode"
done
check "control: minReplicas=1 does not render the scale-to-zero settings" \
  expect_failure "READY_WITHOUT_ENDPOINTS is not" zero_render "$WORK/render-keda-on.yaml" keda
check "mode=hpa minReplicas=0 is refused by values.schema.json" \
  expect_failure "at '/autoscaling/minReplicas': minimum: got 0, want 1" \
  helm template "$RELEASE" "$STUB_CHART" --set autoscaling.minReplicas=0
check "mode=hpa minReplicas=0 is refused by the templates with a clear message" \
  expect_failure "the Kubernetes HPA cannot scale to zero" \
  helm template "$RELEASE" "$STUB_CHART" --set autoscaling.minReplicas=0 --skip-schema-validation

echo "== Chart monitoring and consistency"
check "monitoring=on: dashboard and rules embedded byte for byte" \
  deploycheck identity --dashboard --rules "$WORK/render-hpa-on.yaml"
check "monitoring=off: no dashboard, datasource or Prometheus ConfigMap" \
  deploycheck kinds "$WORK/render-hpa-off.yaml" \
  --forbid "ConfigMap/$RELEASE-dashboard" "ConfigMap/$RELEASE-grafana-datasources" "ConfigMap/$RELEASE-prometheus-config"
check "promtool check config: the chart's rendered Prometheus configuration" \
  promtool_config "$WORK/render-predictive-on.yaml"
check "helm template + schema: load tester enabled, predictive mode" \
  render_and_validate "$WORK/render-full.yaml" --set loadTester.enabled=true --set autoscaling.mode=predictive
check "k8s/ and the chart agree on env vars, ports, args, probes and security contexts" \
  deploycheck consistency "$ROOT/k8s" "$WORK/render-full.yaml"
mapfile -t manifests < <(find "$ROOT/k8s" -name '*.yaml' | sort)
check "Dockerfile builds the workspace's binaries from its build context; every image used is a target" \
  deploycheck dockerfile "${manifests[@]}" "$WORK/render-full.yaml"

echo
echo "deploy checks: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
