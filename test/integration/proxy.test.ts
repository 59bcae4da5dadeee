// The UserProxy against a stand-in dispatcher that echoes what it receives: headers it sets and
// strips, routing among entries, registration, retries when a container went away.

import http from 'node:http';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CmdbCache } from '../../src/cmdb/cache.js';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { UserProxy } from '../../src/proxy/proxy.js';
import { systemClock } from '../../src/shared/clock.js';
import { HopAuth } from '../../src/shared/hop-auth.js';
import { listen, type Listening } from '../../src/shared/http.js';
import { PUBLIC_MAX_HEADERS } from '../../src/shared/protocol.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createRegistry } from '../../src/shared/metrics.js';
import { appSpec, newContainer } from '../helpers/specs.js';
import { rawRequest } from '../helpers/raw-http.js';
import { eventually } from '../helpers/wait.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let store: MemoryStore;
let cache: CmdbCache;
let proxy: UserProxy;
let proxyServer: Listening;
let dispatcher: Listening;
const seen: Seen[] = [];
/** Entry ids the stand-in dispatcher says are gone. */
const goneEntries = new Set<string>();
const hopAuth = new HopAuth('proxy-test-cluster-secret-0123456789', 30_000);

beforeAll(async () => {
  dispatcher = await listen(
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const entry = String(req.headers['x-fc-container']);
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        if (goneEntries.has(entry)) {
          res.writeHead(503, { 'x-fc-error': 'FC_ERR_CONTAINER_GONE', 'content-type': 'application/problem+json' });
          res.end('{"code":"FC_ERR_CONTAINER_GONE"}');
          return;
        }
        res.writeHead(200, {
          'content-type': 'text/plain',
          'keep-alive': 'timeout=5',
          connection: 'x-upstream-hop',
          'x-upstream-hop': 'must not reach the client',
          'set-cookie': ['a=1', 'b=2'],
        });
        res.end(`served by ${entry}`);
      });
    },
    0,
    '127.0.0.1',
  );
  store = new MemoryStore();
  cache = await CmdbCache.open(store, silentLogger);
  proxy = new UserProxy({ store, cache, clock: systemClock, logger: silentLogger, registry: createRegistry('proxy'), hopAuth }, { hostTimeout: 10_000, upstreamConnections: 16 });
  proxyServer = await listen(proxy.handle, 0, '127.0.0.1', { maxHeadersCount: PUBLIC_MAX_HEADERS + 1 });
  await store.heartbeatHost({ id: 'h1', dispatcherUrl: dispatcher.url, capacity: 10, startedAt: Date.now(), heartbeatAt: Date.now() });
  await store.createApp(appSpec({ name: 'site', hostnames: ['site.test'] }), Date.now());
  await eventually(() => cache.host('h1') && cache.app('site'));
});

afterAll(async () => {
  await proxyServer?.destroy();
  await proxy?.destroy();
  await dispatcher?.destroy();
  await cache?.close();
});

afterEach(() => {
  seen.length = 0;
  goneEntries.clear();
});

