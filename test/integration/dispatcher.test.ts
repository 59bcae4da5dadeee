// The dispatcher's edge cases, on the in-process fake runtime so that slow starts, crashes and
// slow requests can be staged: the whole stack runs (proxy, dispatcher, CoreAPI, embedded CMDB)
// over real HTTP on loopback.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { newContainer } from '../helpers/specs.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack | undefined;
let runtime: FakeRuntime;

async function stack(env: Record<string, string> = {}): Promise<TestStack> {
  runtime = new FakeRuntime();
  t = await startTestStack({ store: 'memory', runtime, env: { FC_RECONCILE_INTERVAL: '1s', ...env } });
  return t;
}

afterEach(async () => {
  await t?.cleanup();
  await runtime?.close();
  t = undefined;
});

async function app(s: TestStack, spec: Record<string, unknown>): Promise<void> {
  const res = await s.api('POST', '/v1/apps', { image: 'fastcontainer/hello', ...spec });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

const running = () => [...runtime.containers.values()].filter((c) => c.running);

describe('held requests', () => {
  it('refuses requests beyond the queue limit at once, and serves the rest when the container is up', async () => {
    const s = await stack({ FC_QUEUE_LIMIT: '2' });
    runtime.images.set('slow', { listenAfterMs: 800 });
    await app(s, { name: 'slow', hostnames: ['slow.test'], image: 'slow' });
    const began = Date.now();
    const answers = await Promise.all([1, 2, 3, 4].map(async () => {
      const r = await s.get('slow.test');
      return { status: r.status, code: r.status === 200 ? '' : JSON.parse(r.body).code, ms: Date.now() - began };
    }));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(2);
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.map((a) => a.code)).toEqual(['FC_ERR_QUEUE_FULL', 'FC_ERR_QUEUE_FULL']);
    expect(Math.max(...refused.map((a) => a.ms))).toBeLessThan(500);
    expect(runtime.creates).toBe(1);
  });

  it('answers 503 with Retry-After past the deadline, while the start goes on for later requests', async () => {
    const s = await stack({ FC_QUEUE_TIMEOUT: '300ms' });
    runtime.images.set('slower', { listenAfterMs: 1500 });
    await app(s, { name: 'slower', hostnames: ['slower.test'], image: 'slower' });
    const late = await s.get('slower.test');
    expect(late.status).toBe(503);
    expect(late.headers['retry-after']).toBe('5');
    expect(JSON.parse(late.body)).toMatchObject({ code: 'FC_ERR_QUEUE_TIMEOUT', requestId: late.headers['x-request-id'] });
    await eventually(async () => (await s.get('slower.test')).status === 200, { timeout: 5000, what: 'the container to serve' });
    expect(runtime.creates).toBe(1);
  });
});

describe('readiness', () => {
  it('waits for the readiness path before sending requests to a container that listens early', async () => {
    const s = await stack();
    runtime.images.set('booting', { unavailableForMs: 600 });
    await app(s, { name: 'ready', hostnames: ['ready.test'], image: 'booting', readinessPath: '/healthz' });
    await app(s, { name: 'eager', hostnames: ['eager.test'], image: 'booting' });
    const [withPath, withoutPath] = await Promise.all([s.get('ready.test'), s.get('eager.test')]);
    expect(withPath.status).toBe(200);
    // Without a readiness path, "accepts connections" is ready: the app's own 503 comes through.
    expect(withoutPath.status).toBe(503);
    expect(withoutPath.body).toBe('still booting\n');
  });
});

