#!/usr/bin/env bash
# Headless Chromium for the browser tests (Debian's chromium, driven by playwright-core). Idempotent.
set -euo pipefail
dpkg -s chromium >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
