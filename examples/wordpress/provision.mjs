// The HTTP half of the WordPress example (install.sh does the host's half: packages, MariaDB, the
// files): creates or updates the app through the CoreAPI, then runs WordPress's installer through
// the proxy, as a visitor would, and checks that the site answers. Node built-ins only.
//
// Input, all from the environment (install.sh sets them):
//   FC_API_URL, FC_WP_API_TOKEN   the CoreAPI and its admin token
//   FC_WP_PROXY                   where the proxy listens, e.g. http://127.0.0.1:8080
//   FC_WP_URL                     the site's address as visitors use it, e.g. http://wordpress.localhost:8080
//   FC_WP_SPEC                    a file (mode 0600) with the app spec as JSON, secrets included
//   FC_WP_TITLE, FC_WP_ADMIN_USER, FC_WP_ADMIN_EMAIL, FC_WP_ADMIN_PASSWORD_FILE
//   FC_WP_TIMEOUT_S               how long the first page may take (a cold start, image on disk)

import http from 'node:http';
import { readFileSync } from 'node:fs';

const env = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} is not set`);
  }
  return v;
};

const log = (msg) => process.stderr.write(`[wordpress] ${msg}\n`);

const apiUrl = env('FC_API_URL', 'http://127.0.0.1:8081').replace(/\/$/, '');
const token = env('FC_WP_API_TOKEN');
const proxy = new URL(env('FC_WP_PROXY', 'http://127.0.0.1:8080'));
const site = new URL(env('FC_WP_URL'));
const spec = JSON.parse(readFileSync(env('FC_WP_SPEC'), 'utf8'));
const timeoutMs = Number(env('FC_WP_TIMEOUT_S', '120')) * 1000;

/** One HTTP request; the body as text. `host` sends the request to the proxy with that Host. */
function call(method, url, { headers = {}, body = null, host = null } = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = http.request(
      {
        method,
        hostname: host === null ? target.hostname : proxy.hostname,
        port: host === null ? target.port : proxy.port,
        path: `${target.pathname}${target.search}`,
        headers: { ...(host === null ? {} : { host }), ...headers, ...(body === null ? {} : { 'content-length': Buffer.byteLength(body) }) },
        timeout: 60_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within 60 s`)));
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

