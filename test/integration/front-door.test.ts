// The front door against slow and hostile clients (issue 8, section 3): request bodies read whole
// before an upstream slot is taken, 408 for bodies too slow, 504 for an app too slow (never sent
// again), per-app limits that keep one app's slow traffic from stalling another's, and a request
// sent to a container at most once unless it provably never reached it. The UserProxy runs
// against a stand-in dispatcher that records what reaches it.

import { HopAuth } from '../../src/shared/hop-auth.js';
import http from 'node:http';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CmdbCache } from '../../src/cmdb/cache.js';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { UserProxy, type ProxySettings } from '../../src/proxy/proxy.js';
import { systemClock } from '../../src/shared/clock.js';
import { listen, type Listening } from '../../src/shared/http.js';
import { silentLogger } from '../../src/shared/logger.js';
import { createRegistry } from '../../src/shared/metrics.js';
import { appSpec } from '../helpers/specs.js';
import { eventually } from '../helpers/wait.js';

interface Arrival {
  path: string;
  entry: string;
  bytes: number;
}

let store: MemoryStore;
let cache: CmdbCache;
let dispatcher: Listening;
const arrivals: Arrival[] = [];
/** Requests to /hang, answered when a test lets them go. */
const hanging: http.ServerResponse[] = [];
/** Requests the stand-in dispatcher is reading the body of, or serving, right now. */
let inflight = 0;

const proxies: { proxy: UserProxy; server: Listening }[] = [];

async function startProxy(settings: Partial<ProxySettings> = {}): Promise<{ proxy: UserProxy; server: Listening; url: string }> {
  const proxy = new UserProxy(
    { store, cache, clock: systemClock, logger: silentLogger, registry: createRegistry('proxy'), hopAuth: new HopAuth('front-door-test-cluster-secret-0123456789', 30_000) },
    { hostTimeout: 10_000, upstreamConnections: 64, ...settings },
  );
  const server = await listen(proxy.handle, 0, '127.0.0.1');
  proxies.push({ proxy, server });
  return { proxy, server, url: server.url };
}

beforeAll(async () => {
  dispatcher = await listen(
    (req, res) => {
      inflight += 1;
      res.once('close', () => (inflight -= 1));
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://x');
        arrivals.push({ path: url.pathname, entry: String(req.headers['x-fc-container']), bytes });
        if (url.pathname === '/hang') {
          hanging.push(res);
          return;
        }
        if (url.pathname === '/die') {
          // The app's worker dies after it began: the connection closes without an answer.
          req.socket.destroy();
          return;
        }
        const answer = () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`bytes=${bytes}`);
        };
        const ms = Number(url.searchParams.get('ms') ?? '0');
        if (ms > 0) setTimeout(answer, ms);
        else answer();
      });
    },
    0,
    '127.0.0.1',
  );
  store = new MemoryStore();
  cache = await CmdbCache.open(store, silentLogger);
  await store.heartbeatHost({ id: 'h1', dispatcherUrl: dispatcher.url, capacity: 10, startedAt: Date.now(), heartbeatAt: Date.now() });
  await store.createApp(appSpec({ name: 'site', hostnames: ['site.test'] }), Date.now());
  await store.createApp(appSpec({ name: 'slow', hostnames: ['slow.test'], maxContainers: 1, maxConcurrency: 4, upstreamTimeout: 1 }), Date.now());
  await store.createApp(appSpec({ name: 'other', hostnames: ['other.test'] }), Date.now());
  await eventually(() => cache.host('h1') && cache.app('site') && cache.app('slow') && cache.app('other'));
});

afterAll(async () => {
  for (const res of hanging.splice(0)) res.destroy();
  for (const p of proxies) {
    await p.server.destroy();
    await p.proxy.destroy();
  }
  await dispatcher?.destroy();
  await cache?.close();
});

afterEach(() => {
  for (const res of hanging.splice(0)) res.destroy();
  arrivals.length = 0;
});

interface SlowUpload {
  /** The answer, once the proxy gave one (it may answer before the upload ends). */
  response: Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>;
  /** Sends the next piece. */
  send(piece: string): void;
  finish(piece?: string): void;
  abort(): void;
}

