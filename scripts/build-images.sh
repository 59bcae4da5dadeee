#!/usr/bin/env bash
# Build the local Docker images used by fastcontainer (there is no registry:
# everything is built from local sources and Debian packages).
#
#   fastcontainer/hello  busybox httpd (from Debian's busybox-static) serving
#                        images/hello/www on port 8080, as uid 65534.
#                        PID 1 is a tiny busybox sh wrapper (entrypoint.sh)
#                        so that docker stop's SIGTERM works.
#   fastcontainer/php    Debian bookworm + Apache 2.4 + mod_php (prefork) made
#                        with mmdebstrap, config from images/php/, port 8080,
#                        runs as www-data; the PHP extensions listed in
#                        images/php/packages (what WordPress needs); mod_remoteip
#                        takes the visitor's address from the platform's
#                        X-Forwarded-For.
#   fastcontainer/static Debian bookworm + nginx (nginx-light) made with mmdebstrap,
#                        config from images/static/, serves /var/www/html on port
#                        8080 as www-data, no access log, symlinks not followed.
#   fastcontainer/fastcontainer
#                        the platform itself, for compose/: Debian bookworm (essential) +
#                        this machine's Node (>= 20.18; bookworm's nodejs is 18) + dist/ and
#                        the production node_modules; Debian's redis-server for the CMDB and
#                        tini as PID 1. Built only when named (compose/deploy.sh does).
#   fastcontainer/prometheus
#                        Debian bookworm's prometheus, for compose/'s monitoring profile.
#                        Built only when named.
#
# Usage: scripts/build-images.sh [--force] [--verbose] [hello|php|static|fastcontainer|prometheus ...]
#        scripts/build-images.sh php --tag myorg/php-extra --packages "php-redis php-imagick"
#
# A variant (--tag, --packages) is the same image with more Debian packages under another name:
# an operator's own image without forking this script. Its packages are part of what decides
# whether it is up to date (label fastcontainer.packages).
#
# Idempotent: an image that already exists (docker image inspect) and was built from the
# current sources (a hash of images/<name>, kept as a label; for fastcontainer/fastcontainer,
# of src/, bin/, the package files and the Node version) is skipped unless --force is given;
# one built from older sources is rebuilt. With no image names, the tenant images are built.
#
# FASTCONTAINER_IMAGES_DIR: where the images' sources are (default: images/ of this checkout), e.g.
# an older commit's images/php written out to build that version beside the current one under a
# --tag of its own (bench/php-image.ts does, to compare them).
set -euo pipefail

ALL_IMAGES=(hello php static)
# Built only when named: the platform's own images (compose/), not needed by `fastcontainer up`.
NAMED_IMAGES=(fastcontainer prometheus)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGES_DIR="${FASTCONTAINER_IMAGES_DIR:-$REPO_ROOT/images}"
SUITE="${FASTCONTAINER_DEBIAN_SUITE:-bookworm}"
MIRROR="${FASTCONTAINER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${FASTCONTAINER_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

FORCE=0
VERBOSE=0
TAG=""
EXTRA_PACKAGES=()

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
Usage: $(basename "$0") [--force] [--verbose] [--tag NAME] [--packages "PKG ..."] [IMAGE...]

Builds the fastcontainer Docker images locally. IMAGE is one of: ${ALL_IMAGES[*]}
${NAMED_IMAGES[*]} (default: ${ALL_IMAGES[*]}). Existing images built from the current sources are skipped unless --force
is given; images built from older sources are rebuilt.

  -f, --force       rebuild even if the image already exists
  -v, --verbose     show the full output of mmdebstrap / docker import
  -t, --tag NAME    name the image NAME instead of fastcontainer/IMAGE (one IMAGE only),
                    e.g. --tag myorg/php-extra
  -p, --packages "PKG ..."
                    extra Debian packages ($SUITE) to install in the image (php and static
                    only), e.g. --packages "php-redis php-imagick"
  -h, --help        show this help

FASTCONTAINER_IMAGES_DIR=DIR takes the images' sources from DIR/<image> instead of images/
(with --tag, e.g. to build an older version of an image beside the current one).

Example: a PHP image with Redis and ImageMagick for one tenant, beside the stock one:
  $(basename "$0") php --tag myorg/php-extra --packages "php-redis php-imagick"
