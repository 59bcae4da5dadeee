#!/usr/bin/env bash
# Headless Chromium from Debian for the browser tests (dashboard, WordPress); idempotent.
set -euo pipefail
S=(); [ "$(id -u)" -eq 0 ] || S=(sudo)
dpkg -s chromium >/dev/null 2>&1 || { "${S[@]}" apt-get update -qq; DEBIAN_FRONTEND=noninteractive "${S[@]}" apt-get install -y -qq --no-install-recommends chromium; }
