#!/bin/sh
# fastcontainer/php entrypoint: runs Apache in the foreground as the current
# (unprivileged) user. Apache skips setuid/setgid when not started as root, so
# this works under --cap-drop ALL --security-opt no-new-privileges.
set -e
. /etc/apache2/envvars
# The directories exist in the image (owned by www-data); recreate them in case
# /run is a fresh tmpfs (e.g. with --read-only --tmpfs /run).
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" 2>/dev/null || true
rm -f "$APACHE_PID_FILE"
exec /usr/sbin/apache2 -D FOREGROUND "$@"
