#!/usr/bin/env bash
# Runs the benchmarks (bench/) after the usual setup, plus nginx for the warm-path comparison.
# Bounded: each load lasts FC_BENCH_SECONDS (default 5) and targets loopback or the Docker bridge.
#   bash scripts/bench.sh                 # all
#   bash scripts/bench.sh proxy-libs      # one of: proxy-libs warm-path cold-start
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
  echo "[bench] installing nginx-light (for the warm-path comparison)..." >&2
  # Debian starts the service on install where it can; the benchmark runs its own instance.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light curl >/dev/null
  (service nginx stop || true) >/dev/null 2>&1
fi
export PATH="$PATH:/usr/sbin"
npx tsc -p tsconfig.bench.json
exec node dist-bench/bench/run.js "$@"
