#!/usr/bin/env bash
# The chaos suite (chaos/): faults against the real stack with real clients, CHAOS.md at the root.
# Holds the machine's benchmark lock (one load at a time: a benchmark and a chaos run would
# measure each other). Exits non-zero when a scenario misses its pass mark.
#   bash scripts/chaos.sh                    # every scenario (a few minutes)
#   bash scripts/chaos.sh --only redis-stall # some, by name (--list names them)
#   CHAOS_QUICK=1 bash scripts/chaos.sh      # the quick set, shorter windows (CI)
#   CHAOS_SKIP_SETUP=1                       # skip scripts/setup.sh (dist/ must be built)
#   CHAOS_ENV="K=V ..."                      # more environment for every role of the stack
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec 9>"${TMPDIR:-/tmp}/fastcontainer-bench.lock"
if ! flock -n 9; then
  echo "[chaos] a benchmark or chaos run holds the machine; waiting for it..." >&2
  flock 9
fi
if [ "${CHAOS_SKIP_SETUP:-0}" != "1" ]; then
  bash scripts/setup.sh
fi
export PATH="$PATH:/usr/sbin"
npx tsc -p tsconfig.chaos.json
exec node dist-chaos/chaos/run.js "$@"
