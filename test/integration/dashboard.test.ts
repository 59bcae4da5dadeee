// The web dashboard over real HTTP with the Redis CMDB: its page and headers (CSP, size), the
// login that trades a token for a cookie, the cookie's use and its abuse (CSRF, forgery, logout),
// and the live-update stream (auth, changes, the client limit, heartbeats, stats, shutdown).

import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { CoreApi } from '../../src/coreapi/api.js';
import { HEARTBEAT_MS } from '../../src/coreapi/dashboard/stream.js';
import { SAMPLE_MS } from '../../src/coreapi/dashboard/series.js';
import { ManualClock } from '../../src/shared/clock.js';
import { listen, type Listening } from '../../src/shared/http.js';
import { silentLogger } from '../../src/shared/logger.js';
import { appSpec } from '../helpers/specs.js';
import { openSse, type SseStream } from '../helpers/sse.js';
import { startTestStack, TEST_TOKEN, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack;
const readToken = () => t.stack.coreapi?.readToken.token ?? '';
const streams: SseStream[] = [];

beforeAll(async () => {
  t = await startTestStack({ roles: ['coreapi'], env: { FC_API_STREAMS: '3' } });
});

afterAll(async () => {
  for (const s of streams) s.close();
  await t?.cleanup();
});

async function call(method: string, path: string, o: { body?: unknown; headers?: Record<string, string> } = {}) {
  const res = await request(`${t.apiUrl}${path}`, {
    method: method as 'POST',
    headers: { ...(o.body === undefined ? {} : { 'content-type': 'application/json' }), ...o.headers },
    body: o.body === undefined ? null : JSON.stringify(o.body),
  });
  const text = await res.body.text();
  let body: any = text;
  if ((res.headers['content-type'] ?? '').toString().includes('json') && text !== '') body = JSON.parse(text);
  return { status: res.statusCode, headers: res.headers, body };
}

/** Logs in with `token` and returns the cookie header to send back. */
async function login(token: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await call('POST', '/dashboard/login', { body: { token }, headers: { 'x-fc-csrf': '1', ...headers } });
  expect(res.status).toBe(200);
  const set = String(res.headers['set-cookie']);
  return set.split(';')[0] as string;
}

async function stream(headers: Record<string, string>): Promise<SseStream> {
  const s = await openSse(`${t.apiUrl}/v1/events/stream`, headers);
  streams.push(s);
  return s;
}

describe('the page', () => {
  it('is served at / with a CSP that allows only its own files, and no inline script or style', async () => {
    const res = await call('GET', '/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'self';/);
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const html = res.body as string;
    // Every script is a file of its own; no event-handler attributes, style blocks or attributes.
    const scripts = html.match(/<script\b[^>]*>/g) ?? [];
    expect(scripts.length).toBeGreaterThan(0);
    for (const s of scripts) expect(s).toMatch(/src="\/dashboard\/assets\/[\w.]+"/);
    expect(html).not.toMatch(/<script\b[^>]*>[^<]+<\/script>/);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    expect(html).not.toMatch(/<style\b|\sstyle=/i);
  });

  it('serves its files with their types, and 304 to a browser that has them', async () => {
    const types: Record<string, string> = {
      'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8',
      'uPlot.iife.min.js': 'text/javascript; charset=utf-8', 'uPlot.min.css': 'text/css; charset=utf-8',
    };
    for (const [file, type] of Object.entries(types)) {
      const res = await call('GET', `/dashboard/assets/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers['content-type']).toBe(type);
      expect(res.headers['cache-control']).toBe('no-cache');
      const again = await call('GET', `/dashboard/assets/${file}`, { headers: { 'if-none-match': String(res.headers.etag) } });
      expect(again.status).toBe(304);
    }
    expect((await call('GET', '/dashboard/assets/..%2fsession.ts')).status).toBe(404);
    expect((await call('GET', '/dashboard/assets/nope.js')).status).toBe(404);
  });

  it('weighs under 100 KB: HTML, script and styles, uPlot aside', async () => {
    let total = 0;
    for (const p of ['/', '/dashboard/assets/app.js', '/dashboard/assets/style.css']) total += Buffer.byteLength((await call('GET', p)).body as string);
    expect(total).toBeGreaterThan(5_000);
    expect(total).toBeLessThan(100 * 1024);
  });

  it('renders server text with textContent only: no HTML parsing anywhere in its script', () => {
    const js = readFileSync(new URL('../../src/coreapi/dashboard/public/app.js', import.meta.url), 'utf8');
    expect(js).toContain('textContent');
    expect(js).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|createContextualFragment|DOMParser/);
  });
});

describe('login', () => {
  it('refuses a wrong token with 401 and sets no cookie', async () => {
    const res = await call('POST', '/dashboard/login', { body: { token: 'x'.repeat(TEST_TOKEN.length) }, headers: { 'x-fc-csrf': '1' } });
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('FC_ERR_UNAUTHORIZED');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect((await call('POST', '/dashboard/login', { body: {}, headers: { 'x-fc-csrf': '1' } })).status).toBe(400);
  });

  it('refuses a login another site could make the browser send (no CSRF header, foreign Origin)', async () => {
    const plain = await call('POST', '/dashboard/login', { body: { token: TEST_TOKEN } });
    expect(plain.status).toBe(403);
    expect(plain.body.code).toBe('FC_ERR_CSRF');
    expect(plain.headers['set-cookie']).toBeUndefined();
    const foreign = await call('POST', '/dashboard/login', { body: { token: TEST_TOKEN }, headers: { 'x-fc-csrf': '1', origin: 'http://evil.example' } });
    expect(foreign.status).toBe(403);
  });

  it('sets an HttpOnly, SameSite=Strict cookie, Secure when reached over HTTPS', async () => {
    const res = await call('POST', '/dashboard/login', { body: { token: TEST_TOKEN }, headers: { 'x-fc-csrf': '1' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ access: 'write' });
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^fc_session=v1\.write\.\d+\.[\w-]+\.[\w-]+; Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(TEST_TOKEN);
    const https = await call('POST', '/dashboard/login', { body: { token: TEST_TOKEN }, headers: { 'x-fc-csrf': '1', 'x-forwarded-proto': 'https', origin: `https://${new URL(t.apiUrl).host}` } });
    expect(https.status).toBe(200);
    expect(String(https.headers['set-cookie'])).toMatch(/; Secure$/);
  });

  it('gives the admin token\'s session reads and writes, the read token\'s reads only', async () => {
    const admin = await login(TEST_TOKEN);
    expect((await call('GET', '/dashboard/session', { headers: { cookie: admin } })).body).toMatchObject({ access: 'write' });
    expect((await call('GET', '/v1/apps', { headers: { cookie: admin } })).status).toBe(200);
    const created = await call('POST', '/v1/apps', { body: { name: 'dash-a', hostnames: ['dash-a.example.test'], image: 'fastcontainer/hello' }, headers: { cookie: admin, 'x-fc-csrf': '1' } });
    expect(created.status).toBe(201);

    const reader = await login(readToken());
    expect((await call('GET', '/v1/apps/dash-a', { headers: { cookie: reader } })).status).toBe(200);
    const refused = await call('DELETE', '/v1/apps/dash-a', { headers: { cookie: reader, 'x-fc-csrf': '1' } });
    expect(refused.status).toBe(403);
    expect(refused.body.code).toBe('FC_ERR_FORBIDDEN');
    expect((await t.api('GET', '/v1/apps/dash-a')).status).toBe(200);
  });

  it('takes no forged cookie: another access, another signature, a made-up one', async () => {
    const reader = await login(readToken());
    const [name, value] = reader.split('=') as [string, string];
    const parts = value.split('.');
    const promoted = `${name}=${['v1', 'write', ...parts.slice(2)].join('.')}`;
    expect((await call('POST', '/v1/apps', { body: { name: 'dash-x', hostnames: ['dash-x.example.test'], image: 'fastcontainer/hello' }, headers: { cookie: promoted, 'x-fc-csrf': '1' } })).status).toBe(401);
    const longer = `${name}=${[...parts.slice(0, 2), String(Number(parts[2]) + 3_600_000), ...parts.slice(3)].join('.')}`;
    expect((await call('GET', '/v1/apps', { headers: { cookie: longer } })).status).toBe(401);
    expect((await call('GET', '/v1/apps', { headers: { cookie: `fc_session=${TEST_TOKEN}` } })).status).toBe(401);
    expect((await call('GET', '/dashboard/session', { headers: { cookie: 'fc_session=v1.write.99999999999999.a.b' } })).status).toBe(401);
  });

  it('ends the session on logout: the cookie is cleared and the old one refused', async () => {
    const admin = await login(TEST_TOKEN);
    const out = await call('POST', '/dashboard/logout', { headers: { cookie: admin, 'x-fc-csrf': '1' } });
    expect(out.status).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^fc_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/);
    expect((await call('GET', '/v1/apps', { headers: { cookie: admin } })).status).toBe(401);
    expect((await call('GET', '/dashboard/session', { headers: { cookie: admin } })).status).toBe(401);
  });
});

describe('CSRF', () => {
  it('refuses a cookie write without the custom header, or from another origin or site, and changes nothing', async () => {
    const admin = await login(TEST_TOKEN);
    const spec = { name: 'dash-csrf', hostnames: ['dash-csrf.example.test'], image: 'fastcontainer/hello' };
    const attempts: Record<string, string>[] = [
      { cookie: admin },
      { cookie: admin, 'x-fc-csrf': '0' },
      { cookie: admin, 'x-fc-csrf': '1', origin: 'http://evil.example' },
      { cookie: admin, 'x-fc-csrf': '1', 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of attempts) {
      const res = await call('POST', '/v1/apps', { body: spec, headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(res.body.code).toBe('FC_ERR_CSRF');
    }
    expect((await t.api('GET', '/v1/apps/dash-csrf')).status).toBe(404);
    expect((await call('DELETE', '/v1/apps/dash-a', { headers: { cookie: admin } })).body.code).toBe('FC_ERR_CSRF');
    expect((await t.api('GET', '/v1/apps/dash-a')).status).toBe(200);
    // The same origin, as the browser says it, passes.
    const own = await call('POST', '/v1/apps', { body: spec, headers: { cookie: admin, 'x-fc-csrf': '1', origin: `http://${new URL(t.apiUrl).host}`, 'sec-fetch-site': 'same-origin' } });
    expect(own.status).toBe(201);
  });
});

describe('the live-update stream', () => {
  it('refuses a caller without a token or session with 401', async () => {
    const s = await stream({});
    expect(s.status).toBe(401);
    expect(s.problem.code).toBe('FC_ERR_UNAUTHORIZED');
    expect((await stream({ cookie: 'fc_session=v1.read.99999999999999.a.b' })).status).toBe(401);
  });

  it('starts with a snapshot and carries an app change, without the app\'s secrets', async () => {
    await t.api('POST', '/v1/apps', { name: 'dash-before', hostnames: ['dash-before.example.test'], image: 'fastcontainer/hello' });
    const admin = await login(TEST_TOKEN);
    const s = await stream({ cookie: admin });
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const snap = await s.next((e) => e.event === 'snapshot', 'the snapshot');
    expect(snap.data.access).toBe('write');
    expect(snap.data.apps.map((a: { name: string }) => a.name)).toContain('dash-before');
    const created = await t.api('POST', '/v1/apps', { name: 'dash-live', hostnames: ['dash-live.example.test'], image: 'fastcontainer/hello', secrets: { DB_PASSWORD: 'hunter2-secret' } });
    expect(created.status).toBe(201);
    const change = await s.next((e) => e.event === 'change' && e.data.kind === 'app' && e.data.id === 'dash-live', 'the app change');
    expect(change.data).toMatchObject({ op: 'put', value: { name: 'dash-live', secretKeys: ['DB_PASSWORD'] } });
    expect(JSON.stringify(s.events)).not.toContain('hunter2-secret');
    await t.api('DELETE', '/v1/apps/dash-live');
    await s.next((e) => e.event === 'change' && e.data.kind === 'app' && e.data.op === 'delete' && e.data.id === 'dash-live', 'the deletion');
    s.close();
  });

  it('takes the bearer token too, and tells a read token\'s stream it is read-only', async () => {
    const s = await stream({ authorization: `Bearer ${readToken()}` });
    expect(s.status).toBe(200);
    expect((await s.next((e) => e.event === 'snapshot', 'the snapshot')).data.access).toBe('read');
    s.close();
  });

  it('serves at most FC_API_STREAMS at once, and one more once a stream closes', async () => {
    const admin = await login(TEST_TOKEN);
    await eventually(() => t.stack.coreapi?.api.dashboard.streams === 0, { what: 'earlier streams to close' });
    const open = [await stream({ cookie: admin }), await stream({ cookie: admin }), await stream({ cookie: admin })];
    for (const s of open) expect(s.status).toBe(200);
    const refused = await stream({ cookie: admin });
    expect(refused.status).toBe(503);
    expect(refused.problem.code).toBe('FC_ERR_TOO_MANY_STREAMS');
    expect(refused.headers['retry-after']).toBeDefined();
    (open[0] as SseStream).close();
    await eventually(async () => {
      const s = await stream({ cookie: admin });
      if (s.status !== 200) return false;
      s.close();
      return true;
    }, { what: 'a stream to be accepted again' });
    for (const s of open) s.close();
  });

  it('ends its streams when the CoreAPI closes, and the close does not wait for them', async () => {
    await eventually(() => t.stack.coreapi?.api.dashboard.streams === 0, { what: 'earlier streams to close' });
    const s = await stream({ authorization: `Bearer ${TEST_TOKEN}` });
    await s.next((e) => e.event === 'snapshot', 'the snapshot');
    // The CoreAPI's close waits for every answer to end: a stream left open would hold it forever.
    await t.stack.coreapi?.close();
    await eventually(() => s.ended, { what: 'the stream to end' });
  }, 20_000);
});

describe('heartbeats and stats (a CoreAPI on a manual clock)', () => {
  let api: CoreApi;
  let server: Listening;
  const clock = new ManualClock(Date.now());
  const store = new MemoryStore();

  beforeAll(async () => {
    api = new CoreApi({ store, clock, logger: silentLogger, registry: new Registry() }, { token: TEST_TOKEN, readToken: 'read-token-0123456789', hostTimeout: 10_000, volumeRoots: [] });
    api.dashboard.start();
    server = await listen(api.handle, 0, '127.0.0.1');
  });

  afterAll(async () => {
    await api.dashboard.close();
    await server.destroy();
  });

  it('sends a heartbeat comment on an idle stream, and each app\'s rate and latency every few seconds', async () => {
    await store.createApp(appSpec({ name: 'charted' }), clock.now());
    const s = await openSse(`${server.url}/v1/events/stream`, { authorization: `Bearer ${TEST_TOKEN}` });
    streams.push(s);
    await s.next((e) => e.event === 'snapshot', 'the snapshot');
    await clock.advance(HEARTBEAT_MS);
    await eventually(() => s.comments.includes('heartbeat'), { what: 'a heartbeat comment' });

    const base = { app: 'charted', host: 'h1', cpus: 0.5, held: 0, throttledShare: 0, cpuUsage: 0.1, lastRequestAt: clock.now(), at: clock.now() };
    await store.reportStats('h1', [
      { ...base, id: 'c1', inflight: 2, rps: 30, meanMs: 20, p95Ms: 40 },
      { ...base, id: 'c2', inflight: 1, rps: 10, meanMs: 60, p95Ms: 150 },
    ], clock.now(), 60_000);
    const from = s.events.length;
    await clock.advance(SAMPLE_MS);
    const stats = await s.next((e) => e.event === 'stats' && e.data.series.charted !== undefined, 'a stats event', from);
    expect(stats.data.series.charted).toMatchObject({ rps: 40, meanMs: 30, p95Ms: 150, inflight: 3, containers: 2 });
    expect(stats.data.stats.map((x: { id: string }) => x.id).sort()).toEqual(['c1', 'c2']);
    s.close();
  });
});
