// The dashboard in a real browser (Debian's headless Chromium through playwright-core) on a whole
// stack with the Redis CMDB and the Docker engine: log in, see an invalid app refused field by
// field, create an app in the form, hit its host through the proxy, watch its container appear
// and turn ready without reloading (SSE), scale it, delete it after the confirmation. Text a
// tenant controls (env values, event reasons) shows as text, never as markup. The screenshot it
// takes is the README's (docs/images/dashboard.png).

import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, TEST_TOKEN, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = new URL('../../docs/images/dashboard.png', import.meta.url).pathname;
const XSS_ENV = '<script>window.__pwned = "env"</script>';
const XSS_EVENT = '<img src=x onerror="window.__pwned = \'event\'">';

let t: TestStack;
let browser: Browser;
let page: Page;
/** What the browser's console said: a CSP violation or a script error fails the test. */
const consoleErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup-browser.sh (Debian's chromium)`);
  t = await startTestStack();
  // The hostnames of the test apps resolve to this machine, where the proxy listens.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--host-resolver-rules=MAP *.example.test 127.0.0.1'] });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.cleanup();
});

/** The rows of the selected app's containers, as the page shows them. */
async function containerRows(): Promise<{ id: string; state: string }[]> {
  return page.$$eval('#containers tbody tr', (rows) => rows.map((r) => ({ id: r.getAttribute('data-container') ?? '', state: r.getAttribute('data-state') ?? '' })));
}

