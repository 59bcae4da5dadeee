#!/usr/bin/env bash
# What the compose deployment (compose/deploy.sh) needs on top of scripts/setup.sh, idempotently:
# Debian's docker-compose (and, for `systemd-analyze verify` of compose/systemd/*.service, systemd's
# tools, present on any Debian). Each step checks first and does only what is missing.
#
#   bash scripts/setup-compose.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FC_SETUP_STATE_DIR:-$REPO/.state}"
mkdir -p "$STATE"

step() { printf '[setup-compose] %s\n' "$*" >&2; }
die() { printf '[setup-compose] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: installing packages needs root"
  SUDO=(sudo)
fi

PACKAGES=(docker-compose mmdebstrap)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  t0=$(date +%s)
  step "installing Debian packages: ${missing[*]}..."
  "${SUDO[@]}" apt-get update -qq >"$STATE/apt-compose.log" 2>&1 || { tail -20 "$STATE/apt-compose.log" >&2; die "apt-get update failed (log: $STATE/apt-compose.log)"; }
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE/apt-compose.log" 2>&1 \
    || { tail -20 "$STATE/apt-compose.log" >&2; die "apt-get install failed (log: $STATE/apt-compose.log)"; }
  step "installed in $(( $(date +%s) - t0 ))s"
else
  step "docker-compose present ($(docker-compose version --short 2>/dev/null || echo '?'))"
fi
