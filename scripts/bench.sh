#!/usr/bin/env bash
# Runs the benchmarks (bench/) after the usual setup, plus nginx for the warm-path comparison and
# a font for the plots. Each writes bench/results/<name>.md (and its plots, .png/.svg/.csv), then
# bench/results/latest.md from every section there is. Every load is bounded in time and targets
# loopback or the Docker bridge.
#   bash scripts/bench.sh                 # the quick ones: proxy-libs warm-path cold-start (FC_BENCH_SECONDS, 5 s a row)
#   bash scripts/bench.sh proxy-libs      # any of those by name, or:
#   bash scripts/bench.sh autoscale       # the paper's figures 3 and 4: 5 runs of FC_BENCH_FIG_SECONDS (60) each
#   bash scripts/bench.sh recycle         # lifespan 10 s under 50 connections, FC_BENCH_RECYCLE_SECONDS (60)
#   bash scripts/bench.sh metabolism      # FC_BENCH_METABOLISM_STARTS (5000) starts, at most FC_BENCH_METABOLISM_MAX_SECONDS (1800)
#   bash scripts/bench.sh freeze          # FC_BENCH_FREEZE_RUNS (30) thaws of a frozen container (freezeAfter 1 s) vs warm and cold requests
#   bash scripts/bench.sh burst           # FC_BENCH_BURST_RUNS (10) bursts of FC_BENCH_BURST_CONCURRENCY (100) first requests to a new app vs single cold starts
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One benchmark at a time on this machine: two loads at once would measure each other.
exec 9>"${TMPDIR:-/tmp}/fastcontainer-bench.lock"
if ! flock -n 9; then
  echo "[bench] another benchmark is running on this machine; waiting for it..." >&2
  flock 9
fi
bash scripts/setup.sh
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
  echo "[bench] installing nginx-light (for the warm-path comparison)..." >&2
  # Debian starts the service on install where it can; the benchmark runs its own instance.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light curl >/dev/null
  (service nginx stop || true) >/dev/null 2>&1
fi
if ! fc-match -f '%{file}' sans-serif 2>/dev/null | grep -qiE '\.(ttf|otf)$' && ! [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  echo "[bench] installing fonts-dejavu-core (the plots' text)..." >&2
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core fontconfig >/dev/null
fi
export PATH="$PATH:/usr/sbin"
npx tsc -p tsconfig.bench.json
exec node dist-bench/bench/run.js "$@"