/** An upload whose pace the test sets, over node:http (undici sends a body as fast as it can). */
function slowUpload(url: string, host: string, path: string, headers: Record<string, string | number>): SlowUpload {
  const req = http.request(`${url}${path}`, { method: 'POST', headers: { host, ...headers }, agent: false });
  const response = new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  response.catch(() => undefined);
  req.flushHeaders();
  return {
    response,
    send: (piece) => void req.write(piece),
    finish: (piece) => void req.end(piece),
    abort: () => req.destroy(),
  };
}

async function get(url: string, host: string, path = '/') {
  const res = await request(`${url}${path}`, { headers: { host } });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('request bodies', () => {
  it('reads a small body whole before anything reaches the dispatcher, so slow uploaders hold no upstream slot', async () => {
    const { url } = await startProxy({ bodyTimeout: 10_000 });
    const uploads = Array.from({ length: 20 }, () => slowUpload(url, 'site.test', '/echo', { 'content-length': 1000 }));
    for (const u of uploads) u.send('x'.repeat(500));
    // Larger than the buffer: its first MiB is read here too before it may take a slot.
    const large = slowUpload(url, 'site.test', '/echo', { 'content-length': 5_000_000 });
    large.send('x'.repeat(500));
    // Half of each body is in; a normal client still gets through, and nothing of the uploads has
    // reached the dispatcher.
    const normal = await get(url, 'site.test', '/echo');
    expect(normal.status).toBe(200);
    await sleep(200);
    expect(arrivals.filter((a) => a.path === '/echo' && a.bytes > 0)).toEqual([]);
    expect(inflight).toBe(0);
    for (const u of uploads) u.finish('y'.repeat(500));
    const answers = await Promise.all(uploads.map((u) => u.response));
    expect(answers.map((a) => `${a.status} ${a.body}`)).toEqual(Array(20).fill('200 bytes=1000'));
    expect(inflight).toBe(0);
    large.abort();
  });

  it('buffers a chunked body too, and streams one longer than the buffer', async () => {
    const { url } = await startProxy({ bufferBody: 1000 });
    const small = slowUpload(url, 'site.test', '/echo', { 'transfer-encoding': 'chunked' });
    small.send('a'.repeat(600));
    await sleep(100);
    expect(arrivals).toEqual([]);
    small.finish('b'.repeat(300));
    expect(await small.response).toMatchObject({ status: 200, body: 'bytes=900' });
    const big = await request(`${url}/echo`, { method: 'POST', headers: { host: 'site.test' }, body: 'z'.repeat(300_000) });
    expect(big.statusCode).toBe(200);
    expect(await big.body.text()).toBe('bytes=300000');
  });

  it('answers 408 and closes the connection when a body stalls', async () => {
    const { url, proxy } = await startProxy({ bodyTimeout: 300 });
    const u = slowUpload(url, 'site.test', '/echo', { 'content-length': 1000 });
    u.send('x'.repeat(10));
    const res = await u.response;
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body).code).toBe('FC_ERR_BODY_TIMEOUT');
    expect(res.headers.connection).toBe('close');
    expect(arrivals).toEqual([]);
    const metrics = await proxy.metrics.slowClients.get();
    expect(metrics.values.find((v) => v.labels.code === 'FC_ERR_BODY_TIMEOUT')?.value).toBe(1);
  });

  it('answers 408 when the whole body takes longer than the request timeout, however steady', async () => {
    const { url } = await startProxy({ bodyTimeout: 10_000, requestTimeout: 800 });
    const u = slowUpload(url, 'site.test', '/echo', { 'content-length': 100 });
    const ticker = setInterval(() => u.send('x'), 50);
    try {
      const res = await u.response;
      expect(res.status).toBe(408);
      expect(JSON.parse(res.body).code).toBe('FC_ERR_REQUEST_TIMEOUT');
    } finally {
      clearInterval(ticker);
      u.abort();
    }
    expect(arrivals).toEqual([]);
  });

  it('cuts off a streamed body that arrives slower than the minimum rate, and lets a fast one through', async () => {
    const { url } = await startProxy({ bufferBody: 1000, bodyMinRate: 50_000, rateGrace: 300, bodyTimeout: 10_000 });
    const u = slowUpload(url, 'site.test', '/echo', { 'content-length': 100_000 });
    u.send('x'.repeat(2000));
    const ticker = setInterval(() => u.send('x'.repeat(100)), 50);
    try {
      const res = await u.response;
      expect(res.status).toBe(408);
      expect(JSON.parse(res.body).code).toBe('FC_ERR_BODY_TOO_SLOW');
    } finally {
      clearInterval(ticker);
      u.abort();
    }
    // The request never completed at the dispatcher: its body was cut.
    expect(arrivals.filter((a) => a.bytes === 100_000)).toEqual([]);
    const fast = await request(`${url}/echo`, { method: 'POST', headers: { host: 'site.test' }, body: 'f'.repeat(2_000_000) });
    expect(fast.statusCode).toBe(200);
    expect(await fast.body.text()).toBe('bytes=2000000');
  });
});