describe('failed starts', () => {
  it('reports a container that exits before listening to the operator, with its exit code and output, then fails fast', async () => {
    const s = await stack({ FC_START_BACKOFF: '30s' });
    runtime.images.set('crashy', { exit: { code: 3, output: 'PHP Fatal error: boom' } });
    await app(s, { name: 'crashy', hostnames: ['crashy.test'], image: 'crashy' });
    const first = await s.get('crashy.test');
    expect(first.status).toBe(503);
    const problem = JSON.parse(first.body);
    expect(problem.code).toBe('FC_ERR_START_FAILED');
    // The public learns what and a request id, not the app's output, image or container.
    expect(problem.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.headers['x-request-id']).toBe(problem.requestId);
    for (const secret of ['exited with code 3', 'PHP Fatal error: boom', 'crashy', 'container ']) expect(first.body).not.toContain(secret);
    const again = await s.get('crashy.test');
    expect(JSON.parse(again.body).code).toBe('FC_ERR_START_FAILED');
    expect(JSON.parse(again.body).requestId).not.toBe(problem.requestId);
    expect(Number(again.headers['retry-after'])).toBeGreaterThan(20);
    expect(runtime.creates).toBe(1);
    expect(runtime.containers.size).toBe(0);
    // The operator reads it all in the entry (`ps`).
    const entries = (await s.api('GET', '/v1/apps/crashy/containers')).body.containers;
    expect(entries[0]).toMatchObject({ state: 'registered', lastErrorCode: 'FC_ERR_START_FAILED' });
    expect(entries[0].lastError).toContain('exited with code 3');
    expect(entries[0].lastError).toContain('PHP Fatal error: boom');
    expect(entries[0].lastError).toContain('image crashy');
  });

  it('reports a container gone before its network was attached by its exit code and output, not a missing address', async () => {
    const s = await stack({ FC_START_BACKOFF: '30s' });
    runtime.images.set('gone-at-once', { exit: { code: 2, output: 'unknown option --bad' }, exitBeforeNetwork: true });
    await app(s, { name: 'quick', hostnames: ['quick.test'], image: 'gone-at-once' });
    const res = await s.get('quick.test');
    expect(res.status).toBe(503);
    expect(res.body).not.toContain('--bad');
    const [entry] = (await s.api('GET', '/v1/apps/quick/containers')).body.containers;
    expect(entry.lastError).toContain('exited with code 2');
    expect(entry.lastError).toContain('unknown option --bad');
    expect(entry.lastError).not.toContain('no address');
  });

  it('starts a fresh container after one dies under load', async () => {
    const s = await stack();
    await app(s, { name: 'fragile', hostnames: ['fragile.test'] });
    const first = (await s.get('fragile.test', '/cgi-bin/whoami')).body;
    const [dead] = running();
    runtime.crash(dead!.id, 139);
    await eventually(async () => (await s.api('GET', '/v1/apps/fragile/containers')).body.containers.length === 0, { what: 'the entry to go' });
    expect(runtime.containers.size).toBe(0);
    const second = await eventually(async () => {
      const r = await s.get('fragile.test', '/cgi-bin/whoami');
      return r.status === 200 ? r.body : undefined;
    }, { what: 'a new container' });
    expect(second).not.toBe(first);
  });
});

describe('reconciliation', () => {
  it('gives up a container that stopped without the engine saying so', async () => {
    const s = await stack();
    await app(s, { name: 'quiet', hostnames: ['quiet.test'] });
    await s.get('quiet.test');
    const [c] = running();
    runtime.crash(c!.id, 1, { silent: true });
    await eventually(async () => (await s.api('GET', '/v1/apps/quiet/containers')).body.containers.length === 0, { timeout: 5000, what: 'the entry to go' });
    expect((await s.get('quiet.test')).status).toBe(200);
  });

  it('removes the entries of a host silent for six host timeouts, and the host', async () => {
    const s = await stack({ FC_HOST_TIMEOUT: '1s' });
    await app(s, { name: 'stranded', hostnames: ['stranded.test'] });
    const long = Date.now() - 60_000;
    await s.stack.store.heartbeatHost({ id: 'ghost', dispatcherUrl: 'http://127.0.0.1:1', capacity: 5, startedAt: long, heartbeatAt: long });
    // The CoreAPI places nothing on a silent host; the entry is what that host left behind.
    expect((await s.api('POST', '/v1/apps/stranded/containers', { host: 'ghost' })).body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: 'host' });
    await s.stack.store.registerContainer(newContainer('stranded', { id: 'stranded-ghost1', host: 'ghost', state: 'ready', address: '10.9.9.9:8080', createdAt: long }));
    await eventually(async () => (await s.api('GET', '/v1/containers/stranded-ghost1')).status === 404, { timeout: 5000, what: 'the stranded entry to go' });
    const hosts = (await s.api('GET', '/v1/hosts')).body.hosts.map((h: { id: string }) => h.id);
    expect(hosts).toEqual([s.hostId]);
  });
});