async function get(host: string, path = '/', headers: Record<string, string> = {}) {
  const res = await request(`${proxyServer.url}${path}`, { headers: { host, ...headers } });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

async function entriesOf(app: string) {
  return store.listContainers({ app });
}

describe('routing and registration', () => {
  it('registers an entry on the live host for an app with none, and forwards to its dispatcher', async () => {
    const res = await get('site.test', '/hello?x=1');
    expect(res.status).toBe(200);
    const entries = await entriesOf('site');
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ host: 'h1', state: 'registered' });
    expect(res.body).toBe(`served by ${entries[0]?.id}`);
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/hello?x=1' });
    // The next request reuses the entry.
    await get('site.test');
    expect(await entriesOf('site')).toHaveLength(1);
  });

  it('sends nothing to a starting entry while another is ready', async () => {
    const [registered] = await entriesOf('site');
    await store.transitionContainer(registered!.id, ['registered'], 'starting');
    const ready = (await store.registerContainer(newContainer('site', { host: 'h1', state: 'ready' }))).entry;
    await eventually(() => cache.container(ready.id));
    for (let i = 0; i < 20; i++) await get('site.test');
    expect(new Set(seen.map((s) => s.headers['x-fc-container']))).toEqual(new Set([ready.id]));
  });

  it('tries another container when the dispatcher says one is gone', async () => {
    const ready = (await entriesOf('site')).filter((e) => e.state === 'ready');
    const other = (await store.registerContainer(newContainer('site', { host: 'h1', state: 'ready' }))).entry;
    await eventually(() => cache.container(other.id));
    goneEntries.add(ready[0]!.id);
    for (let i = 0; i < 10; i++) {
      const res = await get('site.test');
      expect(res.status).toBe(200);
      expect(res.body).toBe(`served by ${other.id}`);
    }
  });

  it('answers 404 for an unknown host, and serves nothing of its own on the tenants\' port', async () => {
    const res = await get('unknown.test');
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'FC_ERR_UNKNOWN_HOST' });
    // Health and metrics (every app's name and traffic) are on the admin listener only.
    for (const host of ['127.0.0.1', 'localhost', 'unknown.test']) {
      for (const path of ['/healthz', '/metrics', '/v1/containers']) {
        const own = await get(host, path);
        expect(own.status).toBe(404);
        expect(JSON.parse(own.body).code).toBe('FC_ERR_UNKNOWN_HOST');
        expect(own.body).not.toContain('site');
      }
    }
    expect(await proxy.health()).toMatchObject({ status: 'ok', apps: 1 });
  });

  it('signs every request to a dispatcher for its method, target and entry', async () => {
    await get('site.test', '/signed?q=1');
    const s = seen[0]!;
    const entryId = String(s.headers['x-fc-container']);
    expect(hopAuth.verify(s.headers['x-fc-auth'], { method: 'GET', target: '/signed?q=1', entryId }, Date.now())).toEqual({ ok: true });
    expect(hopAuth.verify(s.headers['x-fc-auth'], { method: 'GET', target: '/signed?q=1', entryId: 'another-entry' }, Date.now()).ok).toBe(false);
  });

  it('says so when no compute host is live', async () => {
    await store.createApp(appSpec({ name: 'orphan', hostnames: ['orphan.test'] }), Date.now());
    await store.heartbeatHost({ id: 'h1', dispatcherUrl: dispatcher.url, capacity: 10, startedAt: 0, heartbeatAt: Date.now() - 60_000 });
    await eventually(() => cache.app('orphan') && (cache.host('h1')?.heartbeatAt ?? 0) < Date.now() - 30_000);
    const res = await get('orphan.test');
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'FC_ERR_NO_COMPUTE_HOST', requestId: res.headers['x-request-id'] });
    expect(res.body).not.toMatch(/h1|orphan|127\.0\.0\.1/);
    expect(res.headers['retry-after']).toBeDefined();
    await store.heartbeatHost({ id: 'h1', dispatcherUrl: dispatcher.url, capacity: 10, startedAt: 0, heartbeatAt: Date.now() });
    await eventually(() => (cache.host('h1')?.heartbeatAt ?? 0) > Date.now() - 5_000);
  });
});

