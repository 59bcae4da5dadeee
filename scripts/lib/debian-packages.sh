# Sourced by the setup scripts: Debian packages installed only when missing. The caller defines
# step and die (its own log prefix) and SUDO (an array: empty as root, else (sudo)).

# The packages of the list that are not installed, one a line.
debian_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s\n' "$p"
  done
}

# ensure_debian_packages LOG PACKAGE...: installs those missing, output to LOG. Waits for another
# apt run's lock (another setup script) rather than failing, and reads the package lists again only
# when installing from the current ones fails (a fresh machine has none). DEBIAN_INSTALLED names
# what this call installed (empty: everything was there).
DEBIAN_INSTALLED=()
ensure_debian_packages() {
  local log="$1"
  shift
  mapfile -t DEBIAN_INSTALLED < <(debian_missing "$@")
  if [ "${#DEBIAN_INSTALLED[@]}" -eq 0 ]; then return 0; fi
  local t0=$SECONDS
  local opts=(-o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
  step "installing Debian packages: ${DEBIAN_INSTALLED[*]} (a minute or so; log: $log)..."
  if ! DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install "${opts[@]}" "${DEBIAN_INSTALLED[@]}" >"$log" 2>&1; then
    "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >>"$log" 2>&1 \
      || { tail -20 "$log" >&2; die "apt-get update failed (log: $log)"; }
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install "${opts[@]}" "${DEBIAN_INSTALLED[@]}" >>"$log" 2>&1 \
      || { tail -20 "$log" >&2; die "apt-get install failed (log: $log)"; }
  fi
  step "packages installed in $((SECONDS - t0))s"
}
