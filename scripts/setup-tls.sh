#!/usr/bin/env bash
# What the HTTPS tests need beyond scripts/setup.sh's packages: Debian's openssl (the TLS test
# makes its certificates with it; operators may too). Idempotent; called from scripts/setup.sh.
set -euo pipefail
if dpkg-query -W -f='${Status}' openssl 2>/dev/null | grep -q 'install ok installed'; then
  printf '[setup] openssl present\n' >&2
  exit 0
fi
SUDO=()
[ "$(id -u)" -ne 0 ] && SUDO=(sudo)
printf '[setup] installing openssl...\n' >&2
"${SUDO[@]}" apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends openssl >/dev/null