describe('an app slower than its upstream timeout', () => {
  it('gets 504, and the request is sent once', async () => {
    const { url } = await startProxy({ queueTimeout: 100, dispatcherMargin: 100 });
    // slow: upstreamTimeout 1 s; the stand-in dispatcher answers after 3 s.
    const res = await get(url, 'slow.test', '/echo?ms=3000');
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body).code).toBe('FC_ERR_UPSTREAM_TIMEOUT');
    await sleep(100);
    expect(arrivals.filter((a) => a.path === '/echo')).toHaveLength(1);
  });
});

describe('fairness between apps', () => {
  it('keeps answering another app while one app\'s slow requests fill its slots and queue, and refuses the rest with 503', async () => {
    // Few connections to the dispatcher in all: shared by every app, the slow app's four would take them.
    const { url, proxy } = await startProxy({ upstreamConnections: 4, appQueue: 2, appQueueTimeout: 60_000 });
    // slow: maxConcurrency 4; 4 forwarded, 2 queued, the rest refused.
    const stuck = Array.from({ length: 10 }, () => get(url, 'slow.test', '/hang'));
    await eventually(() => hanging.length === 4, { what: 'four slow requests at the dispatcher' });
    const refused = await Promise.race([Promise.all(stuck.slice(6)), sleep(5_000).then(() => 'timeout')]);
    expect(refused).not.toBe('timeout');
    for (const r of refused as { status: number; headers: Record<string, unknown>; body: string }[]) {
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBeDefined();
      expect(JSON.parse(r.body).code).toBe('FC_ERR_APP_BUSY');
      // A refused GET has no body left unread: its connection stays open.
      expect(r.headers.connection).not.toBe('close');
    }
    // The other app answers while the slow one is saturated.
    const other = await Promise.race([get(url, 'other.test', '/echo'), sleep(10_000).then(() => undefined)]);
    expect(other?.status).toBe(200);
    const limited = await proxy.metrics.limited.get();
    const count = (outcome: string) => limited.values.find((v) => v.labels.app === 'slow' && v.labels.outcome === outcome)?.value ?? 0;
    expect(count('queued')).toBe(2);
    expect(count('rejected')).toBe(4);
    expect(limited.values.filter((v) => v.labels.app === 'other')).toEqual([]);
    // Let them go: the queued two reach the dispatcher as slots free up.
    for (const res of hanging.splice(0)) res.end('done');
    await eventually(() => hanging.length === 2, { what: 'the queued requests to be forwarded' });
    for (const res of hanging.splice(0)) res.end('done');
    const answered = await Promise.all(stuck.slice(0, 6));
    expect(answered.map((a) => a.status)).toEqual(Array(6).fill(200));
  });
});

describe('retries', () => {
  it('sends a GET whose container died mid-request exactly once', async () => {
    const { url, proxy } = await startProxy();
    const res = await get(url, 'site.test', '/die');
    expect(res.status).toBe(502);
    await sleep(100);
    expect(arrivals.filter((a) => a.path === '/die')).toHaveLength(1);
    const retries = await proxy.metrics.retries.get();
    expect(retries.values.reduce((n, v) => n + v.value, 0)).toBe(0);
  });
});