describe('the dashboard in Chromium', () => {
  it('asks for a token, refuses a wrong one, and logs in with the admin token', async () => {
    // An app whose env value and event carry markup, made through the API and the CMDB.
    expect((await t.api('POST', '/v1/apps', { name: 'aaa-markup', hostnames: ['aaa-markup.example.test'], image: 'fastcontainer/hello', env: { GREETING: XSS_ENV } })).status).toBe(201);
    await t.stack.store.appendEvent({ at: Date.now(), app: 'aaa-markup', kind: 'manual', container: null, host: null, reason: XSS_EVENT, from: null, to: null });

    await page.goto(t.apiUrl);
    await page.waitForSelector('#login-form', { state: 'visible' });
    await page.fill('#token', 'not-the-token-0123456789');
    await page.click('#login-form button[type=submit]');
    await eventually(async () => (await page.textContent('#login-error'))?.includes('neither the CoreAPI admin token'), { what: 'the login error' });
    expect(await page.isVisible('#main')).toBe(false);

    await page.fill('#token', TEST_TOKEN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main', { state: 'visible' });
    await eventually(async () => (await page.textContent('#live')) === 'live', { what: 'the live badge' });
    expect(await page.textContent('#access')).toBe('admin');
    // The cookie the browser keeps is out of the page's reach.
    expect(await page.evaluate('document.cookie')).toBe('');
    const cookies = await page.context().cookies();
    expect(cookies.find((c) => c.name === 'fc_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    // A marker that a reload would wipe: every later step must find it.
    await page.evaluate('window.__marker = 42');
  });

  it('shows text from the server as text: markup in an env value or an event reason does not run', async () => {
    await page.click('#apps tr[data-app="aaa-markup"]');
    await eventually(async () => (await page.textContent('#app-summary'))?.includes(XSS_ENV), { what: 'the env value, as text' });
    await eventually(async () => (await page.textContent('#events'))?.includes(XSS_EVENT), { what: 'the event reason, as text' });
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.$$('#events img, #app-summary script, #events script')).toHaveLength(0);
  });

  it('refuses an invalid app in the form, with the API\'s message beside each field', async () => {
    const bad = { name: 'Bad_Name', hostnames: ['ok.example.test'], image: 'fastcontainer/hello', port: 70000 };
    const api = await t.api('POST', '/v1/apps', bad);
    expect(api.status).toBe(400);
    const allowed = Object.fromEntries((api.body.errors as { field: string; allowed: string }[]).map((e) => [e.field, e.allowed]));
    await page.fill('#create-form [name=name]', bad.name);
    await page.fill('#create-form [name=hostnames]', 'ok.example.test');
    await page.fill('#create-form [name=port]', '70000');
    await page.click('#create-form button[type=submit]');
    await eventually(async () => (await page.textContent('[data-error-for="name"]')) === `not allowed: ${allowed.name}`, { what: 'the name error' });
    expect(await page.textContent('[data-error-for="port"]')).toBe(`not allowed: ${allowed.port}`);
    expect(await page.textContent('[data-error-for="image"]')).toBe('');
    expect((await t.api('GET', '/v1/apps')).body.apps.map((a: { name: string }) => a.name)).toEqual(['aaa-markup']);
  });

  it('creates an app, and its container appears and turns ready without a reload when its host is hit', async () => {
    await page.fill('#create-form [name=name]', 'web');
    await page.fill('#create-form [name=hostnames]', 'web.example.test');
    await page.fill('#create-form [name=image]', 'fastcontainer/hello');
    await page.fill('#create-form [name=port]', '8080');
    await page.fill('#create-form [name=cpus]', '0.25');
    await page.fill('#create-form [name=memory]', '64m');
    await page.fill('#create-form [name=maxContainers]', '3');
    await page.click('#create-form button[type=submit]');
    await page.waitForSelector('#apps tr[data-app="web"]');
    await eventually(async () => (await page.textContent('#app-title')) === 'web', { what: 'the new app selected' });
    expect(await page.textContent('[data-error-for="name"]')).toBe('');
    expect(await containerRows()).toEqual([]);

    // The first request, from a second tab, through the proxy: a cold start.
    const visitor = await page.context().newPage();
    const res = await visitor.goto(`${t.proxyUrl.replace('127.0.0.1', 'web.example.test')}/`);
    expect(res?.status()).toBe(200);
    expect(await visitor.title()).toContain('Hello from FastContainer');
    await visitor.close();

    const seen = new Set<string>();
    await eventually(async () => {
      const rows = await containerRows();
      for (const r of rows) seen.add(r.state);
      return rows.length === 1 && rows[0]?.state === 'ready';
    }, { what: 'the container ready on the page', timeout: 30_000 });
    expect(await page.evaluate('window.__marker')).toBe(42);
    const row = await page.textContent('#containers tbody tr');
    expect(row).toContain(t.hostId);
  }, 60_000);

  it('draws the app\'s request rate from the stats, and scales it from the form', async () => {
    // Traffic, until samples with requests have reached the page (the page's own state, a global).
    const busy = async () => (await page.evaluate<number>('(state.series.web || []).filter((s) => s.rps > 0).length')) >= 2;
    const stop = AbortSignal.timeout(40_000);
    while (!stop.aborted && !(await busy())) await Promise.all(Array.from({ length: 5 }, () => t.get('web.example.test')));
    expect(await busy()).toBe(true);
    expect(await page.$$('#chart-rps canvas')).toHaveLength(1);

    await page.fill('#scale-form [name=containers]', '9');
    await page.click('#scale-form button[type=submit]');
    await eventually(async () => (await page.textContent('[data-error-for="containers"]'))?.includes("maxContainers (3)"), { what: 'the scale error' });
    await page.fill('#scale-form [name=containers]', '2');
    await page.click('#scale-form button[type=submit]');
    await eventually(async () => (await containerRows()).filter((r) => r.state === 'ready').length === 2, { what: 'two ready containers', timeout: 30_000 });
    await eventually(async () => (await page.textContent('#events'))?.includes('asked via the CoreAPI for 2 containers'), { what: 'the scale event' });
    // Only the field changed is sent: the quota shown is not sent back over the autoscaler's.
    expect(await page.textContent('#events')).not.toContain('cores per container');
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }, 90_000);

  it('deletes the app after the confirmation, and the page follows', async () => {
    await page.click('#delete');
    await page.waitForSelector('#confirm[open]');
    expect(await page.textContent('#confirm-text')).toContain('"web"');
    // Cancel changes nothing.
    await page.click('#confirm button[value=cancel]');
    expect((await t.api('GET', '/v1/apps/web')).status).toBe(200);
    await page.click('#delete');
    await page.click('#confirm-ok');
    await page.waitForSelector('#apps tr[data-app="web"]', { state: 'detached' });
    expect((await t.api('GET', '/v1/apps/web')).status).toBe(404);
    expect(await page.evaluate('window.__marker')).toBe(42);
  });

  it('offers no action to a session of the read token', async () => {
    const reader = await (await browser.newContext()).newPage();
    await reader.goto(t.apiUrl);
    await reader.fill('#token', t.stack.coreapi?.readToken.token ?? '');
    await reader.click('#login-form button[type=submit]');
    await reader.waitForSelector('#apps tr[data-app="aaa-markup"]');
    expect(await reader.textContent('#access')).toBe('read-only');
    expect(await reader.isVisible('#create')).toBe(false);
    expect(await reader.isVisible('#delete')).toBe(false);
    expect(await reader.isVisible('#scale-form')).toBe(false);
    await reader.context().close();
  });

  it('logs out, and ran without a script error or a CSP violation', async () => {
    await page.click('#logout');
    await page.waitForSelector('#login-form', { state: 'visible' });
    expect((await page.context().cookies()).find((c) => c.name === 'fc_session')).toBeUndefined();
    // Refusals the page asked for (the wrong token, the invalid app) are logged as failed loads.
    expect(consoleErrors.filter((e) => !e.startsWith('Failed to load resource'))).toEqual([]);
  });
});
