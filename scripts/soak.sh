#!/usr/bin/env bash
# Soak test: the real binaries (release builds, copied to a private directory) as separate
# processes on 127.0.0.1 at a steady load, for an hour by default. Prints each service's resident
# memory and open descriptors every minute, then per service the slope after a 10-minute warm-up
# (% per hour), the 24-hour projection and the descriptors' range, and checks that nothing was
# lost. Exits non-zero when the goal (< 2 % per hour per service, descriptors flat, missing 0)
# is missed. Details and settings: scripts/soak.py. CI runs the short in-process variant,
# pipeline/tests/soak.rs (2 minutes).
#
#   scripts/soak.sh [SECONDS] [RATE]      e.g. scripts/soak.sh 3600 4
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/soak.py "${1:-3600}" "${2:-4}"
