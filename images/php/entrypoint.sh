#!/bin/sh
# fastcontainer/php entrypoint: runs Apache in the foreground as the current
# (unprivileged) user. Apache skips setuid/setgid when not started as root, so
# this works under --cap-drop ALL --security-opt no-new-privileges.
set -e
. /etc/apache2/envvars

# Pid file, mutexes and the scoreboard live in $APACHE_RUN_DIR/$APACHE_LOCK_DIR
# (/run/apache2 and /run/lock/apache2, owned by www-data in the image). If they
# are not usable -- e.g. --read-only with a fresh root-owned tmpfs on /run, or
# a different --user -- fall back to a private directory under /tmp.
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" 2>/dev/null || true
if [ ! -w "$APACHE_RUN_DIR" ] || [ ! -w "$APACHE_LOCK_DIR" ]; then
	base="${TMPDIR:-/tmp}/apache2"
	export APACHE_RUN_DIR="$base/run" APACHE_LOCK_DIR="$base/lock"
	export APACHE_PID_FILE="$APACHE_RUN_DIR/apache2.pid"
	mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR"
fi
rm -f "$APACHE_PID_FILE"

exec /usr/sbin/apache2 -D FOREGROUND "$@"