EOF
}

# ---------------------------------------------------------------- arguments --
SELECTED=()
while (($#)); do
  case "$1" in
    -f|--force) FORCE=1 ;;
    -v|--verbose) VERBOSE=1 ;;
    -h|--help) usage; exit 0 ;;
    -t|--tag)
      (($# >= 2)) || die "$1 needs an image name, e.g. --tag myorg/php-extra"
      TAG="$2"; shift ;;
    --tag=*) TAG="${1#--tag=}" ;;
    -p|--packages)
      (($# >= 2)) || die "$1 needs a list of Debian packages, e.g. --packages \"php-redis php-imagick\""
      read -r -a more <<<"$2"; EXTRA_PACKAGES+=("${more[@]}"); shift ;;
    --packages=*) read -r -a more <<<"${1#--packages=}"; EXTRA_PACKAGES+=("${more[@]}") ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *)
      name="${1#fastcontainer/}"
      case " ${ALL_IMAGES[*]} ${NAMED_IMAGES[*]} " in
        *" $name "*) SELECTED+=("$name") ;;
        *) die "unknown image '$1' (known: ${ALL_IMAGES[*]} ${NAMED_IMAGES[*]})" ;;
      esac
      ;;
  esac
  shift
done
((${#SELECTED[@]})) || SELECTED=("${ALL_IMAGES[@]}")
[[ -d "$IMAGES_DIR" ]] || die "FASTCONTAINER_IMAGES_DIR '$IMAGES_DIR' is not a directory (the images' sources)"
if [[ -n "$TAG" ]]; then
  ((${#SELECTED[@]} == 1)) || die "--tag names one image: give exactly one of ${ALL_IMAGES[*]}"
  # docker's reference grammar, lower case, with an optional :tag (no digest: this builds, it does not pull).
  [[ "$TAG" =~ ^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$ ]] \
    || die "--tag '$TAG' is not an image name (lower case, e.g. myorg/php-extra or myorg/php-extra:1)"
fi
if ((${#EXTRA_PACKAGES[@]})); then
  for name in "${SELECTED[@]}"; do
    [[ "$name" != hello ]] || die "--packages applies to php and static (Debian images); hello is busybox only"
  done
  for p in "${EXTRA_PACKAGES[@]}"; do
    # Debian package names (policy 5.6.1), optionally pinned: no option or shell syntax reaches mmdebstrap.
    [[ "$p" =~ ^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?$ ]] || die "--packages: '$p' is not a Debian package name"
  done
fi

# ------------------------------------------------------------------ helpers --
WORK=""
cleanup() {
  progress_stop
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    rm -rf -- "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command; its output goes to a log file unless --verbose. On failure the
# tail of the log is shown and the script exits.
run_logged() {
  local logfile="$1"; shift
  local rc=0
  if ((VERBOSE)); then
    "$@" 2>&1 | tee -a "$logfile" >&2 || rc=$?
    ((rc == 0)) || { log "$1 failed (exit status $rc), see its output above"; exit 1; }
  else
    "$@" >>"$logfile" 2>&1 || rc=$?
    if ((rc != 0)); then
      log "$1 failed (exit status $rc); last lines of its output:"
      tail -n 40 "$logfile" | sed 's/^/    /' >&2
      log "(rerun with --verbose to see the full output)"
      exit 1
    fi
  fi
}

# sha256 over the image's source files (names + contents), stored as a label so
# a stale image can be detected.
sources_hash() {
  local dir="$1"
  (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z \
     | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# The platform image is made of the repository's code and this machine's Node, not of images/<name>.
image_sources_hash() {
  case "$1" in
    fastcontainer)
      { (cd "$REPO_ROOT" && { find src bin images/fastcontainer -type f -print0 2>/dev/null; printf '%s\0' package.json package-lock.json; } \
          | LC_ALL=C sort -z | xargs -0 sha256sum); node --version; } | sha256sum | cut -d' ' -f1 ;;
    *) sources_hash "$IMAGES_DIR/$1" ;;
  esac
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# "212 MB": the image's size as docker image ls counts it (uncompressed layers).
image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%d MB", $1 / 1000000 }'; }

# The name an image is built under: --tag, else fastcontainer/<name>.
image_name() { if [[ -n "$TAG" ]]; then printf '%s' "$TAG"; else printf 'fastcontainer/%s' "$1"; fi; }

# The Debian packages an image installs besides its base: images/<name>/packages (one a line, #
# comments) and --packages. Printed space-separated, sorted, so that it can be compared and stored.
image_packages() {
  local list=() f="$IMAGES_DIR/$1/packages"
  if [[ -f "$f" ]]; then
    mapfile -t list < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$f" | grep -v '^$')
  fi
  list+=("${EXTRA_PACKAGES[@]}")
  ((${#list[@]})) || return 0
  printf '%s\n' "${list[@]}" | LC_ALL=C sort -u | paste -sd' '
}

# Prints elapsed time and mmdebstrap's current step every 15 s while a long build step runs
# (its own output goes to a log unless --verbose): a build is a minute or two of silence otherwise.
PROGRESS_PID=""
progress_start() {
  local logfile="$1" what="$2" t0=$SECONDS
  ((VERBOSE)) && return 0
  (
    trap 'exit 0' TERM
    while sleep 15; do
      local last
      last="$(grep -E '^(I|W): ' "$logfile" 2>/dev/null | tail -n 1 | cut -c1-100 || true)"
      log "  ... $what: $((SECONDS - t0))s${last:+, $last}"
    done
  ) &
  PROGRESS_PID=$!
}
progress_stop() {
  if [[ -n "$PROGRESS_PID" ]]; then
    kill "$PROGRESS_PID" 2>/dev/null || true
    wait "$PROGRESS_PID" 2>/dev/null || true
    PROGRESS_PID=""
  fi
}

require_cmd() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 \
    || die "'$cmd' not found: install the Debian package '$pkg' (apt-get install $pkg)"
}

require_deb() {
  local pkg="$1" why="$2"
  if command -v dpkg-query >/dev/null 2>&1; then
    local status
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == "install ok installed" ]] \
      || die "$pkg is not installed ($why): apt-get install $pkg"
  fi
}

# Replace tag $1 with the freshly imported image; drop the previous image it
# pointed to if nothing else uses it.
remove_old_image() {
  local old_id="$1" new_id="$2"
  if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 \
      || log "previous image $(printf %.12s "${old_id#sha256:}") is still used by a container; left it in place"
  fi
}

check_docker() {
  require_cmd docker docker.io
  docker info >/dev/null 2>&1 \
    || die "cannot talk to the Docker daemon (is dockerd running? try: nohup dockerd >/tmp/dockerd.log 2>&1 &)"
}

# ------------------------------------------------------ fastcontainer/hello --
build_hello() {
  local image="fastcontainer/hello" src="$IMAGES_DIR/hello"
  local busybox=/bin/busybox

  [[ -d "$src/www" && -f "$src/entrypoint.sh" ]] || die "missing $src/www or $src/entrypoint.sh (image sources)"
  require_deb busybox-static "provides the statically linked /bin/busybox for $image"
  [[ -x "$busybox" ]] || die "$busybox not found: apt-get install busybox-static"
  "$busybox" --list | grep -x httpd >/dev/null || die "$busybox has no httpd applet (is it the busybox-static build?)"
  require_cmd tar tar

  local t0=$SECONDS dir="$WORK/hello" root="$WORK/hello/rootfs"
  mkdir -p "$root"/{bin,etc,tmp,www}
  log "building $image from $busybox ..."

  cp "$busybox" "$root/bin/busybox"
  chmod 0755 "$root/bin/busybox"
  # Applet symlinks (sh for the CGI shebang, hostname, ls, ... for docker exec).
  local applet
  while read -r applet; do
    [[ -n "$applet" && "$applet" != busybox && "$applet" != */* ]] || continue
    ln -s busybox "$root/bin/$applet"
  done < <("$busybox" --list)

  if [[ -f "$src/passwd" ]]; then cp "$src/passwd" "$root/etc/passwd"; else
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  fi
  if [[ -f "$src/group" ]]; then cp "$src/group" "$root/etc/group"; else
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  fi
  chmod 0644 "$root/etc/passwd" "$root/etc/group"
  chmod 1777 "$root/tmp"

  # PID 1 wrapper around `busybox httpd -f -p 8080 -h /www` (see the file).
  cp "$src/entrypoint.sh" "$root/bin/fastcontainer-httpd"
  chmod 0755 "$root/bin/fastcontainer-httpd"

  cp -R "$src/www/." "$root/www/"
  # World-readable content, executable CGIs, regardless of the checkout's modes.
  find "$root/www" -type d -exec chmod 0755 {} +
  find "$root/www" -type f -exec chmod 0644 {} +
  if [[ -d "$root/www/cgi-bin" ]]; then
    find "$root/www/cgi-bin" -type f -exec chmod 0755 {} +
  fi

  tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$dir/rootfs.tar" .

  local old_id new_id
  old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
  run_logged "$dir/import.log" docker import \
    --message "fastcontainer hello image (busybox httpd)" \
    --change 'LABEL fastcontainer.image=hello' \
    --change "LABEL fastcontainer.sources=$(sources_hash "$src")" \
    --change 'ENTRYPOINT ["/bin/fastcontainer-httpd"]' \
    --change 'EXPOSE 8080' \
    --change 'USER 65534:65534' \
    --change 'WORKDIR /' \
    --change 'ENV PATH=/bin' \
    "$dir/rootfs.tar" "$image"
  new_id="$(docker image inspect -f '{{.Id}}' "$image")"
  remove_old_image "$old_id" "$new_id"
  log "built $image in $((SECONDS - t0))s"
}

# -------------------------------------------------------- fastcontainer/php --
build_php() {
  local image src="$IMAGES_DIR/php"
  image="$(image_name php)"
  local f
  for f in ports.conf mpm_prefork.conf fastcontainer.conf 000-default.conf index.php entrypoint.sh packages; do
    [[ -f "$src/$f" ]] || die "missing $src/$f (image sources)"
  done
  require_deb mmdebstrap "creates the Debian $SUITE root filesystem for $image"
  require_cmd mmdebstrap mmdebstrap

  local t0=$SECONDS dir="$WORK/php" packages include
  packages="$(image_packages php)"
  include="apache2,libapache2-mod-php,ca-certificates${packages:+,${packages// /,}}"
  mkdir -p "$dir"
  log "building $image with mmdebstrap (downloads packages from ${MIRROR%/debian}; takes a minute or two)..."
  log "  packages: apache2 libapache2-mod-php ca-certificates $packages"

  # The customize hook runs after all packages are installed; $1 is the chroot.
  # Configuration files are uploaded first (see the --customize-hook list below).
  local hook
  hook=$(cat <<'HOOK'
set -e
root="$1"
ch() { chroot "$root" "$@"; }
# mod_php needs prefork; keep only what a PHP site needs.
ch a2dismod -q -f mpm_event mpm_worker >/dev/null 2>&1 || true
ch a2enmod -q mpm_prefork php8.2 rewrite remoteip >/dev/null
ch a2dismod -q -f status autoindex >/dev/null
ch a2disconf -q other-vhosts-access-log serve-cgi-bin >/dev/null 2>&1 || true
# "zz-" so that it is loaded after Debian's security.conf etc. and wins.
ch a2enconf -q zz-fastcontainer >/dev/null
ch a2ensite -q 000-default >/dev/null
# Default document root: only our index.php (Debian's index.html is removed).
rm -f "$root/var/www/html/index.html"
chown -R root:root "$root/var/www/html"
chmod 0755 "$root/var/www/html"
chmod 0644 "$root/var/www/html/index.php"
chmod 0755 "$root/usr/local/bin/fastcontainer-apache"
# Runtime dirs writable by www-data (apache is never root in this image).
# Done inside the chroot: /var/run and /var/lock are absolute symlinks.
ch sh -c '. /etc/apache2/envvars
  mkdir -p /run/lock "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR"
  chmod 1777 /run/lock
  chown www-data:www-data "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR"'
# Logs go to stdout/stderr; make the default log paths point there as well in
# case something still refers to them.
mkdir -p "$root/var/log/apache2"
ln -sfT /proc/self/fd/2 "$root/var/log/apache2/error.log"
ln -sfT /proc/self/fd/1 "$root/var/log/apache2/access.log"
ln -sfT /proc/self/fd/1 "$root/var/log/apache2/other_vhosts_access.log"
ch chown -h www-data:www-data /var/log/apache2
# Sanity check of the final configuration (runs as root in the chroot; only the
# syntax is checked, nothing is started).
ch sh -c '. /etc/apache2/envvars && /usr/sbin/apache2 -t' >/dev/null
ch sh -c '. /etc/apache2/envvars && /usr/sbin/apache2 -M' | grep -q mpm_prefork_module
ch sh -c '. /etc/apache2/envvars && /usr/sbin/apache2 -M' | grep -q remoteip_module
# Do not ship the build host's identity; docker provides these at run time.
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"
rm -rf "$root/var/cache/apt/"*.bin "$root/var/cache/debconf/"*-old "$root/var/lib/apt/lists/"* \
       "$root/var/log/apt/"* "$root/var/log/"*.log
HOOK
)

  progress_start "$dir/mmdebstrap.log" "mmdebstrap $image"
  run_logged "$dir/mmdebstrap.log" mmdebstrap \
    --variant=apt \
    --include="$include" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/linda/*' \
    --dpkgopt='path-exclude=/usr/share/groff/*' \
    --skip=cleanup/run \
    --customize-hook="upload $src/ports.conf /etc/apache2/ports.conf" \
    --customize-hook="upload $src/mpm_prefork.conf /etc/apache2/mods-available/mpm_prefork.conf" \
    --customize-hook="upload $src/fastcontainer.conf /etc/apache2/conf-available/zz-fastcontainer.conf" \
    --customize-hook="upload $src/000-default.conf /etc/apache2/sites-available/000-default.conf" \
    --customize-hook="upload $src/index.php /var/www/html/index.php" \
    --customize-hook="upload $src/entrypoint.sh /usr/local/bin/fastcontainer-apache" \
    --customize-hook="$hook" \
    "$SUITE" "$dir/rootfs.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  progress_stop
  log "rootfs ready after $((SECONDS - t0))s ($(du -m "$dir/rootfs.tar" | cut -f1) MB tar); importing into docker..."

  # /dev is provided by the container runtime; do not import device nodes.
  mmtarfilter --path-exclude='/dev/*' <"$dir/rootfs.tar" >"$dir/rootfs-nodev.tar"
  rm -f "$dir/rootfs.tar"

  local old_id new_id
  old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
  run_logged "$dir/import.log" docker import \
    --message "fastcontainer php image (Debian $SUITE, apache2 + mod_php)" \
    --change 'LABEL fastcontainer.image=php' \
    --change "LABEL fastcontainer.sources=$(sources_hash "$src")" \
    --change "LABEL fastcontainer.packages=\"$packages\"" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/usr/local/bin/fastcontainer-apache"]' \
    --change 'EXPOSE 8080' \
    --change 'USER www-data' \
    --change 'WORKDIR /var/www/html' \
    "$dir/rootfs-nodev.tar" "$image"
  new_id="$(docker image inspect -f '{{.Id}}' "$image")"
  remove_old_image "$old_id" "$new_id"
  log "built $image in $((SECONDS - t0))s ($(image_size "$image"))"
}

# ----------------------------------------------------- fastcontainer/static --
build_static() {
  local image src="$IMAGES_DIR/static"
  image="$(image_name static)"
  local f
  for f in nginx.conf index.html; do
    [[ -f "$src/$f" ]] || die "missing $src/$f (image sources)"
  done
  require_deb mmdebstrap "creates the Debian $SUITE root filesystem for $image"
  require_cmd mmdebstrap mmdebstrap

  local t0=$SECONDS dir="$WORK/static" packages
  packages="$(image_packages static)"
  mkdir -p "$dir"
  log "building $image with mmdebstrap (downloads packages from ${MIRROR%/debian}; takes a minute)..."

  # The customize hook runs after all packages are installed; $1 is the chroot.
  local hook
  hook=$(cat <<'HOOK'
set -e
root="$1"
ch() { chroot "$root" "$@"; }
# Default document root: only our index.html (Debian's welcome page is removed).
rm -f "$root/var/www/html/"index.nginx-debian.html
chown -R root:root "$root/var/www/html"
chmod 0755 "$root/var/www/html"
chmod 0644 "$root/var/www/html/index.html" "$root/etc/nginx/fastcontainer.conf"
# Debian's site, module and log setup is not used (see fastcontainer.conf); in case something
# still writes to the default log paths, they point at stdout/stderr.
rm -rf "$root/var/log/nginx"
mkdir -p "$root/var/log/nginx"
ln -sfT /proc/self/fd/2 "$root/var/log/nginx/error.log"
ln -sfT /proc/self/fd/1 "$root/var/log/nginx/access.log"
# The configuration is checked as the user it runs as, with the flags the entrypoint uses.
ch setpriv --reuid=www-data --regid=www-data --clear-groups \
  /usr/sbin/nginx -e stderr -c /etc/nginx/fastcontainer.conf -t -q
rm -rf "$root/tmp/"nginx-*
# Do not ship the build host's identity; docker provides these at run time.
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"
rm -rf "$root/var/cache/apt/"*.bin "$root/var/cache/debconf/"*-old "$root/var/lib/apt/lists/"* \
       "$root/var/log/apt/"* "$root/var/log/"*.log
HOOK
)

  # The essential variant has no apt in the image: the site's files are all it serves. mmdebstrap's
  # merged-usr hook lays out /usr as bookworm wants without the usrmerge package, which would
  # bring Perl (45 MB) into the image.
  local merged_usr=()
  [[ -d /usr/share/mmdebstrap/hooks/merged-usr ]] && merged_usr=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
  progress_start "$dir/mmdebstrap.log" "mmdebstrap $image"
  run_logged "$dir/mmdebstrap.log" mmdebstrap \
    --variant=essential \
    "${merged_usr[@]}" \
    --include="nginx-light${packages:+,${packages// /,}}" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/linda/*' \
    --dpkgopt='path-exclude=/usr/share/groff/*' \
    --skip=cleanup/run \
    --customize-hook="upload $src/nginx.conf /etc/nginx/fastcontainer.conf" \
    --customize-hook="upload $src/index.html /var/www/html/index.html" \
    --customize-hook="$hook" \
    "$SUITE" "$dir/rootfs.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  progress_stop
  log "rootfs ready after $((SECONDS - t0))s ($(du -m "$dir/rootfs.tar" | cut -f1) MB tar); importing into docker..."

  # /dev is provided by the container runtime; do not import device nodes.
  mmtarfilter --path-exclude='/dev/*' <"$dir/rootfs.tar" >"$dir/rootfs-nodev.tar"
  rm -f "$dir/rootfs.tar"

  local old_id new_id
  old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
  # nginx is PID 1: its master reaps its workers, and SIGTERM (docker stop) is its fast shutdown.
  run_logged "$dir/import.log" docker import \
    --message "fastcontainer static image (Debian $SUITE, nginx-light)" \
    --change 'LABEL fastcontainer.image=static' \
    --change "LABEL fastcontainer.sources=$(sources_hash "$src")" \
    --change "LABEL fastcontainer.packages=\"$packages\"" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/usr/sbin/nginx", "-e", "stderr", "-c", "/etc/nginx/fastcontainer.conf"]' \
    --change 'EXPOSE 8080' \
    --change 'USER www-data' \
    --change 'WORKDIR /var/www/html' \
    "$dir/rootfs-nodev.tar" "$image"
  new_id="$(docker image inspect -f '{{.Id}}' "$image")"
  remove_old_image "$old_id" "$new_id"
  log "built $image in $((SECONDS - t0))s ($(image_size "$image"))"
}

# ---------------------------------------------- fastcontainer/fastcontainer --
# The platform's roles as containers (compose/). Debian's nodejs in bookworm is 18, older than the
# 20.18 the code needs, so the Node of this machine (the one the tests run) goes in: it is checked
# to need only libraries the image has (glibc, libstdc++, libgcc). The code is dist/ (built here)
# and the production part of node_modules (a copy pruned of dev dependencies, offline).
build_fastcontainer() {
  local image="fastcontainer/fastcontainer" src="$IMAGES_DIR/fastcontainer"
  [[ -f "$src/redis.conf" ]] || die "missing $src/redis.conf (image sources)"
  require_deb mmdebstrap "creates the Debian $SUITE root filesystem for $image"
  require_cmd mmdebstrap mmdebstrap
  require_cmd npm npm
  local node_bin
  node_bin="$(readlink -f "$(command -v node)")" || die "node not found (Node >= 20.18 is needed)"
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' \
    || die "Node >= 20.18 is needed in the image; this machine has $(node --version)"
  # Every library the binary links must be one the image gets from Debian.
  local lib
  while read -r lib; do
    case "$lib" in
      linux-vdso.so.*|libdl.so.*|libstdc++.so.*|libm.so.*|libgcc_s.so.*|libpthread.so.*|libc.so.*|ld-linux-*|/lib64/ld-linux-*) ;;
      *) die "$node_bin links $lib, which $image would not have (add its Debian package to the --include list)" ;;
    esac
  done < <(ldd "$node_bin" | awk '{ print $1 }')

  local t0=$SECONDS dir="$WORK/fastcontainer" app="$WORK/fastcontainer/opt/fastcontainer" sources
  # Hashed before the build: a source changed while it runs makes the image stale, not mislabelled.
  sources="$(image_sources_hash fastcontainer)"
  mkdir -p "$app"
  log "building $image: npm run build, then the production node_modules ..."
  run_logged "$dir/build.log" npm --prefix "$REPO_ROOT" run --silent build
  cp -R "$REPO_ROOT/dist" "$REPO_ROOT/bin" "$REPO_ROOT/package.json" "$REPO_ROOT/package-lock.json" "$app/"
  # node_modules may be a symbolic link (shared checkouts): copy what it points at, then prune.
  cp -RL "$REPO_ROOT/node_modules" "$app/node_modules"
  run_logged "$dir/prune.log" npm --prefix "$app" prune --omit=dev --offline --ignore-scripts --no-audit --no-fund
  rm -f "$app/node_modules/.fc-lock-sha256" "$app/node_modules/.package-lock.json"
  find "$app" -type d -exec chmod 0755 {} +
  find "$app" -type f -exec chmod go+r,go-w {} +
  log "app ready ($(du -sm "$app" | cut -f1) MB with node_modules); mmdebstrap (downloads packages from ${MIRROR%/debian}; a minute or two)..."

  local hook
  hook=$(cat <<'HOOK'
set -e
root="$1"
ch() { chroot "$root" "$@"; }
chown -R root:root "$root/opt/fastcontainer"
chmod 0755 "$root/usr/local/bin/node"
chmod 0644 "$root/etc/fastcontainer/redis.conf"
# The state directory of a role that runs without a volume; a volume mounted there replaces it.
mkdir -p "$root/var/lib/fastcontainer"
chown 65534:65534 "$root/var/lib/fastcontainer"
# The code must load in the image (a missing library or module fails the build, not the deploy).
ch /usr/local/bin/node /opt/fastcontainer/bin/fastcontainer.js --help >/dev/null
ch redis-server --version >/dev/null
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"
rm -rf "$root/var/cache/apt/"*.bin "$root/var/cache/debconf/"*-old "$root/var/lib/apt/lists/"* \
       "$root/var/log/apt/"* "$root/var/log/"*.log
HOOK
)
  local merged_usr=()
  [[ -d /usr/share/mmdebstrap/hooks/merged-usr ]] && merged_usr=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
  run_logged "$dir/mmdebstrap.log" mmdebstrap \
    --variant=essential \
    "${merged_usr[@]}" \
    --include=libstdc++6,ca-certificates,redis-server,tini \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --skip=cleanup/run \
    --customize-hook="copy-in $dir/opt /" \
    --customize-hook="upload $node_bin /usr/local/bin/node" \
    --customize-hook="mkdir -p \"\$1/etc/fastcontainer\"" \
    --customize-hook="upload $src/redis.conf /etc/fastcontainer/redis.conf" \
    --customize-hook="$hook" \
    "$SUITE" "$dir/rootfs.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  log "rootfs ready after $((SECONDS - t0))s ($(du -m "$dir/rootfs.tar" | cut -f1) MB tar); importing into docker..."
  mmtarfilter --path-exclude='/dev/*' <"$dir/rootfs.tar" >"$dir/rootfs-nodev.tar"
  rm -f "$dir/rootfs.tar"

  local old_id new_id
  old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
  # tini is PID 1: it hands SIGTERM to node (whose handler drains: the graceful stop) and reaps.
  # Unprivileged by default; compose/ runs only the dispatchers as root (the engine's socket).
  run_logged "$dir/import.log" docker import \
    --message "fastcontainer platform image (Debian $SUITE, Node $(node --version), redis-server)" \
    --change 'LABEL fastcontainer.image=fastcontainer' \
    --change "LABEL fastcontainer.sources=$sources" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_ENV=production' \
    --change 'ENV FC_STATE_DIR=/var/lib/fastcontainer' \
    --change 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/node", "/opt/fastcontainer/bin/fastcontainer.js"]' \
    --change 'CMD ["--help"]' \
    --change 'USER 65534:65534' \
    --change 'WORKDIR /opt/fastcontainer' \
    "$dir/rootfs-nodev.tar" "$image"
  new_id="$(docker image inspect -f '{{.Id}}' "$image")"
  remove_old_image "$old_id" "$new_id"
  log "built $image in $((SECONDS - t0))s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{ printf "%d MB", $1 / 1e6 }'))"
}

# ------------------------------------------------- fastcontainer/prometheus --
build_prometheus() {
  local image="fastcontainer/prometheus" src="$IMAGES_DIR/prometheus"
  require_deb mmdebstrap "creates the Debian $SUITE root filesystem for $image"
  require_cmd mmdebstrap mmdebstrap
  local t0=$SECONDS dir="$WORK/prometheus"
  mkdir -p "$dir"
  log "building $image with mmdebstrap (Debian's prometheus; a minute or two)..."
  local hook
  hook=$(cat <<'HOOK'
set -e
root="$1"
mkdir -p "$root/prometheus"
chroot "$root" chown prometheus:prometheus /prometheus
chroot "$root" /usr/bin/prometheus --version >/dev/null
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"
rm -rf "$root/var/cache/apt/"*.bin "$root/var/lib/apt/lists/"* "$root/var/log/apt/"* "$root/var/log/"*.log
HOOK
)
  local merged_usr=()
  [[ -d /usr/share/mmdebstrap/hooks/merged-usr ]] && merged_usr=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
  run_logged "$dir/mmdebstrap.log" mmdebstrap \
    --variant=essential \
    "${merged_usr[@]}" \
    --include=prometheus \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --skip=cleanup/run \
    --customize-hook="$hook" \
    "$SUITE" "$dir/rootfs.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  mmtarfilter --path-exclude='/dev/*' <"$dir/rootfs.tar" >"$dir/rootfs-nodev.tar"
  rm -f "$dir/rootfs.tar"
  local old_id new_id
  old_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
  run_logged "$dir/import.log" docker import \
    --message "fastcontainer prometheus image (Debian $SUITE prometheus)" \
    --change 'LABEL fastcontainer.image=prometheus' \
    --change "LABEL fastcontainer.sources=$(sources_hash "$src")" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["/usr/bin/prometheus"]' \
    --change 'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    --change 'USER prometheus' \
    --change 'WORKDIR /prometheus' \
    --change 'EXPOSE 9090' \
    "$dir/rootfs-nodev.tar" "$image"
  new_id="$(docker image inspect -f '{{.Id}}' "$image")"
  remove_old_image "$old_id" "$new_id"
  log "built $image in $((SECONDS - t0))s"
}

# --------------------------------------------------------------------- main --
check_docker
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastcontainer-images.XXXXXX")"

for name in "${SELECTED[@]}"; do
  image="$(image_name "$name")"
  if ((!FORCE)) && image_exists "$image"; then
    built_hash="$(docker image inspect -f '{{index .Config.Labels "fastcontainer.sources"}}' "$image" 2>/dev/null || true)"
    built_packages="$(docker image inspect -f '{{index .Config.Labels "fastcontainer.packages"}}' "$image" 2>/dev/null || true)"
    if [[ -n "$built_hash" && -d "$IMAGES_DIR/$name" && "$built_hash" != "$(image_sources_hash "$name")" ]]; then
      # Stale: the image would not be what images/<name> says. Rebuilt, so tests and benchmarks
      # run what the sources describe.
      log "$image exists but images/$name changed since it was built: rebuilding"
    elif [[ -n "$built_hash" && "$name" != hello && "$built_packages" != "$(image_packages "$name")" ]]; then
      log "$image exists with packages '${built_packages}', not '$(image_packages "$name")': rebuilding"
    else
      log "$image exists, skipping (use --force to rebuild)"
      continue
    fi
  fi
  "build_$name"
done
