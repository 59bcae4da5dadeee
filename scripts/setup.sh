#!/usr/bin/env bash
# Sets up everything fastcontainer needs on a Debian (bookworm) machine, idempotently: the Debian
# packages, a running Docker engine and Redis, the npm dependencies, the build, and the example
# images. Each step checks first and does only what is missing, so running it again is cheap.
#
#   bash scripts/setup.sh            # everything
#   FC_SETUP_SKIP_IMAGES=1 bash scripts/setup.sh   # all but the images
#
# Services it starts (dockerd, redis-server) keep running as daemons; their logs go to .state/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FC_SETUP_STATE_DIR:-$REPO/.state}"
mkdir -p "$STATE"
cd "$REPO"

step() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { printf '%ss' "$(( $(date +%s) - $1 ))"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: installing packages and starting dockerd need root"
  SUDO=(sudo)
fi

# --- Node ----------------------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "Node.js >= 20.18 is needed (not found)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' \
  || die "Node.js >= 20.18 is needed (found $(node --version))"

# --- Debian packages -----------------------------------------------------------------------------
PACKAGES=(docker.io redis-server redis-sentinel mmdebstrap busybox-static ca-certificates iptables iproute2 curl)
# shellcheck source=lib/debian-packages.sh
. "$REPO/scripts/lib/debian-packages.sh"
ensure_debian_packages "$STATE/apt.log" "${PACKAGES[@]}"
[ "${#DEBIAN_INSTALLED[@]}" -gt 0 ] || step "Debian packages present"

bash scripts/setup-browser.sh >>"$STATE/apt.log" 2>&1 || die "installing chromium failed (log: $STATE/apt.log)"
bash "$REPO/scripts/setup-tls.sh"

# --- Docker engine -------------------------------------------------------------------------------
if docker info >/dev/null 2>&1; then
  step "Docker engine answers"
else
  t0=$(date +%s)
  step "starting dockerd (log: $STATE/dockerd.log)..."
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl start docker
  else
    "${SUDO[@]}" setsid nohup dockerd >"$STATE/dockerd.log" 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.25
  done
  docker info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd.log" >&2 || true; die "dockerd did not come up within 30 s (log: $STATE/dockerd.log)"; }
  step "dockerd up in $(elapsed "$t0")"
fi

# --- Redis ---------------------------------------------------------------------------------------
# The CMDB. Append-only persistence (fsync every second): a Redis that restarts keeps its data, so
# the sites do not vanish with it (a Redis that comes back empty makes every app unknown until
# they are created again). A Redis already answering gets the same settings at run time.
REDIS_PORT="${FC_SETUP_REDIS_PORT:-6379}"
if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  step "Redis answers on 127.0.0.1:$REDIS_PORT"
else
  step "starting redis-server on 127.0.0.1:$REDIS_PORT (log: $STATE/redis.log, data: $STATE/appendonlydir)..."
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly yes --appendfsync everysec \
    --logfile "$STATE/redis.log" --dir "$STATE" >/dev/null
  for _ in $(seq 1 40); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.25
  done
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "redis-server did not answer within 10 s (log: $STATE/redis.log)"
  step "Redis up"
fi
if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config get appendonly | tail -1)" != "yes" ]; then
  # Turning AOF on at run time writes the current data set first (a background rewrite).
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set appendfsync everysec >/dev/null
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set appendonly yes >/dev/null || die "could not turn on append-only persistence"
  step "Redis: append-only persistence turned on (appendfsync everysec)"
else
  step "Redis: append-only persistence on"
fi
# The redis-sentinel package starts a system sentinel on 26379 where services may start. The
# tests run their own sentinels on free ports, and an operator enables a sentinel on purpose (see
# the HA docs): the package's default instance is stopped and disabled.
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  if systemctl is-enabled redis-sentinel >/dev/null 2>&1 || systemctl is-active redis-sentinel >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl disable --now redis-sentinel >/dev/null 2>&1 || true
    step "stopped and disabled the package's default redis-sentinel service"
  fi
elif [ -f /run/sentinel/redis-sentinel.pid ] && kill -0 "$(cat /run/sentinel/redis-sentinel.pid)" 2>/dev/null; then
  "${SUDO[@]}" kill "$(cat /run/sentinel/redis-sentinel.pid)" || true
  step "stopped the package's default redis-sentinel"
fi

# --- npm dependencies and build ------------------------------------------------------------------
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ -f node_modules/.fc-lock-sha256 ] && [ "$(cat node_modules/.fc-lock-sha256)" = "$lock_sum" ]; then
  step "npm dependencies up to date"
else
  t0=$(date +%s)
  step "npm ci (installs the locked dependencies)..."
  npm ci --no-audit --no-fund --loglevel=error >"$STATE/npm.log" 2>&1 || { tail -30 "$STATE/npm.log" >&2; die "npm ci failed (log: $STATE/npm.log)"; }
  echo "$lock_sum" > node_modules/.fc-lock-sha256
  step "dependencies installed in $(elapsed "$t0")"
fi
t0=$(date +%s)
npm run --silent build >"$STATE/build.log" 2>&1 || { cat "$STATE/build.log" >&2; die "the TypeScript build failed"; }
step "built dist/ in $(elapsed "$t0")"

bash scripts/setup-compose.sh   # docker-compose for compose/deploy.sh (docs/operations/deployment.md)
# --- The WordPress example's packages (MariaDB, WordPress, its theme) and Chromium: its own script --
bash scripts/setup-wordpress.sh

# --- Example images ------------------------------------------------------------------------------
if [ "${FC_SETUP_SKIP_IMAGES:-0}" = "1" ]; then
  step "skipping images (FC_SETUP_SKIP_IMAGES=1)"
else
  bash scripts/build-images.sh
fi
step "ready"
