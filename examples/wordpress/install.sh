#!/usr/bin/env bash
# WordPress on fastcontainer in one command (`npm run example:wordpress`), on a fresh Debian
# bookworm machine:
#
#   1. the platform's setup (scripts/setup.sh: Docker, Redis, build, images with the PHP extensions
#      WordPress needs) and the example's packages (scripts/setup-wordpress.sh: MariaDB, WordPress,
#      its default theme, Chromium);
#   2. the database's address as containers see it (the Docker network's gateway; with tenant
#      network isolation, the host's primary address, allowed for the app in FC_TENANT_SERVICES);
#   3. the platform itself (`fastcontainer up`, in the background) unless a CoreAPI answers; then
#      MariaDB, one per host, own data directory and port (examples/wordpress/mariadb.sh), and a
#      database and an account for this site, valid from the containers' subnet only;
#   4. WordPress laid out in the app's DataPool directory: code/ (Debian's files with every link
#      dereferenced, its theme, a generated wp-config.php with unique salts) mounted read-only,
#      uploads/ mounted writable;
#   5. the app (the DB password in its write-only secrets), WordPress's installer run over HTTP
#      through the proxy, and the URL, the admin user and the password's file printed.
#
# Run again, it changes nothing that exists: same files, same passwords, the app brought to the
# same spec. `examples/wordpress/install.sh stop` stops what it started (MariaDB, the platform).
#
# Settings (environment):
#   FC_WP_APP           app name                                   wordpress
#   FC_WP_HOSTNAME      the site's host name                       <app>.localhost (browsers resolve
#                                                                  *.localhost to this machine)
#   FC_WP_URL           the site's address for visitors            http://<hostname>:<proxy port>
#   FC_WP_PROXY         where the proxy listens (for the installer) http://127.0.0.1:<proxy port>
#   FC_WP_IMAGE         the PHP image                              fastcontainer/php
#   FC_WP_DB_HOST       the database's address as containers see it: the gateway of
#                       FC_DOCKER_NETWORK, or with network isolation on, the host's primary
#                       address (listed for the app in FC_TENANT_SERVICES when it starts the platform)
#   FC_WP_DB_PORT       its port                                   3307
#   FC_WP_DB_EXTERNAL=1 use a database that is already there (FC_WP_DB_HOST/PORT, FC_WP_DB_NAME,
#                       FC_WP_DB_USER, the password in <secrets dir>/db-password): no local MariaDB
#   FC_WP_SECRETS_DIR   where the generated passwords are kept     <repo>/.state/wordpress/<app>
#   FC_WP_LIFESPAN      seconds a container lives                  the platform's default
#   FC_WP_SKIP_SETUP=1  skip scripts/setup.sh (the machine is set up)
#   FC_WP_START_PLATFORM=0  never start `fastcontainer up` (fail if no CoreAPI answers)
# The platform's own settings (FC_API_URL, FC_API_TOKEN, FC_STATE_DIR, FC_VOLUME_ROOTS,
# FC_PROXY_PORT, FC_DOCKER_NETWORK) are read as the `fastcontainer` command reads them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/examples/wordpress"
STATE="$REPO/.state"
cd "$REPO"
T0=$(date +%s)

log() { printf '[wordpress] %s\n' "$*" >&2; }
die() { printf '[wordpress] ERROR: %s\n' "$*" >&2; exit 1; }

