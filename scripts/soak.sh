#!/usr/bin/env bash
# Soak test: the demo at a steady load for an hour (by default), in release mode, with its
# resident memory and open file descriptors printed every minute and the growth trend checked
# (at most 5 % over the run, after a warm-up quarter). CI runs the same test for 2 minutes.
#
#   scripts/soak.sh [SECONDS] [RATE]      e.g. scripts/soak.sh 3600 4
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-3600}"
rate="${2:-4}"
SOAK_SECONDS="$seconds" SOAK_SAMPLE_SECONDS=60 SOAK_RATE="$rate" \
  cargo test --release --locked -p pipeline --test soak -- --nocapture
