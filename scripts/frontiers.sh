#!/usr/bin/env bash
# The autoscaler's policies compared by their cost/violation frontiers on every trace: the three
# shipped in autoscaler/workloads/ and four generated ones (a noisy two-day diurnal, a week,
# steps, ramps; written to a temporary directory, not the repository), plus a control: the
# same noisy two-day diurnal without its bursts, which tells what the bursts do to the
# comparison (the goal is not checked on it). For each trace it runs
# `autoscaler simulate --sweep` and prints the frontiers, whether predictive's dominates the
# HPA's once the sweep has searched between grid margins (and which HPA settings it does not,
# and how many the grid alone left), the scale-event ratio at defaults and the
# forecaster's MASE; then one summary line per trace. Exits non-zero if predictive fails to
# dominate the HPA or makes more than 2× its scale events at defaults on any trace.
#
#   scripts/frontiers.sh [--out DIR] [--bin PATH] [extra simulate flags, e.g. --seed 2]
#
# DIR (default target/frontiers) receives <trace>.json and <trace>.png for each trace.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/frontiers"
BIN=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    *) break ;;
  esac
done
if [[ -z "$BIN" ]]; then
  cargo build --release --locked -p autoscaler
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/autoscaler"
fi
mkdir -p "$OUT"
TRACES="$(mktemp -d)"
trap 'rm -rf "$TRACES"' EXIT

for shape in noisy-diurnal noisy-diurnal-no-bursts weekly steps ramps; do
  "$BIN" workload --shape "$shape" --seed 1 --out "$TRACES/$shape.txt"
done
traces=(autoscaler/workloads/spike.txt autoscaler/workloads/ramp.txt
  autoscaler/workloads/diurnal.txt "$TRACES"/noisy-diurnal.txt "$TRACES"/weekly.txt
  "$TRACES"/steps.txt "$TRACES"/ramps.txt "$TRACES"/noisy-diurnal-no-bursts.txt)

summary=()
failed=0
for trace in "${traces[@]}"; do
  name="$(basename "$trace" .txt)"
  start=$(date +%s.%N)
  "$BIN" simulate --sweep --workload "$trace" --policy hpa --policy predictive \
    --policy queue --policy static:0 --json "$OUT/$name.json" --plot "$OUT/$name.png" "$@"
  took=$(echo "$(date +%s.%N) - $start" | bc)
  line=$(jq -r --arg name "$name" --arg took "$took" '
    (.comparisons[] | select(.other == "hpa")) as $c
    | "\($name): predictive dominates hpa: \($c.dominates)"
      + (if $c.dominates then "" else " (undominated hpa targets: \([$c.undominated[].knob] | map(tostring) | join(", ")))" end)
      + "; grid alone left \($c.undominatedOnGrid | length)"
      + "; scale events at defaults \($c.scaleEventRatioAtDefaults * 100 | round / 100)× hpa"
      + "; MASE \(.forecastAccuracy.mase * 1000 | round / 1000); \($took | tonumber * 10 | round / 10) s"' \
    "$OUT/$name.json")
  if [[ "$name" == noisy-diurnal-no-bursts ]]; then
    summary+=("$line (control, not a goal)")
    continue
  fi
  summary+=("$line")
  if ! jq -e '(.comparisons[] | select(.other == "hpa")) | .dominates and .scaleEventRatioAtDefaults <= 2' \
    "$OUT/$name.json" >/dev/null; then
    failed=1
  fi
done
echo
echo "== summary (JSON and PNG in $OUT)"
printf '%s\n' "${summary[@]}"
exit "$failed"
