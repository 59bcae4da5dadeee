#!/usr/bin/env bash
# fastcontainer deployed as containers (compose/docker-compose.yml): Redis, the CoreAPI, a
# UserProxy and two dispatchers (two compute hosts), and with FC_COMPOSE_MONITORING=1 Prometheus.
#
#   compose/deploy.sh up        set up what is missing (scripts/setup.sh, scripts/setup-compose.sh),
#                               build fastcontainer/fastcontainer if its sources changed, write the
#                               env file of secrets (once), start everything, wait until it answers
#   compose/deploy.sh init      only write the env file of secrets (once) and print its path, to
#                               edit before `up` (e.g. FC_LOG_LEVEL, a REDIS_URL of your own)
#   compose/deploy.sh config    the compose file as docker-compose reads it with this deployment's
#                               settings (secrets included: mind where it goes)
#   compose/deploy.sh status    the containers and the CMDB's hosts
#   compose/deploy.sh logs [SERVICE]
#   compose/deploy.sh roll [SERVICE...]
#                               upgrade without a restart of everything at once: recreate each
#                               role's container from the current image, one at a time, waiting
#                               until it is healthy before the next (default order: dispatcher-1,
#                               dispatcher-2, coreapi, proxy). A dispatcher adopts its containers;
#                               the proxy drains on SIGTERM (docs/operations/deployment.md)
#   compose/deploy.sh backup FILE
#                               a consistent RDB snapshot of the CMDB (Redis) written to FILE, taken
#                               from the running server (nothing stops)
#   compose/deploy.sh restore FILE
#                               replace the CMDB's data with that snapshot (Redis restarts; every
#                               role resyncs; dispatchers adopt what the restored entries want)
#   compose/deploy.sh down      stop (gracefully: the roles drain), remove the tenant containers
#                               the dispatchers started and the networks; keep the CMDB's data and
#                               the env file, so `up` brings the same apps back
#   compose/deploy.sh destroy   down, and remove the CMDB's data and the env file too
#
# Environment (defaults in brackets):
#   FC_COMPOSE_PROJECT [fastcontainer]  compose project name; also the host ids' stem and the
#                                       tenants network's name (<project>-tenants)
#   FC_COMPOSE_PROXY_PORT [8080], FC_COMPOSE_BIND [0.0.0.0]  where visitors reach the proxy
#   FC_COMPOSE_API_PORT [8081]          the CoreAPI, on 127.0.0.1 only
#   FC_COMPOSE_PROMETHEUS_PORT [9090]   Prometheus, on 127.0.0.1 only (FC_COMPOSE_MONITORING=1)
#   FC_COMPOSE_DATAPOOL [/srv/fastcontainer/datapool]  host directory of the apps' volumes
#                                       (each app under <datapool>/<app name>)
#   FC_COMPOSE_STATE [<repo>/.state/compose-<project>] where the env file (secrets, mode 0600) is kept
#   FC_COMPOSE_TENANT_SUBNET [10.213.0.0/16]  the tenants network (A.B.0.0/16, one per project)
#   FC_COMPOSE_SKIP_SETUP=1             skip scripts/setup.sh and setup-compose.sh (tests)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FC_COMPOSE_PROJECT="${FC_COMPOSE_PROJECT:-fastcontainer}"
PROJECT="$FC_COMPOSE_PROJECT"
STATE="${FC_COMPOSE_STATE:-$REPO/.state/compose-$PROJECT}"
export FC_COMPOSE_ENV_FILE="$STATE/fastcontainer.env"
export FC_COMPOSE_DATAPOOL="${FC_COMPOSE_DATAPOOL:-/srv/fastcontainer/datapool}"
export FC_COMPOSE_PROXY_PORT="${FC_COMPOSE_PROXY_PORT:-8080}"
export FC_COMPOSE_API_PORT="${FC_COMPOSE_API_PORT:-8081}"
export FC_COMPOSE_PROMETHEUS_PORT="${FC_COMPOSE_PROMETHEUS_PORT:-9090}"
MONITORING="${FC_COMPOSE_MONITORING:-0}"
# The tenants network: a /16 of its own, the two dispatchers at .0.2 and .0.3, tenants' containers
# from the upper half (so a tenant never takes a dispatcher's address while one is recreated).
export FC_COMPOSE_TENANT_SUBNET="${FC_COMPOSE_TENANT_SUBNET:-10.213.0.0/16}"

