#!/usr/bin/env bash
# Runs the benchmarks (bench/) after the usual setup, plus nginx, HAProxy and Caddy (Debian's) for
# the warm-path comparison and a font for the plots. Each writes bench/results/<name>.md (and its plots, .png/.svg/.csv), then
# bench/RESULTS.md from every section there is. Every load is bounded in time and targets
# loopback or the Docker bridge.
#   bash scripts/bench.sh                 # those with performance goals: warm-path cold-start freeze burst many-tenants (~15 min)
#   bash scripts/bench.sh all             # every one below (about an hour more: autoscale, metabolism)
#   bash scripts/bench.sh proxy-libs      # any of those by name, or:
#   bash scripts/bench.sh autoscale       # the paper's figures 3 and 4: 5 runs of FC_BENCH_FIG_SECONDS (60) each
#   bash scripts/bench.sh recycle         # lifespan 10 s under 50 connections, FC_BENCH_RECYCLE_SECONDS (60)
#   bash scripts/bench.sh metabolism      # FC_BENCH_METABOLISM_STARTS (5000) starts, at most FC_BENCH_METABOLISM_MAX_SECONDS (1800)
#   bash scripts/bench.sh freeze          # FC_BENCH_FREEZE_RUNS (30) thaws of a frozen container (freezeAfter 1 s) vs warm and cold requests
#   bash scripts/bench.sh burst           # FC_BENCH_BURST_RUNS (10) bursts of FC_BENCH_BURST_CONCURRENCY (100) first requests to a new app vs single cold starts
#   bash scripts/bench.sh many-tenants    # FC_BENCH_TENANTS (1000,10000,100000) apps in a Redis of its own: FC_BENCH_TENANTS_RUNS (5) proxy
#                                         # processes sync each (time, RSS, lookups), FC_BENCH_TENANTS_WRITES (600) route changes to
#                                         # FC_BENCH_TENANTS_PROXIES (4) proxies; then the warm path beside FC_BENCH_TENANTS_CONTAINERS (200,
#                                         # 0 skips it) live containers vs 1; about 3 minutes
#   bash scripts/bench.sh slow-clients    # a normal client's p99 alone vs beside FC_BENCH_SLOW_CLIENTS (100) uploads at 700 B/s,
#                                         # FC_BENCH_SLOW_SECONDS (10) per phase; about 40 s
#   bash scripts/bench.sh php-image       # fastcontainer/php vs images/php of FC_BENCH_PHP_BEFORE_COMMIT (d8d5256, before WordPress's
#                                         # extensions), built as fastcontainer-bench/php-before: size, and FC_BENCH_PHP_RUNS (15)
#                                         # cold starts each through `up` and on the engine; the before-image is removed at the
#                                         # end unless FC_BENCH_KEEP_BEFORE_IMAGE=1; about 3 minutes with its build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One benchmark at a time on this machine: two loads at once would measure each other.
exec 9>"${TMPDIR:-/tmp}/fastcontainer-bench.lock"
if ! flock -n 9; then
  echo "[bench] another benchmark is running on this machine; waiting for it..." >&2
  flock 9
fi
bash scripts/setup.sh
# The reverse proxies of the warm-path comparison. Debian starts each one's service on install
# where it can; the benchmark runs its own instances (generated configs, free ports), so the
# service is stopped at once.
bench_proxy() {
  local cmd=$1 pkg=$2
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then
    echo "[bench] installing $pkg (for the warm-path comparison)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
    }
    (service "$cmd" stop || true) >/dev/null 2>&1
  fi
}
bench_proxy nginx nginx-light
bench_proxy haproxy haproxy
bench_proxy caddy caddy
if ! fc-match -f '%{file}' sans-serif 2>/dev/null | grep -qiE '\.(ttf|otf)$' && ! [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  echo "[bench] installing fonts-dejavu-core (the plots' text)..." >&2
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core fontconfig >/dev/null
fi
export PATH="$PATH:/usr/sbin"
npx tsc -p tsconfig.bench.json
exec node dist-bench/bench/run.js "$@"
