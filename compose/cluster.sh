#!/usr/bin/env bash
# A FastContainer cluster on this one machine: every role in its own process, all sharing one
# Redis CMDB, as they would on many hosts: the CoreAPI, a UserProxy, and N dispatchers that act as
# N compute hosts (each with its own host id, so each labels and reconciles only its containers).
#
#   compose/cluster.sh up [N]     start (N dispatchers, default 2); runs scripts/setup.sh first
#   compose/cluster.sh status     what runs, and the CMDB's hosts
#   compose/cluster.sh down       stop every process it started (by pid), remove the cluster's
#                                 containers and its Redis keys
#
# Environment: FC_CLUSTER_NAME (default "cluster": the Redis prefix and the host ids' stem),
# FC_CLUSTER_BASE_PORT (default 9080: proxy on it, CoreAPI on +1, dispatchers on +2, +3, ...; each
# process's admin listener (/healthz, /metrics) 100 above its port),
# REDIS_URL (default redis://127.0.0.1:6379), FC_CLUSTER_SKIP_SETUP=1 to skip the setup step.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${FC_CLUSTER_NAME:-cluster}"
BASE="${FC_CLUSTER_BASE_PORT:-9080}"
REDIS="${REDIS_URL:-redis://127.0.0.1:6379}"
DIR="$REPO/.state/$NAME"
BIN="$REPO/bin/fastcontainer.js"

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

