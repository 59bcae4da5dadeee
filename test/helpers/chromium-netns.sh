#!/bin/sh
# Chromium in a network namespace of its own, for the browser tests. Chromium aborts requests in
# flight (net::ERR_NETWORK_CHANGED) whenever an interface of its namespace changes, and on a test
# machine Docker adds and removes veth interfaces with every container, ours and other tests'.
# In a namespace with only its loopback nothing changes, and the browser reaches nothing but what
# the test forwards: a TCP port on that loopback relayed (socat) to a unix socket the test serves in
# the host's namespace (file system paths are shared).
#
#   FC_BROWSER_FORWARD="<port>:<unix socket path>" chromium-netns.sh <chromium arguments>
# Needs root (unshare --net), socat and iproute2.
set -eu
exec unshare --net -- sh -c '
  ip link set lo up
  port="${FC_BROWSER_FORWARD%%:*}"; sock="${FC_BROWSER_FORWARD#*:}"
  socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$sock" &
  relay=$!
  # Chromium starts after the relay listens (its first page comes later still).
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    ss -ltn "sport = :$port" 2>/dev/null | grep -q LISTEN && break
    sleep 0.05
  done
  rc=0
  /usr/bin/chromium "$@" || rc=$?
  kill "$relay" 2>/dev/null || true
  exit "$rc"' chromium-netns "$@"
