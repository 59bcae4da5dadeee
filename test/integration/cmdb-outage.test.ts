// Static stability: the CMDB (a Redis of the test's own) stopped, stalled and restarted empty under
// a whole stack in this process (fake runtime: containers are HTTP servers on loopback). Warm apps
// must keep answering however long it lasts; what needs the CMDB answers a fast 503 with
// Retry-After; everything converges once it is back.

import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startOwnRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let redis: OwnRedis | undefined;
let t: TestStack | undefined;
let runtime: FakeRuntime;

afterEach(async () => {
  await t?.cleanup();
  await redis?.cleanup();
  t = undefined;
  redis = undefined;
});

async function stack(persistent: boolean): Promise<TestStack> {
  redis = await startOwnRedis({ persistent });
  runtime = new FakeRuntime();
  t = await startTestStack({
    runtime,
    env: {
      REDIS_URL: redis.url,
      // Short, so that an outage of a few seconds is several host timeouts long. The cache notices
      // an outage within a probe interval (1 s) and the CMDB deadline: that must stay below the
      // host timeout less a heartbeat interval, as it does with the defaults (10 s, 2 s).
      FC_HEARTBEAT_INTERVAL: '200ms',
      FC_HOST_TIMEOUT: '2s',
      FC_CMDB_TIMEOUT: '500ms',
    },
  });
  return t;
}

/** A GET through the proxy that gives up after 4 s: a request hanging on a stalled CMDB fails the test. */
async function get(s: TestStack, host: string): Promise<{ status: number; code: string | undefined; retryAfter: string | undefined; body: string }> {
  const res = await request(`${s.proxyUrl}/`, { headers: { host }, headersTimeout: 4000, bodyTimeout: 4000 });
  const body = await res.body.text();
  return { status: res.statusCode, code: res.headers['x-fc-error'] as string | undefined, retryAfter: res.headers['retry-after'] as string | undefined, body };
}

async function healthz(url: string): Promise<{ status: number; body: { status: string } }> {
  const res = await request(`${url}/healthz`, { headersTimeout: 4000 });
  return { status: res.statusCode, body: (await res.body.json()) as { status: string } };
}

