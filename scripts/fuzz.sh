#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a bounded time each and fails on any finding.
#
#   scripts/fuzz.sh                    # every target, 60 s each
#   scripts/fuzz.sh 3600 workload      # one target for an hour
#   scripts/fuzz.sh 30 enqueue_body image_decode
#
# Needs cargo-fuzz (installed here if missing) and the nightly toolchain for the sanitizer
# flags; without a nightly toolchain it runs stable with RUSTC_BOOTSTRAP=1. Builds go to
# fuzz/target (never the workspace's target/: sanitizer builds share nothing with it).
#
# Inputs: the committed seeds in fuzz/seeds/<target>/ (read only) plus the growing corpus in
# fuzz/corpus/<target>/ (git-ignored), where libFuzzer writes every new interesting input, so a
# later run starts from what earlier runs found. Findings are written to
# fuzz/artifacts/<target>/ (crash-*, oom-*, timeout-*) and named in the output; replay one with
# `cargo +nightly fuzz run <target> <artifact>`. Per-target logs: fuzz/target/logs/.
set -euo pipefail

seconds=${1:-60}
if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
shift $(($# > 0 ? 1 : 0))

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir=$root/fuzz
export CARGO_TARGET_DIR=$fuzz_dir/target
logs=$CARGO_TARGET_DIR/logs

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    # cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation) that only nightly
    # accepts; RUSTC_BOOTSTRAP lets a stable compiler take them.
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi

mapfile -t known < <("${fuzz[@]}" list --fuzz-dir "$fuzz_dir")
if [[ ${#known[@]} -eq 0 ]]; then
    echo "cargo fuzz list found no targets in $fuzz_dir" >&2
    exit 1
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${known[@]}")
for target in "${targets[@]}"; do
    if [[ ! " ${known[*]} " == *" $target "* ]]; then
        echo "unknown target '$target'; the targets are: ${known[*]}" >&2
        exit 2
    fi
done

# Longest input libFuzzer may generate: a few times the largest seed of each target.
max_len() {
    case $1 in
        image_decode) echo 16384 ;;
        enqueue_body) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "${fuzz[*]}, ${seconds}s per target"
started=$SECONDS
"${fuzz[@]}" build --fuzz-dir "$fuzz_dir"
echo "== build: $((SECONDS - started)) s"

mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
    corpus=$fuzz_dir/corpus/$target
    log=$logs/$target.log
    mkdir -p "$corpus"
    echo "== $target: ${seconds}s (log: ${log#"$root"/})"
    status=0
    "${fuzz[@]}" run --fuzz-dir "$fuzz_dir" "$target" "$corpus" "$fuzz_dir/seeds/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -rss_limit_mb=2048 \
        -timeout=25 -print_final_stats=1 >"$log" 2>&1 || status=$?

    # The final stats when the run ended normally, else the last status line ("#N ...").
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [[ -n $execs ]] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    inputs=$(find "$corpus" -type f | wc -l)
    line="$target: ${execs:-0} executions (${rate:-?}/s), corpus $inputs inputs"
    if [[ $status -eq 0 ]]; then
        summary+=("ok      $line")
        echo "   $line"
    else
        artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
        failed+=("$target")
        summary+=("FAILED  $line; ${artifact:-no artifact, see ${log#"$root"/}}")
        echo "   FAILED (exit $status): ${artifact:-no artifact written}" >&2
        # The panic message (on the line after "panicked at") or libFuzzer's diagnosis.
        grep -E -A 2 -m 3 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|ALARM' "$log" |
            head -n 12 >&2 || true
    fi
done

echo "== summary (${seconds}s per target)"
printf '   %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== findings in: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