describe('when a dispatcher cannot be reached', () => {
  it('sends a GET to another container, but not a POST that may have reached the app', async () => {
    await store.createApp(appSpec({ name: 'flaky', hostnames: ['flaky.test'] }), Date.now());
    await store.heartbeatHost({ id: 'hdead', dispatcherUrl: 'http://127.0.0.1:1', capacity: 10, startedAt: Date.now(), heartbeatAt: Date.now() });
    const dead = (await store.registerContainer(newContainer('flaky', { host: 'hdead', state: 'ready', createdAt: 1 }))).entry;
    const alive = (await store.registerContainer(newContainer('flaky', { host: 'h1', state: 'ready', createdAt: 2 }))).entry;
    await eventually(() => cache.container(alive.id) && cache.container(dead.id) && cache.host('hdead'));
    // Always the first ready entry: the one on the unreachable host.
    const firstPick = new UserProxy({ store, cache, clock: systemClock, logger: silentLogger, registry: createRegistry('proxy'), hopAuth }, { hostTimeout: 10_000, upstreamConnections: 4 });
    Object.assign(firstPick, { random: () => 0 });
    const server = await listen(firstPick.handle, 0, '127.0.0.1');
    try {
      const postRes = await request(`${server.url}/`, { method: 'POST', headers: { host: 'flaky.test' } });
      expect(postRes.statusCode).toBe(502);
      const text = await postRes.body.text();
      expect(JSON.parse(text)).toMatchObject({ code: 'FC_ERR_UPSTREAM', requestId: postRes.headers['x-request-id'] });
      // Not where: no dispatcher address, host or container id.
      expect(text).not.toMatch(/127\.0\.0\.1|hdead|dispatcher|flaky/);
      expect(text).not.toContain(dead.id);
      const getRes = await request(`${server.url}/`, { headers: { host: 'flaky.test' } });
      expect(getRes.statusCode).toBe(200);
      expect(await getRes.body.text()).toBe(`served by ${alive.id}`);
      // The host that refused connections is passed over for a while: the next POST goes elsewhere.
      const laterPost = await request(`${server.url}/`, { method: 'POST', headers: { host: 'flaky.test' } });
      expect(laterPost.statusCode).toBe(200);
      expect(await laterPost.body.text()).toBe(`served by ${alive.id}`);
    } finally {
      await server.destroy();
      await firstPick.destroy();
    }
  });
});

describe('header floods', () => {
  const flood = (n: number, extra = '') => `GET /flood HTTP/1.1\r\nHost: site.test\r\n${'a:\r\n'.repeat(n - 2)}Connection: close\r\n${extra}\r\n`;

  it('refuses with 431 a request with more headers than the hop to the dispatcher carries, sending nothing on', async () => {
    const answer = await rawRequest(proxyServer.url, flood(2100));
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(answer).toContain('FC_ERR_TOO_MANY_HEADERS');
    const justOver = await rawRequest(proxyServer.url, flood(PUBLIC_MAX_HEADERS + 1));
    expect(justOver).toMatch(/^HTTP\/1\.1 431 /);
    expect(seen).toHaveLength(0);
  });

  it('passes a request with as many headers as allowed, the proxy\'s own intact', async () => {
    const answer = await rawRequest(proxyServer.url, flood(PUBLIC_MAX_HEADERS));
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const s = seen[0]!;
    const entryId = String(s.headers['x-fc-container']);
    expect(answer).toContain(`served by ${entryId}`);
    expect(hopAuth.verify(s.headers['x-fc-auth'], { method: 'GET', target: '/flood', entryId }, Date.now())).toEqual({ ok: true });
    expect(s.headers['x-forwarded-for']).toBe('127.0.0.1');
  });
});