# Root: it installs packages, starts mariadbd as the mysql user and gives the files their owners
# (code root's, uploads the container's www-data).
[ "$(id -u)" -eq 0 ] || die "run it as root (sudo npm run example:wordpress)"
APP="${FC_WP_APP:-wordpress}"
[[ "$APP" =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] || die "FC_WP_APP '$APP' is not an app name (lower-case letters, digits, inner hyphens)"
SECRETS="${FC_WP_SECRETS_DIR:-$STATE/wordpress/$APP}"

if [ "${1:-}" = "stop" ]; then
  if [ -f "$STATE/fastcontainer-up.pid" ] && kill -0 "$(cat "$STATE/fastcontainer-up.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$STATE/fastcontainer-up.pid")" && log "stopping the platform this example started (pid $(cat "$STATE/fastcontainer-up.pid"))"
    rm -f "$STATE/fastcontainer-up.pid"
  fi
  exec bash "$HERE/mariadb.sh" stop
fi

# ------------------------------------------------------------------------ 1. packages, images --
if [ "${FC_WP_SKIP_SETUP:-0}" != "1" ]; then
  bash "$REPO/scripts/setup.sh"
fi
bash "$REPO/scripts/setup-wordpress.sh"
[ -f "$REPO/dist/cli/main.js" ] || npm run --silent build >/dev/null

fc() { node "$REPO/bin/fastcontainer.js" "$@"; }
# One setting of the `fastcontainer` command's effective configuration, as JSON.
setting() { fc config --json | node -e 'let t = ""; process.stdin.on("data", (d) => (t += d)).on("end", () => console.log(JSON.stringify(JSON.parse(t)[process.argv[1]] ?? null)))' "$1"; }
json() { node -e 'const v = JSON.parse(process.argv[1]); console.log(Array.isArray(v) ? v.join("\n") : v)' "$1"; }

IMAGE="${FC_WP_IMAGE:-fastcontainer/php}"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE is missing: bash scripts/build-images.sh php"
docker run --rm --label fastcontainer.check=wordpress --network none --entrypoint php "$IMAGE" -r 'exit(extension_loaded("mysqli") ? 0 : 1);' \
  || die "image $IMAGE has no mysqli extension: rebuild it with bash scripts/build-images.sh --force php"

# ------------------------------------------------------------------- 2. where the database is --
# The address containers use for the database. Without network isolation: the gateway of the
# containers' Docker network (reachable from containers only, not from the LAN). With it (the
# dispatcher then makes its own network at start, so its gateway is not known yet, and the host's
# addresses are closed to containers but for the services listed in FC_TENANT_SERVICES, read at
# start): the host's primary address, known now and listed for the app when the platform starts.
NETWORK="$(json "$(setting dockerNetwork)")"
ISOLATION="$(setting networkIsolation)"
DB_PORT="${FC_WP_DB_PORT:-3307}"
gateway() { docker network inspect "$NETWORK" -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' 2>/dev/null | awk '{print $1}'; }
primary_address() { ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1; }
if [ -n "${FC_WP_DB_HOST:-}" ]; then
  DB_HOST="$FC_WP_DB_HOST"
elif [ "$ISOLATION" != "true" ] && [ -n "$(gateway)" ]; then
  DB_HOST="$(gateway)"
else
  DB_HOST="$(primary_address)"
fi
[ -n "$DB_HOST" ] || die "cannot tell the database's address as containers see it: set FC_WP_DB_HOST"
SERVICE="$APP=$DB_HOST:$DB_PORT"
DB_NAME="${FC_WP_DB_NAME:-wp_${APP//-/_}}"
DB_USER="${FC_WP_DB_USER:-wp_${APP//-/_}}"
mkdir -p "$SECRETS"; chmod 0700 "$SECRETS"
# A password made once and kept, mode 0600, readable by this user only.
secret_file() {
  local f="$SECRETS/$1"
  if [ ! -s "$f" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$f")
  fi
  chmod 0600 "$f"
  printf '%s' "$f"
}
if [ "${FC_WP_DB_EXTERNAL:-0}" = "1" ] && [ ! -s "$SECRETS/db-password" ]; then
  die "FC_WP_DB_EXTERNAL=1: put the database user's password in $SECRETS/db-password (mode 0600) first"
fi
DB_PASSWORD_FILE="$(secret_file db-password)"
ADMIN_PASSWORD_FILE="$(secret_file admin-password)"

# ---------------------------------------------------------------------------------- 3. platform --
API_URL="$(json "$(setting apiUrl)")"
STATE_DIR="$(json "$(setting stateDir)")"
listed() { [[ " ${FC_TENANT_SERVICES//,/ } " == *" $SERVICE "* || " ${FC_TENANT_SERVICES//,/ } " == *" *=$DB_HOST:$DB_PORT "* ]]; }
if curl -fsS -m 3 "$API_URL/healthz" >/dev/null 2>&1; then
  log "the CoreAPI answers at $API_URL"
  if [ "$ISOLATION" = "true" ] && ! listed; then
    log "NOTE: network isolation is on: the platform must have been started with FC_TENANT_SERVICES containing $SERVICE (it is read at start), or the site cannot reach its database"
  fi
elif [ "${FC_WP_START_PLATFORM:-1}" = "1" ]; then
  services="${FC_TENANT_SERVICES:-}"
  if [ "$ISOLATION" = "true" ] && ! listed; then services="${services:+$services }$SERVICE"; fi
  log "starting the platform: fastcontainer up (log: $STATE/fastcontainer-up.log; stop: $0 stop)${services:+, FC_TENANT_SERVICES=\"$services\"}..."
  FC_TENANT_SERVICES="$services" setsid nohup node "$REPO/bin/fastcontainer.js" up >>"$STATE/fastcontainer-up.log" 2>&1 </dev/null &
  echo $! >"$STATE/fastcontainer-up.pid"
  for _ in $(seq 1 120); do
    curl -fsS -m 2 "$API_URL/healthz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$STATE/fastcontainer-up.pid")" 2>/dev/null || { tail -20 "$STATE/fastcontainer-up.log" >&2; die "fastcontainer up exited (log: $STATE/fastcontainer-up.log)"; }
    sleep 0.5
  done
  curl -fsS -m 2 "$API_URL/healthz" >/dev/null 2>&1 || die "the CoreAPI did not answer at $API_URL within 60 s (log: $STATE/fastcontainer-up.log)"
else
  die "no CoreAPI answers at $API_URL (start the platform: npm start, or unset FC_WP_START_PLATFORM)"
fi
TOKEN="${FC_API_TOKEN:-}"
if [ -z "$TOKEN" ]; then
  [ -r "$STATE_DIR/api-token" ] || die "no admin token: set FC_API_TOKEN or make $STATE_DIR/api-token readable"
  TOKEN="$(cat "$STATE_DIR/api-token")"
fi

# --------------------------------------------------------------------- 3b. MariaDB, the account --
if [ "${FC_WP_DB_EXTERNAL:-0}" != "1" ]; then
  # Listening on loopback (for the operator) and on the address containers use, nowhere else.
  FC_WP_DB_PORT="$DB_PORT" FC_WP_DB_BIND="${FC_WP_DB_BIND:-127.0.0.1,$DB_HOST}" bash "$HERE/mariadb.sh" start
  # The account may connect only from the containers' network (its subnet exists now: the
  # dispatcher makes its network at start). Names and password never reach a command line: the
  # SQL goes in on stdin.
  SUBNET=""
  for _ in $(seq 1 40); do
    SUBNET="$(docker network inspect "$NETWORK" -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9.]+/[0-9]+$' || true)"
    [ -n "$SUBNET" ] && break
    sleep 0.5
  done
  [ -n "$SUBNET" ] || die "no IPv4 subnet on the containers' Docker network $NETWORK"
  USER_HOST="$(node -e '
    const [net, bits] = process.argv[1].split("/"); const n = Number(bits);
    const mask = [0, 1, 2, 3].map((i) => { const b = Math.max(0, Math.min(8, n - 8 * i)); return (0xff << (8 - b)) & 0xff; });
    console.log(`${net}/${mask.join(".")}`);' "$SUBNET")"
  FC_WP_DB_PORT="$DB_PORT" bash "$HERE/mariadb.sh" sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$DB_USER'@'$USER_HOST' IDENTIFIED BY '$(cat "$DB_PASSWORD_FILE")';
ALTER USER '$DB_USER'@'$USER_HOST' IDENTIFIED BY '$(cat "$DB_PASSWORD_FILE")';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'$USER_HOST';
SQL
  log "database $DB_NAME and user $DB_USER@$USER_HOST ready at $DB_HOST:$DB_PORT (as containers see it)"
fi

# ------------------------------------------------------------------------------------- 4. files --
# The app's DataPool directory: the first volume root, {app} replaced (a root without {app} is
# shared by every app: the site gets <root>/<app>).
ROOT="$(json "$(setting volumeRoots)" | head -n 1)"
[ -n "$ROOT" ] || die "FC_VOLUME_ROOTS allows no volumes: WordPress needs two"
if [[ "/$ROOT/" == */\{app\}/* ]]; then SITE="${ROOT//\{app\}/$APP}"; else SITE="$ROOT/$APP"; fi
CODE="$SITE/code"
UPLOADS="$SITE/uploads"
mkdir -p "$SITE"
if [ -f "$CODE/wp-config.php" ] && [ "${FC_WP_RELAYOUT:-0}" != "1" ]; then
  log "WordPress files in $CODE exist: kept (FC_WP_RELAYOUT=1 lays them out again)"
else
  log "laying out WordPress in $CODE ..."
  rm -rf "$CODE.new"
  # Debian's /usr/share/wordpress links into other packages (getID3, underscore, cropper, the CA
  # bundle) and /etc/wordpress: -L copies what the links point to, so the tree stands alone in a
  # container. Its wp-config.php (which reads /etc/wordpress/config-<host>.php) and .htaccess are
  # replaced by ours.
  cp -rL /usr/share/wordpress "$CODE.new"
  [ -d "$CODE.new/wp-content/themes/twentytwentythree" ] || die "no twentytwentythree theme: apt-get install wordpress-theme-twentytwentythree"
  rm -f "$CODE.new/wp-config.php" "$CODE.new/.htaccess"
  salt() { head -c 48 /dev/urandom | base64 | tr -d '\n'; }
  {
    cat <<'PHP'
<?php
// Written by examples/wordpress/install.sh. The database's address, name and user come from the
// app's env, its password from the app's secrets (write-only in the CoreAPI): nothing here needs
// to change to point the site at another database (`fastcontainer app update`).
define('DB_NAME', getenv('WORDPRESS_DB_NAME') ?: 'wordpress');
define('DB_USER', getenv('WORDPRESS_DB_USER') ?: 'wordpress');
define('DB_PASSWORD', getenv('WORDPRESS_DB_PASSWORD') ?: '');
define('DB_HOST', getenv('WORDPRESS_DB_HOST') ?: '127.0.0.1');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = 'wp_';

// Unique to this site, made when it was laid out: they sign the login cookies.
PHP
    for k in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
      printf "define('%s', '%s');\n" "$k" "$(salt)"
    done
    cat <<'PHP'

// The code is mounted read-only: no updates, plugin or theme installs from the dashboard (a new
// version is a new layout). Uploads go to wp-content/uploads, the writable volume.
define('DISALLOW_FILE_MODS', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);

// The platform's proxy sets X-Forwarded-Proto itself (a client's copy is dropped).
if (($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '') === 'https') {
	$_SERVER['HTTPS'] = 'on';
}

if (!defined('ABSPATH')) {
	define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
PHP
  } >"$CODE.new/wp-config.php"
  # Permalinks (/2025/01/hello-world/) need these rules; WordPress cannot write them (read-only code).
  cat >"$CODE.new/.htaccess" <<'HT'
# BEGIN WordPress (examples/wordpress/install.sh)
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteBase /
RewriteRule ^index\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>
# END WordPress
HT
  # The mount point of the uploads volume, inside the read-only code.
  mkdir -p "$CODE.new/wp-content/uploads"
  chown -R 0:0 "$CODE.new"
  find "$CODE.new" -type d -exec chmod 0755 {} +
  find "$CODE.new" -type f -exec chmod 0644 {} +
  # The salts: readable by the container's www-data (uid 33 in Debian), not by other users here.
  chown 0:33 "$CODE.new/wp-config.php"; chmod 0640 "$CODE.new/wp-config.php"
  # Running containers have the previous tree mounted (by inode): it is kept as code.old, so they
  # serve it until they are replaced, and removed at the next layout.
  rm -rf "$CODE.old"
  if [ -d "$CODE" ]; then mv "$CODE" "$CODE.old"; fi
  mv "$CODE.new" "$CODE"
fi
mkdir -p "$UPLOADS"
chown 33:33 "$UPLOADS"; chmod 0755 "$UPLOADS"

# --------------------------------------------------------------------------- 5. app, installer --
PROXY_PORT="$(json "$(setting proxyPort)")"
HOSTNAME_="${FC_WP_HOSTNAME:-$APP.localhost}"
URL="${FC_WP_URL:-http://$HOSTNAME_:$PROXY_PORT}"
PROXY="${FC_WP_PROXY:-http://127.0.0.1:$PROXY_PORT}"
SPEC="$(umask 077; mktemp "${TMPDIR:-/tmp}/fc-wordpress-spec.XXXXXX")"
trap 'rm -f "$SPEC"' EXIT
node -e '
  const [app, host, image, dbHost, dbName, dbUser, pwFile, code, uploads, lifespan] = process.argv.slice(1);
  const spec = {
    name: app, hostnames: [host], image, port: 8080,
    env: { WORDPRESS_DB_HOST: dbHost, WORDPRESS_DB_NAME: dbName, WORDPRESS_DB_USER: dbUser },
    secrets: { WORDPRESS_DB_PASSWORD: require("fs").readFileSync(pwFile, "utf8").trim() },
    volumes: [`${code}:/var/www/html:ro`, `${uploads}:/var/www/html/wp-content/uploads:rw`],
    cpus: 1, memory: "256m",
    ...(lifespan === "" ? {} : { lifespan: Number(lifespan) }),
  };
  require("fs").writeFileSync(process.argv.at(-1), JSON.stringify(spec));
' "$APP" "$HOSTNAME_" "$IMAGE" "$DB_HOST:$DB_PORT" "$DB_NAME" "$DB_USER" "$DB_PASSWORD_FILE" "$CODE" "$UPLOADS" "${FC_WP_LIFESPAN:-}" "$SPEC"

FC_API_URL="$API_URL" FC_WP_API_TOKEN="$TOKEN" FC_WP_PROXY="$PROXY" FC_WP_URL="$URL" FC_WP_SPEC="$SPEC" \
  FC_WP_ADMIN_USER="${FC_WP_ADMIN_USER:-admin}" FC_WP_ADMIN_PASSWORD_FILE="$ADMIN_PASSWORD_FILE" \
  node "$HERE/provision.mjs"

cat <<DONE

WordPress is ready ($(( $(date +%s) - T0 )) s):
  site       $URL/
  dashboard  $URL/wp-admin/
  admin      ${FC_WP_ADMIN_USER:-admin}, password in $ADMIN_PASSWORD_FILE (mode 0600)
  files      $CODE (read-only in the container), $UPLOADS (uploads, writable)
  database   $DB_NAME at $DB_HOST:$DB_PORT (user $DB_USER, password in $DB_PASSWORD_FILE and in the app's secrets)
  network    with tenant network isolation on, the dispatcher needs FC_TENANT_SERVICES="$SERVICE"
DONE