[[ "$NAME" =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "FC_CLUSTER_NAME must be 1-40 of [A-Za-z0-9_.-], not \"$NAME\""

# Running, and not a zombie waiting for its (re)parent to reap it: a process this script started
# in an earlier call belongs to init by now, which may take seconds to reap it.
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  [ -n "$state" ] && [[ "$state" != Z* ]]
}

wait_http() {
  local url=$1
  for _ in $(seq 1 100); do
    curl -fs -o /dev/null "$url" && return 0
    sleep 0.1
  done
  return 1
}

start_role() {
  local label=$1; shift
  # Each role is its own process; its pid is kept so that `down` ends exactly it.
  env "$@" setsid node "$BIN" "${label%%-*}" >"$DIR/$label.log" 2>&1 < /dev/null &
  echo $! >"$DIR/$label.pid"
}

up() {
  local n=${1:-2}
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || die "the number of dispatchers must be 1-99, not \"$n\""
  [ -e "$DIR/coreapi.pid" ] && die "cluster \"$NAME\" already runs (compose/cluster.sh down first)"
  [ "${FC_CLUSTER_SKIP_SETUP:-0}" = "1" ] || bash "$REPO/scripts/setup.sh"
  mkdir -p "$DIR"
  local token
  token="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
  echo "$token" >"$DIR/api-token"
  chmod 600 "$DIR/api-token"
  # One host, so every role listens on loopback (on many hosts, dispatchers would listen on the
  # hosts' private network: FC_DISPATCHER_LISTEN). The proxies sign their requests to the
  # dispatchers with the cluster secret the first of them keeps in the CMDB.
  local common=(REDIS_URL="$REDIS" FC_REDIS_PREFIX="$NAME" FC_LISTEN_HOST=127.0.0.1 FC_STATE_DIR="$DIR" FC_API_TOKEN="$token" FC_LOG_LEVEL="${FC_LOG_LEVEL:-info}")
  for i in $(seq 1 "$n"); do
    local port=$((BASE + 1 + i))
    start_role "dispatcher-$i" "${common[@]}" FC_HOST_ID="$NAME-host-$i" FC_DISPATCHER_PORT="$port" FC_DISPATCHER_URL="http://127.0.0.1:$port" FC_ADMIN_PORT="$((port + 100))"
    wait_http "http://127.0.0.1:$((port + 100))/healthz" || die "dispatcher $i did not come up (log: $DIR/dispatcher-$i.log)"
  done
  start_role proxy "${common[@]}" FC_PROXY_PORT="$BASE" FC_ADMIN_PORT="$((BASE + 100))"
  wait_http "http://127.0.0.1:$((BASE + 100))/healthz" || die "the proxy did not come up (log: $DIR/proxy.log)"
  start_role coreapi "${common[@]}" FC_API_PORT="$((BASE + 1))" FC_ADMIN_PORT="$((BASE + 101))"
  wait_http "http://127.0.0.1:$((BASE + 1))/healthz" || die "the CoreAPI did not come up (log: $DIR/coreapi.log)"
  cat >&2 <<EOF
[cluster] "$NAME" is up: Redis $REDIS (prefix "$NAME"), $n compute hosts
  proxy       http://127.0.0.1:$BASE
  CoreAPI     http://127.0.0.1:$((BASE + 1))   token in $DIR/api-token
  dispatchers http://127.0.0.1:$((BASE + 2)) … (hosts $NAME-host-1 … $NAME-host-$n; signed requests only)
  admin       http://127.0.0.1:$((BASE + 100)) (proxy), $((BASE + 101)) (CoreAPI), $((BASE + 102)) … (dispatchers): /healthz, /metrics
  logs        $DIR/*.log
Use it:  export FC_API_URL=http://127.0.0.1:$((BASE + 1)) FC_STATE_DIR=$DIR; npx fastcontainer app create …
Stop it: compose/cluster.sh down
EOF
}

down() {
  shopt -s nullglob
  local pids=("$DIR"/*.pid)
  [ "${#pids[@]}" -gt 0 ] || say "no process of cluster \"$NAME\" is recorded"
  for f in "${pids[@]}"; do
    local pid
    pid="$(cat "$f")"
    if alive "$pid"; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
      if alive "$pid"; then kill -KILL "$pid"; fi
    fi
    rm -f "$f"
  done
  # With Redis, dispatchers leave their containers for the next start to adopt; the cluster is
  # going away for good, so they go too, found by the host label of this cluster's dispatchers.
  local ids
  ids="$(docker ps -a --filter "label=fastcontainer.managed=true" --format '{{.ID}} {{.Label "fastcontainer.host"}}' | awk -v p="$NAME-host-" 'index($2, p) == 1 { print $1 }')"
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null
  fi
  # Their networks and isolation rules, which dispatchers keep while containers remain.
  docker network ls --filter "label=fastcontainer.managed=true" --format '{{.Name}} {{.Label "fastcontainer.host"}}' \
    | awk -v p="$NAME-host-" 'index($2, p) == 1 { print $1, $2 }' \
    | while read -r net host; do node "$REPO/scripts/remove-tenant-network.mjs" "$net" "$host"; done
  local host port
  host="$(sed -E 's#^redis://([^:/]+).*#\1#' <<<"$REDIS")"
  port="$(sed -nE 's#^redis://[^:/]+:([0-9]+).*#\1#p' <<<"$REDIS")"
  redis-cli -h "$host" -p "${port:-6379}" --scan --pattern "$NAME:*" | xargs -r redis-cli -h "$host" -p "${port:-6379}" del >/dev/null
  say "\"$NAME\" is down"
}

status() {
  shopt -s nullglob
  for f in "$DIR"/*.pid; do
    local pid
    pid="$(cat "$f")"
    if alive "$pid"; then echo "$(basename "$f" .pid): running (pid $pid)"; else echo "$(basename "$f" .pid): not running"; fi
  done
  if curl -fs -o /dev/null "http://127.0.0.1:$((BASE + 1))/healthz"; then
    FC_API_URL="http://127.0.0.1:$((BASE + 1))" FC_STATE_DIR="$DIR" node "$BIN" hosts
  fi
}

case "${1:-}" in
  up) up "${2:-2}" ;;
  down) down ;;
  status) status ;;
  *) die "usage: compose/cluster.sh up [N] | status | down" ;;
esac
