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
# shellcheck source=lib/debian-packages.sh
. "$REPO/scripts/lib/debian-packages.sh"
ensure_debian_packages "$STATE/apt-compose.log" "${PACKAGES[@]}"
if [ "${#DEBIAN_INSTALLED[@]}" -eq 0 ]; then
  step "docker-compose present ($(docker-compose version --short 2>/dev/null || echo '?'))"
fi
