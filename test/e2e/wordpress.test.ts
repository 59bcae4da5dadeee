// WordPress end to end, as the README promises it: the example's one command
// (examples/wordpress/install.sh) against a whole stack on free ports, with a MariaDB of the test's
// own (same script, its own directory and port), then a real browser (Debian's Chromium, headless,
// through the proxy): the front page (a cold start), a login, a post published in the block
// editor, the post on the front page; then the container's lifespan ends, another container takes
// over, and the post and the login are still there (both live outside the container: MariaDB, the
// salts in the read-only code). The screenshot for the README is taken here.
//
// Beside the use, its abuse: the code is read-only and only the uploads volume is writable, the
// DB account works only from the containers' network, the DB password never shows in the API, a
// visitor cannot choose the REMOTE_ADDR PHP sees, and the installer cannot be run again.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerEntry } from '../../src/cmdb/types.js';
import { docker } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { freePort } from '../helpers/net.js';
import { startTestStack, TEST_TOKEN, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';
import { options } from '../../src/shared/config.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const execFileP = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
/** Short, so that the test sees a container's lifespan end and another take over. */
const LIFESPAN_S = 30;

const app = uniqueName('wp').replace(/[^a-z0-9-]/g, '');
// *.localhost, as the example prints (browsers send it to this machine).
const host = `${app}.localhost`;
const work = mkdtempSync(path.join(os.tmpdir(), 'fctest-wp-'));
// Its own directory under /tmp, not under `work` (0700): mariadbd runs as the mysql user.
const dbDir = mkdtempSync(path.join(os.tmpdir(), 'fctest-wpdb-'));
const secrets = path.join(work, 'secrets');
const volumeRoot = path.join(work, 'datapool');
let t: TestStack;
let dbPort = 0;
let url = '';
let browser: Browser | undefined;
let relay: net.Server | undefined;
let context: BrowserContext;
let page: Page;
let installOutput = '';
let extraEnv: Record<string, string> = {};
/** Script errors, failed requests and 4xx/5xx answers the browser saw: reported with a failure. */
const pageErrors: string[] = [];

async function sh(file: string, args: string[], env: Record<string, string>): Promise<string> {
  try {
    const { stdout, stderr } = await execFileP('bash', [file, ...args], { env: { ...process.env, ...env }, timeout: 240_000, maxBuffer: 16 << 20 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

const dbEnv = () => ({ FC_WP_DB_DIR: dbDir, FC_WP_DB_PORT: String(dbPort) });

/**
 * Opens `p` in the browser and waits for `ready`. Should Chromium still abort requests with
 * net::ERR_NETWORK_CHANGED (its namespace is meant to see no interface change: see
 * chromium-netns.sh), the page is loaded again, as a person would, at most three times. Any other
 * failure is the test's.
 */
async function visit(p: string, ready: () => Promise<unknown> = async () => undefined): Promise<Response | null> {
  for (let attempt = 1; ; attempt++) {
    const before = pageErrors.length;
    const changed = () => pageErrors.slice(before).some((e) => e.includes('ERR_NETWORK_CHANGED'));
    try {
      const res = await page.goto(`${url}${p}`, { waitUntil: 'load', timeout: 60_000 });
      if (!changed()) {
        await ready();
        return res;
      }
    } catch (err) {
      if (attempt >= 3 || !(String(err).includes('ERR_NETWORK_CHANGED') || changed())) throw err;
    }
    if (attempt >= 3) throw new Error(`${p}: the network changed under every load (${pageErrors.slice(before).join('; ').slice(0, 300)})`);
  }
}

async function containersOfApp(): Promise<ContainerEntry[]> {
  const res = await t.api('GET', `/v1/apps/${app}/containers`);
  return (res.body as { containers: ContainerEntry[] }).containers;
}

/** The example's one command, against the test's stack and MariaDB. */
async function install(): Promise<string> {
  return sh(path.join(repo, 'examples/wordpress/install.sh'), [], {
    ...dbEnv(),
    FC_WP_SKIP_SETUP: '1',
    FC_WP_START_PLATFORM: '0',
    FC_API_URL: t.apiUrl,
    FC_API_TOKEN: TEST_TOKEN,
    FC_STATE_DIR: t.config.stateDir,
    FC_VOLUME_ROOTS: path.join(volumeRoot, '{app}'),
    FC_WP_APP: app,
    FC_WP_HOSTNAME: host,
    FC_WP_URL: url,
    FC_WP_PROXY: t.proxyUrl,
    FC_WP_SECRETS_DIR: secrets,
    FC_WP_LIFESPAN: String(LIFESPAN_S),
    FC_DOCKER_NETWORK: t.config.dockerNetwork,
    ...extraEnv,
  });
}

beforeAll(async () => {
  for (const [file, fix] of [[CHROMIUM, 'bash scripts/setup-browser.sh'], ['/usr/sbin/mariadbd', 'bash scripts/setup-wordpress.sh'], ['/usr/bin/socat', 'bash scripts/setup-wordpress.sh'], ['/usr/share/wordpress/wp-settings.php', 'bash scripts/setup-wordpress.sh']] as const) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run ${fix} (scripts/setup.sh does)`);
  }
  mkdirSync(volumeRoot);
  dbPort = await freePort();
  // With tenant network isolation (when the dispatcher has it), containers reach a service on the
  // host only if the operator lists it, at start: the database on the host's primary address,
  // for this app only, as install.sh does when it starts the platform itself.
  const isolation = 'networkIsolation' in options;
  const dbHost = isolation ? (await execFileP('sh', ['-c', "ip -4 route get 1.1.1.1 | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'"])).stdout.trim() : '';
  extraEnv = isolation ? { FC_WP_DB_HOST: dbHost, FC_TENANT_SERVICES: `${app}=${dbHost}:${dbPort}` } : {};
  t = await startTestStack({ env: { FC_VOLUME_ROOTS: path.join(volumeRoot, '{app}'), ...extraEnv } });
  const proxyPort = new URL(t.proxyUrl).port;
  url = `http://${host}:${proxyPort}`;
  // The one command, as an operator runs it (minus scripts/setup.sh: the machine is set up).
  installOutput = await install();
  // The browser runs in a network namespace of its own (see the script: Docker's interface changes
  // would abort its requests), where the proxy's port on loopback leads here, and from here to the
  // proxy. It reaches nothing else: other names do not resolve (WordPress's Gravatar images).
  const socket = path.join(work, 'browser.sock');
  relay = net.createServer((inbound) => {
    const outbound = net.connect(Number(proxyPort), '127.0.0.1');
    inbound.pipe(outbound).pipe(inbound);
    const close = () => { inbound.destroy(); outbound.destroy(); };
    inbound.on('error', close);
    outbound.on('error', close);
  });
  await new Promise<void>((resolve) => relay?.listen(socket, resolve));
  browser = await chromium.launch({
    executablePath: path.join(repo, 'test/helpers/chromium-netns.sh'),
    env: { ...process.env, FC_BROWSER_FORWARD: `${proxyPort}:${socket}` },
    args: ['--no-sandbox', `--host-resolver-rules=MAP ${host} 127.0.0.1, MAP * ~NOTFOUND`],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('response', (r) => { if (r.status() >= 400) pageErrors.push(`${r.status()} ${r.url()}`); });
  page.on('requestfailed', (r) => pageErrors.push(`failed ${r.url()}: ${r.failure()?.errorText ?? '?'}`));
}, 300_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  relay?.close();
  if (t !== undefined) {
    await t.api('DELETE', `/v1/apps/${app}`).catch(() => undefined);
    await t.cleanup();
  }
  // Ends only the MariaDB this test started (its pid file in the test's directory).
  if (dbPort !== 0) await sh(path.join(repo, 'examples/wordpress/mariadb.sh'), ['stop'], dbEnv()).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
  rmSync(dbDir, { recursive: true, force: true });
}, 120_000);

describe('the one command', () => {
  it('prints the URL, the admin user and where the password is, in a file only its owner reads', () => {
    expect(installOutput).toContain(`site       ${url}/`);
    expect(installOutput).toMatch(/admin      admin, password in (\S+) \(mode 0600\)/);
    const file = /password in (\S+) \(mode 0600\)/.exec(installOutput)?.[1] as string;
    expect(file).toBe(path.join(secrets, 'admin-password'));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toMatch(/^[A-Za-z0-9]{20,}$/);
    // The allow-list entry network isolation needs is named.
    expect(installOutput).toContain(`FC_TENANT_SERVICES="${app}=${(/ at (\S+) \(user /.exec(installOutput) ?? [])[1]}"`);
    expect(installOutput).toMatch(new RegExp(`FC_TENANT_SERVICES="${app}=\\d+\\.\\d+\\.\\d+\\.\\d+:${dbPort}"`));
  });

  it('keeps the DB password out of the app as the API shows it, and in the app\'s secrets', async () => {
    const res = await t.api('GET', `/v1/apps/${app}`);
    expect(res.status).toBe(200);
    expect(res.body.secretKeys).toEqual(['WORDPRESS_DB_PASSWORD']);
    const password = readFileSync(path.join(secrets, 'db-password'), 'utf8').trim();
    expect(JSON.stringify(res.body)).not.toContain(password);
    expect(res.body.env.WORDPRESS_DB_HOST).toMatch(new RegExp(`:${dbPort}$`));
    expect(res.body.volumes).toEqual([
      `${volumeRoot}/${app}/code:/var/www/html:ro`,
      `${volumeRoot}/${app}/uploads:/var/www/html/wp-content/uploads:rw`,
    ]);
    // Nor in the files a tenant's code reads: wp-config.php takes it from the environment.
    expect(readFileSync(path.join(volumeRoot, app, 'code/wp-config.php'), 'utf8')).not.toContain(password);
  });

  it('lays out a WordPress that stands alone: no link into the host, a theme, unique salts', async () => {
    const code = path.join(volumeRoot, app, 'code');
    const { stdout: links } = await execFileP('find', [code, '-type', 'l']);
    expect(links).toBe('');
    expect(existsSync(path.join(code, 'wp-content/themes/twentytwentythree/theme.json'))).toBe(true);
    expect(existsSync(path.join(code, 'wp-includes/ID3/getid3.php'))).toBe(true);
    const salts = [...readFileSync(path.join(code, 'wp-config.php'), 'utf8').matchAll(/define\('(\w+_(?:KEY|SALT))', '([^']+)'\)/g)].map((m) => m[2]);
    expect(salts).toHaveLength(8);
    expect(new Set(salts).size).toBe(8);
  });

  it('refuses the tenant\'s DB account from anywhere but the containers\' network', async () => {
    const password = readFileSync(path.join(secrets, 'db-password'), 'utf8').trim();
    const user = `wp_${app.replace(/-/g, '_')}`;
    const attempt = execFileP('mariadb', ['--no-defaults', '-h', '127.0.0.1', '-P', String(dbPort), '-u', user, '-e', 'select 1'], { env: { ...process.env, MYSQL_PWD: password } });
    await expect(attempt).rejects.toThrow(/is not allowed to connect|Access denied/);
  });

  it('changes nothing when run again: same files, same passwords, the installer skipped, MariaDB left running', async () => {
    const pid = readFileSync(path.join(dbDir, 'mariadbd.pid'), 'utf8');
    const config = readFileSync(path.join(volumeRoot, app, 'code/wp-config.php'), 'utf8');
    const password = readFileSync(path.join(secrets, 'admin-password'), 'utf8');
    const again = await install();
    expect(again).toMatch(/\[mariadb\] answers on/);
    expect(again).toContain('exist: kept');
    expect(again).toContain('app ' + app + ' exists: spec updated');
    expect(again).toContain('already installed');
    expect(again).toContain('logged in as admin with the password from its file');
    expect(readFileSync(path.join(dbDir, 'mariadbd.pid'), 'utf8')).toBe(pid);
    expect(readFileSync(path.join(volumeRoot, app, 'code/wp-config.php'), 'utf8')).toBe(config);
    expect(readFileSync(path.join(secrets, 'admin-password'), 'utf8')).toBe(password);
  }, 240_000);

  it('does not run the installer twice', async () => {
    const res = await request(`${t.proxyUrl}/wp-admin/install.php`, { headers: { host: new URL(url).host } });
    const body = await res.body.text();
    expect(res.statusCode).toBe(200);
    expect(body).toMatch(/already installed/i);
  });
});

describe('in a browser', () => {
  // One database per run: no earlier post has this title.
  let postTitle = '';
  let firstContainers: string[] = [];

  it('opens the front page through the proxy, from no container (a cold start)', async () => {
    // The installer's container goes first: the browser's first page starts the next one.
    expect((await t.api('POST', `/v1/apps/${app}/scale`, { containers: 0 })).status).toBe(200);
    await eventually(async () => (await containersOfApp()).every((c) => c.state === 'gone' || c.state === 'draining') || undefined, { timeout: 60_000, interval: 250, what: 'no live container' });
    const before = new Set((await containersOfApp()).map((c) => c.id));
    const res = await visit('/');
    expect((await containersOfApp()).some((c) => !before.has(c.id) && c.state === 'ready')).toBe(true);
    expect(res?.status()).toBe(200);
    expect(await page.title()).toContain('FastContainer WordPress');
    // Served by the app's container, not a page of the platform's.
    expect(await page.locator('link[href*="wp-content/themes/twentytwentythree"], link[href*="wp-includes"]').count()).toBeGreaterThan(0);
  }, 90_000);

  it('logs into wp-admin', async () => {
    await visit('/wp-login.php');
    await page.fill('#user_login', 'admin');
    await page.fill('#user_pass', readFileSync(path.join(secrets, 'admin-password'), 'utf8').trim());
    await Promise.all([page.waitForURL(/\/wp-admin\/?$/, { timeout: 60_000 }), page.click('#wp-submit')]);
    expect(await page.locator('#wpadminbar').count()).toBe(1);
    const cookies = await context.cookies(url);
    expect(cookies.some((c) => c.name.startsWith('wordpress_logged_in_'))).toBe(true);
  }, 90_000);

  it('publishes a post in the block editor and sees it on the front page', async () => {
    postTitle = 'Hello from FastContainer';
    const title = page.getByRole('textbox', { name: 'Add title' });
    // Loaded: the title field is there (while the first-visit guide is open, the rest of the
    // page is hidden from the accessibility tree, hence CSS here).
    const editor = page.locator('.editor-post-title__input, .edit-post-welcome-guide').first();
    await visit('/wp-admin/post-new.php', () => editor.waitFor({ timeout: 60_000 })).catch(async (err: Error) => {
      // What the editor showed instead, for whoever reads the failure.
      await page.screenshot({ path: path.join(os.tmpdir(), `${app}-editor.png`) }).catch(() => undefined);
      const text = (await page.locator('body').innerText().catch(() => '')).replace(/\s+/g, ' ').slice(0, 600);
      throw new Error(`${err.message}\nErrors: ${pageErrors.join('; ').slice(0, 600)}\nThe page (${page.url()}, screenshot ${path.join(os.tmpdir(), `${app}-editor.png`)}) shows: ${text}`);
    });
    // The editor's first-visit guide, if it shows (it may open a moment after the title).
    const guide = page.locator('.edit-post-welcome-guide');
    if (await guide.waitFor({ timeout: 5_000 }).then(() => true, () => false)) {
      await guide.getByRole('button', { name: /close/i }).click();
      await guide.waitFor({ state: 'detached', timeout: 10_000 });
    }
    await title.click({ timeout: 30_000 });
    await page.keyboard.type(postTitle);
    await page.keyboard.press('Enter');
    await page.keyboard.type('Served by a container that started when you asked for this page.');
    await page.getByRole('button', { name: 'Publish', exact: true }).first().click();
    // The pre-publish panel asks once more.
    await page.locator('.editor-post-publish-panel').getByRole('button', { name: 'Publish', exact: true }).click();
    await page.getByText('is now live').first().waitFor({ timeout: 60_000 });

    await visit('/');
    expect(await page.getByText(postTitle).count()).toBeGreaterThan(0);
    firstContainers = (await containersOfApp()).filter((c) => c.state !== 'gone').map((c) => c.id);
    expect(firstContainers.length).toBeGreaterThan(0);
  }, 150_000);

  it('keeps the post and the login after the container\'s lifespan ends and another takes over', async () => {
    // Each container of the first generation reaches its lifespan and is replaced (make before
    // break): wait until none of them is left, keeping the site visited so a replacement runs.
    await eventually(async () => {
      await request(`${t.proxyUrl}/`, { headers: { host: new URL(url).host } }).then((r) => r.body.dump());
      const now = await containersOfApp();
      return now.every((c) => !firstContainers.includes(c.id) || c.state === 'gone') && now.some((c) => c.state === 'ready');
    }, { timeout: (LIFESPAN_S + 90) * 1000, interval: 1000, what: `the first containers (${firstContainers.join(', ')}) to reach their lifespan and be replaced` });

    await visit('/');
    expect(await page.getByText(postTitle).count()).toBeGreaterThan(0);
    const serving = (await containersOfApp()).filter((c) => c.state === 'ready').map((c) => c.id);
    expect(serving.some((id) => !firstContainers.includes(id))).toBe(true);
    await page.screenshot({ path: path.join(repo, 'docs/images/wordpress.png') });

    // The session cookie of before still opens the dashboard: no login page.
    const res = await visit('/wp-admin/');
    expect(res?.status()).toBe(200);
    expect(page.url()).not.toContain('wp-login.php');
    expect(await page.locator('#wpadminbar').count()).toBe(1);
  }, (LIFESPAN_S + 180) * 1000);
});

describe('the container\'s volumes', () => {
  /** Runs `cmd` in a ready container of the app; a request first thaws it (the app freezes idle containers). */
  async function execIn(cmd: string[]): Promise<{ exitCode: number; output: string }> {
    return eventually(async () => {
      await request(`${t.proxyUrl}/`, { headers: { host: new URL(url).host } }).then((r) => r.body.dump());
      const entry = (await containersOfApp()).find((c) => c.state === 'ready' && c.runtimeId !== null && c.frozenAt == null);
      if (entry === undefined) return undefined;
      const exec = await docker.getContainer(entry.runtimeId as string).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({});
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await new Promise((r) => stream.on('end', r));
      const info = await exec.inspect();
      return { exitCode: info.ExitCode ?? -1, output: Buffer.concat(chunks).toString('utf8') };
    }, { timeout: 60_000, interval: 250, what: 'a ready, thawed container to run a command in' });
  }

  it('lets the site write its uploads but not its code', async () => {
    const uploads = await execIn(['sh', '-c', 'echo x > /var/www/html/wp-content/uploads/probe.txt && echo ok']);
    expect(uploads.exitCode).toBe(0);
    expect(existsSync(path.join(volumeRoot, app, 'uploads/probe.txt'))).toBe(true);
    const code = await execIn(['sh', '-c', 'echo x > /var/www/html/wp-config.php']);
    expect(code.exitCode).not.toBe(0);
    expect(code.output).toMatch(/Read-only file system|Permission denied/);
    const plugin = await execIn(['sh', '-c', 'mkdir /var/www/html/wp-content/plugins/evil']);
    expect(plugin.exitCode).not.toBe(0);
  }, 90_000);
});

describe('the visitor\'s address (mod_remoteip)', () => {
  const ipApp = uniqueName('wpip').replace(/[^a-z0-9-]/g, '');
  const ipHost = `${ipApp}.test`;

  beforeAll(async () => {
    const dir = path.join(volumeRoot, ipApp);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'index.php'), '<?php header("Content-Type: text/plain"); echo $_SERVER["REMOTE_ADDR"];\n');
    const res = await t.api('POST', '/v1/apps', { name: ipApp, hostnames: [ipHost], image: 'fastcontainer/php', volumes: [`${dir}:/var/www/html:ro`] });
    expect(res.status).toBe(201);
  });

  afterAll(async () => {
    await t.api('DELETE', `/v1/apps/${ipApp}`).catch(() => undefined);
  });

  it('is the visitor\'s, not the Docker gateway\'s', async () => {
    const res = await request(`${t.proxyUrl}/`, { headers: { host: ipHost } });
    expect(res.statusCode).toBe(200);
    expect((await res.body.text()).trim()).toBe('127.0.0.1');
  }, 90_000);

  it('cannot be chosen by the visitor with headers of their own', async () => {
    for (const headers of [{ 'x-forwarded-for': '203.0.113.9' }, { 'x-real-ip': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }, { 'x-forwarded-for': '10.1.2.3, 203.0.113.9' }]) {
      const res = await request(`${t.proxyUrl}/`, { headers: { host: ipHost, ...headers } });
      expect(res.statusCode).toBe(200);
      expect((await res.body.text()).trim()).toBe('127.0.0.1');
    }
  }, 90_000);
});
