#!/usr/bin/env bash
# Headless Chromium for the browser tests (Debian's chromium, driven by playwright-core with
# executablePath /usr/bin/chromium). Idempotent: nothing to do once it is installed.
set -euo pipefail
SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
install() { DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null; }
dpkg -s chromium >/dev/null 2>&1 || install || { "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq && install; }