describe('headers', () => {
  it('sets X-Forwarded-* itself, never trusting the client\'s, and keeps internal headers out', async () => {
    await get('Site.Test:8080', '/', {
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.test',
      forwarded: 'for=6.6.6.6',
      'x-real-ip': '6.6.6.6',
      'x-fc-container': 'someone-elses-container',
      'x-request-id': 'chosen-by-the-client',
    });
    const h = seen[0]!.headers;
    expect(h['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('Site.Test:8080');
    expect(h.forwarded).toBeUndefined();
    expect(h['x-real-ip']).toBeUndefined();
    expect(h['x-fc-container']).not.toBe('someone-elses-container');
    expect(h.host).toBe('Site.Test:8080');
  });

  it('strips hop-by-hop headers both ways and keeps repeated ones', async () => {
    // node:http, because undici will not send a Connection header.
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request(`${proxyServer.url}/`, {
        headers: { host: 'site.test', connection: 'keep-alive, x-client-hop', 'x-client-hop': 'secret', te: 'trailers', 'proxy-authorization': 'Basic eA==', 'x-kept': 'yes' },
      }, resolve);
      req.once('error', reject);
      req.end();
    });
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
    const h = seen[0]!.headers;
    expect(h['x-client-hop']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
    expect(res.headers['x-upstream-hop']).toBeUndefined();
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('passes bodies sent with Expect: 100-continue', async () => {
    const body = 'y'.repeat(50_000);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request(`${proxyServer.url}/upload`, { method: 'POST', headers: { host: 'site.test', expect: '100-continue', 'content-length': body.length } }, resolve);
      req.once('continue', () => req.end(body));
      req.once('error', reject);
    });
    res.resume();
    await new Promise((resolve) => res.once('end', resolve));
    expect(res.statusCode).toBe(200);
    expect(seen[0]?.body).toBe(body);
    expect(seen[0]?.headers.expect).toBeUndefined();
  });

  it('streams request bodies through', async () => {
    const body = 'x'.repeat(200_000);
    const res = await request(`${proxyServer.url}/upload`, { method: 'POST', headers: { host: 'site.test', 'content-type': 'text/plain' }, body });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/upload' });
    expect(seen[0]!.body).toBe(body);
  });
});

describe('the proxy with a dispatcher in its own process (LocalDispatch)', () => {
  let localStore: MemoryStore;
  let localCache: CmdbCache;
  let localProxy: UserProxy;
  let server: Listening;
  const calls: { entryId: string; headers: string[]; retryIfGone: boolean }[] = [];
  const gone = new Set<string>();

  beforeAll(async () => {
    localStore = new MemoryStore();
    localCache = await CmdbCache.open(localStore, silentLogger);
    const local = {
      hostId: 'here',
      async serve(entryId: string, req: http.IncomingMessage, res: http.ServerResponse, headers: string[], retryIfGone: boolean) {
        calls.push({ entryId, headers, retryIfGone });
        if (gone.has(entryId) && retryIfGone) return { status: 503, retry: true };
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`served in process by ${entryId}`);
        return { status: 200, retry: false };
      },
    };
    localProxy = new UserProxy({ store: localStore, cache: localCache, clock: systemClock, logger: silentLogger, registry: createRegistry('proxy'), hopAuth, local }, { hostTimeout: 10_000, upstreamConnections: 16 });
    server = await listen(localProxy.handle, 0, '127.0.0.1');
    // A host id for this process, and one elsewhere whose dispatcher no one runs.
    await localStore.heartbeatHost({ id: 'here', dispatcherUrl: 'http://127.0.0.1:1', capacity: 10, startedAt: Date.now(), heartbeatAt: Date.now() });
    await localStore.createApp(appSpec({ name: 'near', hostnames: ['near.test'] }), Date.now());
    await eventually(() => localCache.host('here') && localCache.app('near'));
  });

  afterAll(async () => {
    await server?.destroy();
    await localProxy?.destroy();
    await localCache?.close();
  });

  afterEach(() => {
    calls.length = 0;
    gone.clear();
  });

  async function getNear(headers: Record<string, string> = {}) {
    const res = await request(`${server.url}/`, { headers: { host: 'near.test', ...headers } });
    return { status: res.statusCode, body: await res.body.text() };
  }

  it('calls the dispatcher directly, with the forwarded headers it sets and none the client forged', async () => {
    const res = await getNear({ 'x-forwarded-for': '6.6.6.6', 'x-fc-container': 'someone-else' });
    expect(res.status).toBe(200);
    const [call] = calls;
    expect(res.body).toBe(`served in process by ${call!.entryId}`);
    const names = call!.headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    const values = Object.fromEntries(names.map((n, i) => [n, call!.headers[i * 2 + 1]]));
    expect(values['x-forwarded-for']).toBe('127.0.0.1');
    expect(values['x-forwarded-host']).toBe('near.test');
    expect(names).not.toContain('x-fc-container');
  });

  it('tries another entry when the container went away before anything was sent', async () => {
    await getNear();
    const first = calls[0]!.entryId;
    const other = (await localStore.registerContainer(newContainer('near', { host: 'here', state: 'ready' }))).entry;
    await localStore.transitionContainer(first, ['registered', 'starting'], 'ready');
    await eventually(() => localCache.container(other.id)?.state === 'ready' && localCache.container(first)?.state === 'ready');
    gone.add(first);
    calls.length = 0;
    for (let i = 0; i < 5; i++) {
      const res = await getNear();
      expect(res).toEqual({ status: 200, body: `served in process by ${other.id}` });
    }
    // Every try but the last may be handed back for a retry.
    expect(calls.every((c) => c.retryIfGone || c.entryId === other.id)).toBe(true);
  });
});