say() { printf '[deploy] %s\n' "$*" >&2; }
die() { printf '[deploy] ERROR: %s\n' "$*" >&2; exit 1; }

# docker-compose v1 lowercases project names and drops other characters; refuse what it would change.
[[ "$PROJECT" =~ ^[a-z0-9][a-z0-9-]{0,39}$ ]] || die "FC_COMPOSE_PROJECT must be 1-40 of [a-z0-9-], starting with a letter or digit, not \"$PROJECT\""
[[ "$FC_COMPOSE_DATAPOOL" = /* && "$FC_COMPOSE_DATAPOOL" != / ]] || die "FC_COMPOSE_DATAPOOL must be an absolute directory other than /, not \"$FC_COMPOSE_DATAPOOL\""
[[ "$FC_COMPOSE_TENANT_SUBNET" =~ ^(10|172|192)\.([0-9]{1,3})\.0\.0/16$ ]] || die "FC_COMPOSE_TENANT_SUBNET must be a private A.B.0.0/16, not \"$FC_COMPOSE_TENANT_SUBNET\""
TENANT_NET="${FC_COMPOSE_TENANT_SUBNET%.0.0/16}"
export FC_COMPOSE_DISPATCHER_1_IP="$TENANT_NET.0.2" FC_COMPOSE_DISPATCHER_2_IP="$TENANT_NET.0.3"
export FC_COMPOSE_TENANT_RANGE="$TENANT_NET.128.0/17" FC_COMPOSE_TENANT_GATEWAY="$TENANT_NET.0.1"
# Names the rules match: the bridge interface (at most 15 characters) and our chains.
PROJECT_HASH="$(printf '%s' "$PROJECT" | sha256sum | cut -c1-10)"
export FC_COMPOSE_TENANT_BRIDGE="fct$PROJECT_HASH"
CHAIN_F="FCC-$PROJECT_HASH-F"
CHAIN_H="FCC-$PROJECT_HASH-H"
for p in FC_COMPOSE_PROXY_PORT FC_COMPOSE_API_PORT FC_COMPOSE_PROMETHEUS_PORT; do
  [[ "${!p}" =~ ^[0-9]{1,5}$ ]] && ((${!p} >= 1 && ${!p} <= 65535)) || die "$p must be a port 1-65535, not \"${!p}\""
done

compose() {
  local profiles=()
  [ "$MONITORING" = "1" ] && profiles=(--profile monitoring)
  docker-compose -p "$PROJECT" -f "$REPO/compose/docker-compose.yml" "${profiles[@]}" "$@"
}

token() { head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '='; }

# Secrets are made once and kept: the proxies and dispatchers must share the cluster secret across
# restarts, the CMDB's password must match its data, and the API tokens are the operator's.
write_env_file() {
  [ -s "$FC_COMPOSE_ENV_FILE" ] && return 0
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  local redis_password
  redis_password="$(token)"
  (
    umask 077
    cat >"$FC_COMPOSE_ENV_FILE.tmp" <<ENV
# Secrets of the compose deployment "$PROJECT", generated once by compose/deploy.sh. Keep it 0600.
FC_API_TOKEN=$(token)
FC_API_READ_TOKEN=$(token)
FC_CLUSTER_SECRET=$(token)$(token)
FC_REDIS_PASSWORD=$redis_password
REDIS_URL=redis://:$redis_password@redis:6379
FC_REDIS_PREFIX=fc
ENV
  )
  mv "$FC_COMPOSE_ENV_FILE.tmp" "$FC_COMPOSE_ENV_FILE"
  say "wrote the secrets to $FC_COMPOSE_ENV_FILE (0600)"
}

env_value() { sed -n "s/^$1=//p" "$FC_COMPOSE_ENV_FILE"; }

# Isolation of the tenants bridge, in chains of this project's own (the dispatchers run in
# containers, so the dispatchers' own network isolation cannot do it; docs/operations/deployment.md):
#   FCC-<h>-F from DOCKER-USER -i <bridge>: replies pass; the dispatchers' connections pass; a new
#     connection from a tenant to anything on the bridge (another tenant, a dispatcher) or to
#     169.254.0.0/16 (metadata) is rejected; the rest (the internet) goes on to Docker's rules.
#   FCC-<h>-H from INPUT -i <bridge>: replies pass; any new connection to the host is rejected.
# Written whole at every `up` (idempotent), removed by `down`.
ipt() { iptables -w 10 "$@"; }

apply_tenant_rules() {
  command -v iptables >/dev/null 2>&1 || die "iptables is missing (apt-get install iptables): it isolates the tenants"
  local br="$FC_COMPOSE_TENANT_BRIDGE" c
  for c in "$CHAIN_F" "$CHAIN_H"; do ipt -N "$c" 2>/dev/null || ipt -F "$c"; done
  ipt -A "$CHAIN_F" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
  ipt -A "$CHAIN_F" -s "$FC_COMPOSE_DISPATCHER_1_IP" -j RETURN
  ipt -A "$CHAIN_F" -s "$FC_COMPOSE_DISPATCHER_2_IP" -j RETURN
  ipt -A "$CHAIN_F" -o "$br" -p tcp -j REJECT --reject-with tcp-reset
  ipt -A "$CHAIN_F" -o "$br" -j REJECT
  ipt -A "$CHAIN_F" -d 169.254.0.0/16 -p tcp -j REJECT --reject-with tcp-reset
  ipt -A "$CHAIN_F" -d 169.254.0.0/16 -j REJECT
  ipt -A "$CHAIN_F" -j RETURN
  ipt -A "$CHAIN_H" -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
  ipt -A "$CHAIN_H" -p tcp -j REJECT --reject-with tcp-reset
  ipt -A "$CHAIN_H" -j REJECT
  ipt -C DOCKER-USER -i "$br" -j "$CHAIN_F" 2>/dev/null || ipt -I DOCKER-USER 1 -i "$br" -j "$CHAIN_F"
  ipt -C INPUT -i "$br" -j "$CHAIN_H" 2>/dev/null || ipt -I INPUT 1 -i "$br" -j "$CHAIN_H"
}

remove_tenant_rules() {
  command -v iptables >/dev/null 2>&1 || return 0
  local br="$FC_COMPOSE_TENANT_BRIDGE" i c
  for i in $(seq 1 16); do ipt -D DOCKER-USER -i "$br" -j "$CHAIN_F" 2>/dev/null || break; done
  for i in $(seq 1 16); do ipt -D INPUT -i "$br" -j "$CHAIN_H" 2>/dev/null || break; done
  for c in "$CHAIN_F" "$CHAIN_H"; do ipt -F "$c" 2>/dev/null && ipt -X "$c"; done
  return 0
}

wait_http() {
  local url=$1 what=$2
  for _ in $(seq 1 240); do
    curl -fs -o /dev/null "$url" && return 0
    sleep 0.25
  done
  compose ps >&2 || true
  die "$what did not answer at $url within 60 s (compose/deploy.sh logs)"
}

up() {
  if [ "${FC_COMPOSE_SKIP_SETUP:-0}" != "1" ]; then
    bash "$REPO/scripts/setup.sh"
    bash "$REPO/scripts/setup-compose.sh"
  fi
  command -v docker-compose >/dev/null 2>&1 || die "docker-compose is missing: bash scripts/setup-compose.sh"
  # fastcontainer/hello is the network sandboxes' image (FC_SANDBOX_IMAGE).
  local images=(fastcontainer hello)
  [ "$MONITORING" = "1" ] && images+=(prometheus)
  bash "$REPO/scripts/build-images.sh" "${images[@]}"
  write_env_file
  mkdir -p "$FC_COMPOSE_DATAPOOL"
  say "starting project \"$PROJECT\"..."
  # Networks and containers first, the tenants' rules next, and only then anything runs.
  compose up --no-start --remove-orphans >&2
  apply_tenant_rules
  compose up -d --remove-orphans >&2
  wait_http "http://127.0.0.1:$FC_COMPOSE_API_PORT/healthz" "the CoreAPI"
  local bind="${FC_COMPOSE_BIND:-0.0.0.0}"
  [ "$bind" = "0.0.0.0" ] && bind=127.0.0.1
  # The proxy answers 404 for a Host no app has: it is up.
  for _ in $(seq 1 240); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'host: deploy-probe.invalid' "http://$bind:$FC_COMPOSE_PROXY_PORT/")" = "404" ] && break
    sleep 0.25
  done
  # Both dispatchers registered as hosts in the CMDB.
  local token
  token="$(env_value FC_API_TOKEN)"
  for _ in $(seq 1 240); do
    [ "$(curl -fs -H "authorization: Bearer $token" "http://127.0.0.1:$FC_COMPOSE_API_PORT/v1/hosts" | grep -o '"live":true' | wc -l)" -ge 2 ] && break
    sleep 0.25
  done
  cat >&2 <<EOF2
[deploy] "$PROJECT" is up: Redis (internal), CoreAPI, proxy, dispatchers $PROJECT-host-1 and $PROJECT-host-2$([ "$MONITORING" = "1" ] && echo ", Prometheus")
  proxy       http://$bind:$FC_COMPOSE_PROXY_PORT
  CoreAPI     http://127.0.0.1:$FC_COMPOSE_API_PORT   tokens in $FC_COMPOSE_ENV_FILE$([ "$MONITORING" = "1" ] && printf '\n  Prometheus  http://127.0.0.1:%s' "$FC_COMPOSE_PROMETHEUS_PORT")
  volumes     under $FC_COMPOSE_DATAPOOL/<app>
Use it:  export FC_API_URL=http://127.0.0.1:$FC_COMPOSE_API_PORT FC_API_TOKEN=\$(sed -n 's/^FC_API_TOKEN=//p' $FC_COMPOSE_ENV_FILE)
         node bin/fastcontainer.js app create site --hostname site.example --image fastcontainer/hello
Stop it: compose/deploy.sh down
EOF2
}

wait_healthy() {
  local service=$1 id state
  id="$(compose ps -q "$service")"
  [ -n "$id" ] || die "no container for $service"
  for _ in $(seq 1 240); do
    state="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || true)"
    [ "$state" = "healthy" ] && return 0
    sleep 0.25
  done
  die "$service is not healthy after 60 s (state: $state; compose/deploy.sh logs $service)"
}

roll() {
  [ -s "$FC_COMPOSE_ENV_FILE" ] || die "no deployment \"$PROJECT\" (no $FC_COMPOSE_ENV_FILE)"
  local services=("$@")
  [ "${#services[@]}" -gt 0 ] || services=(dispatcher-1 dispatcher-2 coreapi proxy)
  local s
  for s in "${services[@]}"; do
    [[ "$s" =~ ^(dispatcher-[0-9]+|coreapi|proxy|redis|prometheus)$ ]] || die "unknown service \"$s\""
    local t0=$SECONDS
    # --no-deps: only this one; the old container gets SIGTERM and stop_grace_period to drain.
    compose up -d --no-deps --force-recreate "$s" >&2
    wait_healthy "$s"
    say "$s recreated and healthy in $((SECONDS - t0))s"
  done
}

redis_cli() {
  local id
  id="$(compose ps -q redis)"
  [ -n "$id" ] || die "Redis of \"$PROJECT\" is not running (compose/deploy.sh up)"
  docker exec "$id" sh -c 'REDISCLI_AUTH="$FC_REDIS_PASSWORD" exec redis-cli "$@"' redis-cli "$@"
}

backup() {
  local file=${1:-}
  [ -n "$file" ] || die "usage: compose/deploy.sh backup FILE"
  [ -s "$FC_COMPOSE_ENV_FILE" ] || die "no deployment \"$PROJECT\" (no $FC_COMPOSE_ENV_FILE)"
  local id
  id="$(compose ps -q redis)"
  [ -n "$id" ] || die "Redis of \"$PROJECT\" is not running"
  # redis-cli --rdb asks the server for a snapshot over the connection (as a replica would): it is
  # consistent and the server keeps serving. Written inside the container's /tmp, then copied out.
  docker exec "$id" sh -c 'REDISCLI_AUTH="$FC_REDIS_PASSWORD" redis-cli --rdb /tmp/backup.rdb >/dev/null && cat /tmp/backup.rdb && rm -f /tmp/backup.rdb' >"$file.tmp" \
    || { rm -f "$file.tmp"; die "the snapshot failed"; }
  [ "$(head -c 5 "$file.tmp")" = "REDIS" ] || { rm -f "$file.tmp"; die "the snapshot is not an RDB file"; }
  mv "$file.tmp" "$file"
  say "CMDB snapshot written to $file ($(wc -c <"$file") bytes)"
}

restore() {
  local file=${1:-}
  [ -n "$file" ] && [ -s "$file" ] || die "usage: compose/deploy.sh restore FILE (an RDB file made by backup)"
  [ "$(head -c 5 "$file")" = "REDIS" ] || die "$file is not an RDB file"
  [ -s "$FC_COMPOSE_ENV_FILE" ] || die "no deployment \"$PROJECT\" (no $FC_COMPOSE_ENV_FILE)"
  local volume="${PROJECT}_redis-data" prefix abs
  prefix="$(env_value FC_REDIS_PREFIX)"
  abs="$(cd "$(dirname "$file")" && pwd)/$(basename "$file")"
  compose stop redis >&2
  # Redis loads the AOF, not an RDB, while appendonly is on: load the snapshot with it off, turn it
  # on (which writes a new AOF from the data loaded) and stop; the service then starts from it.
  docker run --rm --user redis --network none -v "$volume:/var/lib/redis" -v "$abs:/restore.rdb:ro" \
    --entrypoint /bin/sh fastcontainer/fastcontainer -c '
      set -e
      rm -rf /var/lib/redis/appendonlydir /var/lib/redis/dump.rdb
      cp /restore.rdb /var/lib/redis/dump.rdb
      redis-server /etc/fastcontainer/redis.conf --appendonly no --bind 127.0.0.1 --daemonize yes --logfile /tmp/redis.log
      for i in $(seq 1 100); do redis-cli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
      redis-cli config set appendonly yes >/dev/null
      for i in $(seq 1 300); do
        redis-cli info persistence | grep -q "aof_rewrite_in_progress:0" && redis-cli info persistence | grep -q "aof_rewrite_scheduled:0" && break
        sleep 0.1
      done
      redis-cli shutdown >/dev/null 2>&1 || true
      rm -f /var/lib/redis/dump.rdb' >&2 || die "loading $file failed"
  compose start redis >&2
  wait_healthy redis
  # A new epoch: every role resyncs its cache, re-announces its host and reconciles at once.
  redis_cli del "${prefix:-fc}:epoch" >/dev/null
  say "CMDB restored from $file"
}

remove_tenant_containers() {
  # The dispatchers leave their containers for the next start to adopt; with the deployment going
  # away they go too, found by the host label of this project's dispatchers (sandboxes included).
  local ids
  ids="$(docker ps -a --filter "label=fastcontainer.managed=true" --format '{{.ID}} {{.Label "fastcontainer.host"}}' | awk -v p="$PROJECT-host-" 'index($2, p) == 1 { print $1 }')"
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker rm -f $ids >/dev/null
    say "removed $(wc -w <<<"$ids") tenant container(s)"
  fi
}

down() {
  # Without its env file (removed by hand) the project can still be taken down: compose needs a file.
  if [ ! -s "$FC_COMPOSE_ENV_FILE" ]; then
    FC_COMPOSE_ENV_FILE="$(mktemp)"
    export FC_COMPOSE_ENV_FILE
    # shellcheck disable=SC2064
    trap "rm -f '$FC_COMPOSE_ENV_FILE'" EXIT
  fi
  # Stop first, so that no dispatcher starts a container while they are being removed.
  compose --profile monitoring stop >&2 || true
  remove_tenant_containers
  compose --profile monitoring down --remove-orphans "$@" >&2
  remove_tenant_rules
  say "\"$PROJECT\" is down"
}

destroy() {
  down --volumes
  rm -rf -- "$STATE"
  say "removed the CMDB's data and $STATE"
}

status() {
  [ -s "$FC_COMPOSE_ENV_FILE" ] || die "no deployment \"$PROJECT\" (no $FC_COMPOSE_ENV_FILE)"
  compose ps
  if curl -fs -o /dev/null "http://127.0.0.1:$FC_COMPOSE_API_PORT/healthz"; then
    FC_API_URL="http://127.0.0.1:$FC_COMPOSE_API_PORT" FC_API_TOKEN="$(env_value FC_API_TOKEN)" node "$REPO/bin/fastcontainer.js" hosts
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  destroy) destroy ;;
  status) status ;;
  roll) shift; roll "$@" ;;
  init) write_env_file; echo "$FC_COMPOSE_ENV_FILE" ;;
  config) [ -s "$FC_COMPOSE_ENV_FILE" ] || die "no env file (compose/deploy.sh init)"; compose --profile monitoring config ;;
  backup) shift; backup "$@" ;;
  restore) shift; restore "$@" ;;
  logs) shift; [ -s "$FC_COMPOSE_ENV_FILE" ] || die "no deployment \"$PROJECT\""; compose logs --no-color "$@" ;;
  *) die "usage: compose/deploy.sh up | init | config | status | logs [SERVICE] | roll [SERVICE...] | backup FILE | restore FILE | down | destroy" ;;
esac
