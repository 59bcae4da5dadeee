#!/usr/bin/env bash
# The Debian packages the WordPress example needs (examples/wordpress), idempotently: MariaDB (the
# example runs its own instance: examples/wordpress/mariadb.sh), WordPress and its default theme
# (only their files are used: laid out into the app's DataPool directory), and Chromium for the
# browser test (scripts/setup-browser.sh).
#
# The packages bring services of their own (mariadb on 3306, and apache2, a dependency of
# wordpress). Where systemd runs and this script installed them, their default instances are
# stopped and disabled: the example runs MariaDB on its own port and data directory, and the site is
# served by the fastcontainer/php image, not by the host's Apache. Installed before, they are left alone.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FC_SETUP_STATE_DIR:-$REPO/.state}"
mkdir -p "$STATE"
step() { printf '[setup-wordpress] %s\n' "$*" >&2; }
die() { printf '[setup-wordpress] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: installing packages needs root"
  SUDO=(sudo)
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

PACKAGES=(mariadb-server mariadb-client wordpress wordpress-theme-twentytwentythree socat iproute2)
had_services=()
for s in mariadb-server apache2; do installed "$s" && had_services+=("$s"); done

# shellcheck source=lib/debian-packages.sh
. "$REPO/scripts/lib/debian-packages.sh"
ensure_debian_packages "$STATE/apt-wordpress.log" "${PACKAGES[@]}"
if [ "${#DEBIAN_INSTALLED[@]}" -gt 0 ]; then
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    for s in mariadb apache2; do
      case " ${had_services[*]} " in *" ${s/mariadb/mariadb-server} "*) continue ;; esac
      if systemctl is-enabled "$s" >/dev/null 2>&1 || systemctl is-active "$s" >/dev/null 2>&1; then
        "${SUDO[@]}" systemctl disable --now "$s" >/dev/null 2>&1 || true
        step "stopped and disabled the package's default $s service (the example runs its own)"
      fi
    done
  fi
else
  step "Debian packages present"
fi

bash "$REPO/scripts/setup-browser.sh"