describe('draining', () => {
  it('lets in-flight requests finish when a container is drained, then removes it', async () => {
    const s = await stack({ FC_DRAIN_GRACE: '100ms' });
    runtime.images.set('slowreq', { requestMs: 1200 });
    await app(s, { name: 'slowreq', hostnames: ['slowreq.test'], image: 'slowreq' });
    await s.get('slowreq.test');
    const [entry] = (await s.api('GET', '/v1/apps/slowreq/containers')).body.containers;
    const inflight = s.get('slowreq.test');
    await new Promise((r) => setTimeout(r, 200));
    const drain = await s.api('DELETE', `/v1/containers/${entry.id}`);
    expect(drain.status).toBe(202);
    expect(running()).toHaveLength(1);
    const res = await inflight;
    expect(res.status).toBe(200);
    await eventually(() => runtime.containers.size === 0, { what: 'the container to be removed' });
    expect((await s.api('GET', `/v1/containers/${entry.id}`)).status).toBe(404);
  });
});

describe('starting ahead of requests', () => {
  it('keeps minContainers started without any request', async () => {
    const s = await stack();
    await app(s, { name: 'warm', hostnames: ['warm.test'], minContainers: 2 });
    await eventually(async () => {
      const entries = (await s.api('GET', '/v1/apps/warm/containers')).body.containers as { state: string }[];
      return entries.length === 2 && entries.every((e) => e.state === 'ready');
    }, { timeout: 8000, what: 'two ready containers' });
    expect(running()).toHaveLength(2);
  });

  it('starts an entry added to scale out, and spreads requests over both once it is ready', async () => {
    const s = await stack();
    await app(s, { name: 'wide', hostnames: ['wide.test'] });
    await s.get('wide.test');
    const added = await s.api('POST', '/v1/apps/wide/containers', {});
    expect(added.status).toBe(201);
    await eventually(async () => (await s.api('GET', `/v1/containers/${added.body.id}`)).body.state === 'ready', { what: 'the new entry to be ready' });
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add((await s.get('wide.test', '/cgi-bin/whoami')).body);
    expect(seen.size).toBe(2);
  });
});

describe('the embedded CMDB', () => {
  it('removes its containers when the stack stops, since nothing could adopt them', async () => {
    const s = await stack();
    await app(s, { name: 'bye', hostnames: ['bye.test'] });
    await s.get('bye.test');
    expect(running()).toHaveLength(1);
    await s.stack.close();
    expect(runtime.containers.size).toBe(0);
  });
});

describe('freezing', () => {
  it('gives up a container that cannot be thawed: the request is served by a fresh one, not failed', async () => {
    const s = await stack();
    await app(s, { name: 'stuck', hostnames: ['stuck.test'], freezeAfter: 1, autoscale: false });
    expect((await s.get('stuck.test', '/cgi-bin/whoami')).status).toBe(200);
    const first = running()[0]!;
    await eventually(() => first.frozen !== undefined, { timeout: 5_000, what: 'the container to be frozen' });
    runtime.failThaw = true;
    const answer = await s.get('stuck.test', '/cgi-bin/whoami');
    runtime.failThaw = false;
    expect(answer.status, answer.body).toBe(200);
    expect(answer.body.trim()).not.toBe(first.id.slice(0, 12));
    await eventually(() => !runtime.containers.has(first.id), { timeout: 5_000, what: 'the stuck container to be removed' });
  });
});

describe('network isolation', () => {
  it('starts each container with its app\'s egress, open unless the app closes it', async () => {
    const s = await stack();
    await app(s, { name: 'open-app', hostnames: ['open.test'] });
    await app(s, { name: 'closed-app', hostnames: ['closed.test'], egress: 'closed' });
    expect((await s.get('open.test')).status).toBe(200);
    expect((await s.get('closed.test')).status).toBe(200);
    const egressOf = (name: string) => running().find((c) => c.spec.labels['fastcontainer.app'] === name)?.spec.egress;
    expect(egressOf('open-app')).toBe('open');
    expect(egressOf('closed-app')).toBe('closed');
  });
});
