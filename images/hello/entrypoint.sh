#!/bin/sh
# fastcontainer/hello entrypoint.
#
# busybox httpd installs no SIGTERM/SIGINT handler, and the kernel does not
# deliver signals without a handler to PID 1 -- so with httpd as PID 1,
# `docker stop` would always wait for its timeout and then SIGKILL. This shell
# stays PID 1, runs httpd in the foreground (-f) as its child and exits on
# SIGTERM/SIGINT, which makes the kernel kill httpd along with the container.
# (Docker 20.10's `docker import --change` cannot set STOPSIGNAL.)
trap 'exit 0' TERM INT
/bin/busybox httpd -f -p 8080 -h /www "$@" &
wait $!
