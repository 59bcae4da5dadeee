#!/usr/bin/env bash
# The example's MariaDB: one per host, from Debian's mariadb-server, with its own data directory,
# socket and port (not the package's /var/lib/mysql and 3306), listening on loopback and on the
# Docker network's gateway (where tenant containers reach the host), nowhere else. Started and
# stopped idempotently, like Redis in scripts/setup.sh:
#
#   examples/wordpress/mariadb.sh start    # starts it unless it answers; prints nothing else
#   examples/wordpress/mariadb.sh stop     # stops the instance it started (its pid file)
#   examples/wordpress/mariadb.sh status   # exit 0 if it answers
#   examples/wordpress/mariadb.sh sql      # a SQL shell as its root (unix socket, no password)
#
# FC_WP_DB_DIR     its directory (data/, socket, pid, log, my.cnf)   default <repo>/.state/mariadb
# FC_WP_DB_PORT    TCP port                                          default 3307
# FC_WP_DB_BIND    addresses it listens on, comma-separated         default 127.0.0.1 and the gateway
#                  of FC_DOCKER_NETWORK (default bridge, e.g. 172.17.0.1)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${FC_WP_DB_DIR:-$REPO/.state/mariadb}"
PORT="${FC_WP_DB_PORT:-3307}"
NETWORK="${FC_DOCKER_NETWORK:-bridge}"

log() { printf '[mariadb] %s\n' "$*" >&2; }
die() { printf '[mariadb] ERROR: %s\n' "$*" >&2; exit 1; }

gateway() { docker network inspect "$NETWORK" -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' 2>/dev/null | awk '{print $1}'; }

cli() { mariadb --no-defaults --protocol=socket --socket="$DIR/mysqld.sock" -uroot "$@"; }
answers() { [ -S "$DIR/mysqld.sock" ] && mariadb-admin --no-defaults --protocol=socket --socket="$DIR/mysqld.sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

start() {
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || die "mariadbd not found: run bash scripts/setup-wordpress.sh"
  local bind="${FC_WP_DB_BIND:-}"
  if [ -z "$bind" ]; then
    local gw; gw="$(gateway)"
    [ -n "$gw" ] || die "the Docker network '$NETWORK' has no gateway address (is dockerd running? docker network inspect $NETWORK)"
    bind="127.0.0.1,$gw"
  fi
  if answers; then
    local now; now="$(cli -N -B -e 'select concat(@@bind_address, " ", @@port)' 2>/dev/null || true)"
    if [ "$now" = "$bind $PORT" ]; then
      log "answers on $bind port $PORT (dir: $DIR)"
      return 0
    fi
    # The address containers use changed (a network made again with another subnet): listen there.
    log "listens on ${now:-?}, wanted $bind $PORT: restarting it"
    stop
  fi
  mkdir -p "$DIR"
  # mariadbd runs as the mysql user (never root): it must be able to reach its directory. A repo
  # under a home directory closed to others (/root is 0700) cannot hold it: say so.
  chown mysql:mysql "$DIR"
  chmod 0750 "$DIR"
  if ! setpriv --reuid=mysql --regid=mysql --clear-groups test -x "$DIR" 2>/dev/null; then
    die "the mysql user cannot reach $DIR (a parent directory is closed to others); set FC_WP_DB_DIR to a directory it can reach, e.g. FC_WP_DB_DIR=/var/lib/fastcontainer-mariadb"
  fi
  cat >"$DIR/my.cnf" <<CNF
# Written by examples/wordpress/mariadb.sh; rewritten at every start.
[mariadbd]
user = mysql
datadir = $DIR/data
socket = $DIR/mysqld.sock
pid-file = $DIR/mariadbd.pid
log-error = $DIR/mariadbd.log
port = $PORT
bind-address = $bind
# Accounts are matched by address, never by name (no DNS lookups on connect).
skip-name-resolve
# A small instance for a few sites on one host.
innodb_buffer_pool_size = 64M
performance_schema = OFF
max_connections = 200
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
CNF
  chmod 0644 "$DIR/my.cnf"
  if [ ! -d "$DIR/data/mysql" ]; then
    log "creating its data directory $DIR/data..."
    mkdir -p "$DIR/data"; chown mysql:mysql "$DIR/data"; chmod 0700 "$DIR/data"
    mariadb-install-db --defaults-file="$DIR/my.cnf" --skip-test-db --auth-root-authentication-method=socket \
      >"$DIR/install-db.log" 2>&1 || { tail -20 "$DIR/install-db.log" >&2; die "mariadb-install-db failed (log: $DIR/install-db.log)"; }
  fi
  log "starting mariadbd on $bind port $PORT (log: $DIR/mariadbd.log)..."
  setsid nohup /usr/sbin/mariadbd --defaults-file="$DIR/my.cnf" >>"$DIR/mariadbd.out" 2>&1 </dev/null &
  for _ in $(seq 1 120); do
    answers && break
    sleep 0.25
  done
  answers || { tail -20 "$DIR/mariadbd.log" >&2 || true; die "mariadbd did not answer within 30 s (log: $DIR/mariadbd.log)"; }
  log "up"
}

stop() {
  if [ ! -f "$DIR/mariadbd.pid" ] || ! kill -0 "$(cat "$DIR/mariadbd.pid")" 2>/dev/null; then
    log "not running"
    return 0
  fi
  local pid; pid="$(cat "$DIR/mariadbd.pid")"
  kill -TERM "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { log "stopped"; return 0; }
    sleep 0.25
  done
  die "mariadbd (pid $pid) still runs 30 s after SIGTERM"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  sql) shift; cli "$@" ;;
  *) die "usage: $0 start|stop|status|sql" ;;
esac