/** Warm GETs for `ms`, one every 50 ms; the statuses and codes seen. */
async function hammer(s: TestStack, host: string, ms: number): Promise<{ sent: number; failed: string[] }> {
  const end = Date.now() + ms;
  const failed: string[] = [];
  let sent = 0;
  while (Date.now() < end) {
    sent += 1;
    const r = await get(s, host).catch((err: Error) => ({ status: 0, code: err.message, retryAfter: undefined, body: '' }));
    if (r.status !== 200) failed.push(`${r.status} ${r.code ?? ''}${failed.length === 0 ? ` ${r.body}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { sent, failed };
}

async function createApp(s: TestStack, name: string, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await s.api('POST', '/v1/apps', { name, hostnames: [`${name}.test`], image: 'fastcontainer/hello', ...extra });
  expect(res.status).toBe(201);
}

function runningOf(app: string): number {
  return [...runtime.containers.values()].filter((c) => c.running && c.spec.labels[labelKeys.app] === app).length;
}

describe('the CMDB stops, the sites stay up', () => {
  it('serves warm apps through a Redis stop many host timeouts long, answers cold starts 503 at once, and converges after', async () => {
    const s = await stack(true);
    await createApp(s, 'warm');
    await createApp(s, 'cold');
    expect((await get(s, 'warm.test')).status).toBe(200);

    await redis?.kill();
    const during = await hammer(s, 'warm.test', 6000);
    console.log(`Redis stopped: ${during.sent} warm requests, ${during.failed.length} failed`);
    expect(during.failed).toEqual([]);
    const cold = await get(s, 'cold.test');
    expect(cold.status).toBe(503);
    expect(cold.code).toBe('FC_ERR_STORE_UNAVAILABLE');
    expect(Number(cold.retryAfter)).toBeGreaterThan(0);
    // The admin listener: every role of the process, degraded but serving (200).
    expect(await healthz(s.adminUrl)).toMatchObject({ status: 200, body: { status: 'degraded', roles: { proxy: { status: 'degraded' }, dispatcher: { status: 'degraded' } } } });

    const back = Date.now();
    await redis?.restart();
    await eventually(async () => (await get(s, 'cold.test')).status === 200, { timeout: 10_000, what: 'a cold start after Redis came back' });
    console.log(`Redis back: cold start served ${Date.now() - back} ms after the restart began`);
    await eventually(async () => (await healthz(s.adminUrl)).body.status === 'ok', { timeout: 5000, what: 'the proxy healthy again' });
    const hosts = await s.stack.store.listHosts();
    expect(hosts.find((h) => h.id === s.hostId)?.heartbeatAt ?? 0).toBeGreaterThan(back);
    expect((await hammer(s, 'warm.test', 500)).failed).toEqual([]);
  });

  it('answers fast 503s and a degraded /healthz while Redis is stalled (SIGSTOP), and serves warm apps throughout', async () => {
    const s = await stack(false);
    await createApp(s, 'warm');
    await createApp(s, 'cold');
    expect((await get(s, 'warm.test')).status).toBe(200);

    redis?.pause();
    try {
      // A cold start and an app creation each answer within the request's 4 s limit, not after the stall.
      const cold = await get(s, 'cold.test');
      expect([cold.status, cold.code]).toEqual([503, 'FC_ERR_STORE_UNAVAILABLE']);
      const created = await request(`${s.apiUrl}/v1/apps`, {
        method: 'POST', headersTimeout: 4000,
        headers: { authorization: `Bearer ${'test-token-0123456789abcdef'}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'late', hostnames: ['late.test'], image: 'fastcontainer/hello' }),
      });
      expect(created.statusCode).toBe(503);
      expect(created.headers['x-fc-error']).toBe('FC_ERR_STORE_UNAVAILABLE');
      await created.body.dump();
      expect(await healthz(s.apiUrl)).toMatchObject({ status: 503, body: { status: 'degraded' } });
      await eventually(async () => (await healthz(s.adminUrl)).body.status === 'degraded', { timeout: 4000, what: 'the dispatcher to report degraded' });
      const metrics = await (await request(`${s.adminUrl}/metrics`, { headersTimeout: 4000 })).body.text();
      expect(metrics).toMatch(/^fc_cmdb_healthy\{role="dispatcher"\} 0$/m);
      const during = await hammer(s, 'warm.test', 5000);
      console.log(`Redis stalled: ${during.sent} warm requests, ${during.failed.length} failed`);
      expect(during.failed).toEqual([]);
    } finally {
      redis?.resume();
    }
    await eventually(async () => (await get(s, 'cold.test')).status === 200, { timeout: 10_000, what: 'a cold start after the stall' });
    await eventually(async () => (await healthz(s.adminUrl)).body.status === 'ok', { timeout: 5000, what: 'the dispatcher healthy again' });
    const metrics = await (await request(`${s.adminUrl}/metrics`, { headersTimeout: 4000 })).body.text();
    expect(metrics).toMatch(/^fc_cmdb_healthy\{role="dispatcher"\} 1$/m);
    expect(metrics).toMatch(/^fc_cmdb_outages\{role="dispatcher"\} [1-9]/m);
  });

  it('keeps a container that started while the CMDB stalled, serves its request, and records it ready once the CMDB is back', async () => {
    const s = await stack(false);
    runtime.images.set('slow', { listenAfterMs: 1500 });
    await createApp(s, 'slow', { image: 'slow', maxContainers: 1 });
    const first = get(s, 'slow.test');
    // The entry is written starting, the container created; then the CMDB stalls before it is ready.
    await eventually(() => [...runtime.containers.values()].some((c) => c.spec.labels[labelKeys.app] === 'slow'), { what: 'the container to be created' });
    redis?.pause();
    let served;
    try {
      served = await first;
    } finally {
      redis?.resume();
    }
    expect(served.status).toBe(200);
    expect(runningOf('slow')).toBe(1);
    await eventually(async () => (await s.stack.store.listContainers({ app: 'slow' })).map((e) => e.state).join() === 'ready', { timeout: 15_000, what: 'the entry to be recorded ready' });
    expect(runningOf('slow')).toBe(1);
    expect((await get(s, 'slow.test')).status).toBe(200);
  });

  it('after Redis restarts empty, the dispatcher re-announces its host and removes the containers no entry claims', async () => {
    const s = await stack(false);
    await createApp(s, 'site', { maxContainers: 1 });
    expect((await get(s, 'site.test')).status).toBe(200);
    expect(runningOf('site')).toBe(1);

    await redis?.restart({ empty: true });
    await eventually(() => runningOf('site') === 0, { timeout: 8000, what: 'the unclaimed container to be removed' });
    await eventually(async () => (await s.stack.store.listHosts()).some((h) => h.id === s.hostId), { timeout: 5000, what: 'the host to be announced again' });

    // Created again with maxContainers 1: one container, and deleting the app leaves none.
    await createApp(s, 'site', { maxContainers: 1 });
    await eventually(async () => (await get(s, 'site.test')).status === 200, { timeout: 5000, what: 'the app served again' });
    expect(runningOf('site')).toBe(1);
    expect((await s.api('DELETE', '/v1/apps/site')).status).toBe(200);
    await eventually(() => runningOf('site') === 0, { timeout: 8000, what: 'the deleted app\'s container to go' });
  });
});