async function api(method, path, payload) {
  const res = await call(method, `${apiUrl}${path}`, {
    headers: { authorization: `Bearer ${token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
    body: payload === undefined ? null : JSON.stringify(payload),
  });
  let parsed;
  try {
    parsed = res.body === '' ? undefined : JSON.parse(res.body);
  } catch {
    parsed = res.body;
  }
  return { status: res.status, body: parsed };
}

function problem(res) {
  const b = res.body ?? {};
  const fields = Array.isArray(b.errors) ? b.errors.map((e) => ` ${e.field}: ${e.allowed ?? e.message ?? ''}`).join(';') : '';
  return `HTTP ${res.status} ${b.code ?? ''} ${b.detail ?? b.title ?? ''}${fields}`;
}

/** Create the app, or bring an existing one to this spec (a rerun: same files, same secrets). */
async function createOrUpdateApp() {
  const created = await api('POST', '/v1/apps', spec);
  if (created.status === 201 || created.status === 200) {
    log(`app ${spec.name} created: ${spec.hostnames.join(', ')} -> ${spec.image}`);
    return;
  }
  if (created.body?.code !== 'FC_ERR_APP_EXISTS') throw new Error(`creating app ${spec.name}: ${problem(created)}`);
  const { name: _name, ...changes } = spec;
  const updated = await api('PATCH', `/v1/apps/${encodeURIComponent(spec.name)}`, changes);
  if (updated.status !== 200) throw new Error(`updating app ${spec.name}: ${problem(updated)}`);
  log(`app ${spec.name} exists: spec updated`);
}

const siteHost = site.host; // with the port, as a browser sends it
const page = (path) => new URL(path, site).href;

/** The first answer of the site (a cold start): polled until it is not a 5xx, within the timeout. */
async function firstAnswer(path) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    try {
      const res = await call('GET', page(path), { host: siteHost });
      if (res.status < 500) return res;
      last = `HTTP ${res.status}: ${res.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`;
    } catch (err) {
      last = err.message;
    }
    if (Date.now() > deadline) throw new Error(`${page(path)} did not answer within ${timeoutMs / 1000} s (last: ${last})`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** WordPress's own installer, step 2 (what its form posts): the tables, the admin, the title. */
async function install() {
  const t0 = Date.now();
  const first = await firstAnswer('/wp-admin/install.php');
  log(`first answer through the proxy in ${((Date.now() - t0) / 1000).toFixed(1)} s (HTTP ${first.status})`);
  if (/already installed/i.test(first.body)) {
    log('WordPress is already installed (its tables exist): installer skipped');
    return false;
  }
  if (!/name="weblog_title"|step=1|step=2|language/i.test(first.body)) {
    throw new Error(`wp-admin/install.php does not look like WordPress's installer (HTTP ${first.status}): ${first.body.slice(0, 300)}`);
  }
  const password = readFileSync(env('FC_WP_ADMIN_PASSWORD_FILE'), 'utf8').trim();
  const form = new URLSearchParams({
    weblog_title: env('FC_WP_TITLE', 'FastContainer WordPress'),
    user_name: env('FC_WP_ADMIN_USER', 'admin'),
    admin_password: password,
    admin_password2: password,
    pw_weak: '1',
    admin_email: env('FC_WP_ADMIN_EMAIL', 'admin@example.com'),
    blog_public: '0',
    language: '',
    Submit: 'Install WordPress',
  }).toString();
  const res = await call('POST', page('/wp-admin/install.php?step=2'), {
    host: siteHost,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form,
  });
  if (res.status !== 200 || !/<h1>Success!<\/h1>|wp-login\.php/.test(res.body)) {
    throw new Error(`the installer answered HTTP ${res.status}: ${res.body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 400)}`);
  }
  log(`WordPress installed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

/** The admin's password (the file the summary names) opens wp-admin: WordPress sets its login cookie. */
async function canLogIn() {
  const password = readFileSync(env('FC_WP_ADMIN_PASSWORD_FILE'), 'utf8').trim();
  const res = await call('POST', page('/wp-login.php'), {
    host: siteHost,
    // WordPress refuses a login without its test cookie (it checks that the browser keeps cookies).
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: 'wordpress_test_cookie=WP%20Cookie%20check' },
    body: new URLSearchParams({ log: env('FC_WP_ADMIN_USER', 'admin'), pwd: password, 'wp-submit': 'Log In', testcookie: '1' }).toString(),
  });
  const cookies = [res.headers['set-cookie'] ?? []].flat();
  return res.status === 302 && cookies.some((c) => c.startsWith('wordpress_logged_in_'));
}

/** The front page serves the site: WordPress's own markup, the title, no installer redirect. */
async function check() {
  const res = await call('GET', page('/'), { host: siteHost });
  if (res.status !== 200 || !/wp-content|wp-includes/.test(res.body)) {
    throw new Error(`the front page answered HTTP ${res.status}${res.headers.location ? ` -> ${res.headers.location}` : ''}: ${res.body.slice(0, 300)}`);
  }
}

try {
  await createOrUpdateApp();
  const installed = await install();
  await check();
  if (!(await canLogIn())) {
    const why = `the password in ${env('FC_WP_ADMIN_PASSWORD_FILE')} does not log ${env('FC_WP_ADMIN_USER', 'admin')} in`;
    // A fresh install must log in; an older site may have had its password changed in wp-admin.
    if (installed) throw new Error(why);
    log(`WARNING: ${why} (changed in wp-admin, or the site was installed with another file)`);
  } else {
    log(`logged in as ${env('FC_WP_ADMIN_USER', 'admin')} with the password from its file`);
  }
} catch (err) {
  log(`ERROR: ${err.message}`);
  process.exit(1);
}
