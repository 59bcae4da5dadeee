// `app update` under load: a change of what containers are started from (image, env, ...)
// replaces the running containers make before break, one at a time, with no failed request and
// never without a ready container. The whole stack (CoreAPI, dispatcher, proxy) over real HTTP
// with the Redis CMDB and the fake runtime.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerEntry, Subscription } from '../../src/cmdb/types.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack;
let runtime: FakeRuntime;

beforeAll(async () => {
  runtime = new FakeRuntime();
  runtime.images.set('fastcontainer/hello:v2', { listenAfterMs: 150 });
  runtime.images.set('fastcontainer/hello:v3', {});
  t = await startTestStack({ roles: ['coreapi', 'dispatcher', 'proxy'], runtime, env: { FC_RECONCILE_INTERVAL: '1s' } });
});

afterAll(async () => {
  await t?.cleanup();
  await runtime?.close();
});

/**
 * Follows the app's entries through the CMDB's change stream and records, after every change,
 * the fewest ready entries seen (once the first was ready) and the most entries coming up at once.
 */
async function watch(app: string): Promise<{ minReady: number; maxPending: number; stop(): Promise<void> }> {
  const entries = new Map<string, ContainerEntry>();
  for (const e of await t.stack.store.listContainers({ app })) entries.set(e.id, e);
  const seen = { minReady: Number.POSITIVE_INFINITY, maxPending: 0 };
  const count = () => {
    const all = [...entries.values()];
    seen.minReady = Math.min(seen.minReady, all.filter((e) => e.state === 'ready').length);
    seen.maxPending = Math.max(seen.maxPending, all.filter((e) => e.state === 'registered' || e.state === 'starting').length);
  };
  count();
  const sub: Subscription = await t.stack.store.subscribe({
    onChange(change) {
      if (change.kind !== 'container' || change.value.app !== app) return;
      if (change.op === 'delete') entries.delete(change.id);
      else entries.set(change.value.id, change.value);
      count();
    },
    onResync() {
      seen.minReady = -1; // a missed change makes the record worthless: fail rather than guess
    },
  });
  return {
    get minReady() {
      return seen.minReady;
    },
    get maxPending() {
      return seen.maxPending;
    },
    stop: () => sub.unsubscribe(),
  };
}

/** Requests through the proxy, `parallel` at a time, until stopped; every answer that is not a 200 is kept. */
function steadyClient(host: string, parallel = 3): { stop(): Promise<{ sent: number; failed: string[] }> } {
  let running = true;
  let sent = 0;
  const failed: string[] = [];
  const loops = Array.from({ length: parallel }, async () => {
    while (running) {
      try {
        const r = await t.get(host);
        sent += 1;
        if (r.status !== 200) failed.push(`${r.status} ${r.body.slice(0, 120)}`);
      } catch (err) {
        failed.push(`error ${(err as Error).message}`);
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { sent, failed };
    },
  };
}

/** The app's running fake containers, with the image and env they were started from. */
function running(app: string) {
  return [...runtime.containers.values()].filter((c) => c.running && c.spec.labels['fastcontainer.app'] === app).map((c) => ({ image: c.spec.image, env: c.spec.env }));
}

async function readyEntries(app: string): Promise<ContainerEntry[]> {
  return (await t.stack.store.listContainers({ app })).filter((e) => e.state === 'ready');
}

describe('app update replaces running containers make before break', () => {
  const app = { name: 'roll', hostnames: ['roll.test'], image: 'fastcontainer/hello', env: { VERSION: '1' }, minContainers: 3, maxContainers: 6, lifespan: 3600, autoscale: false };

  beforeAll(async () => {
    expect((await t.api('POST', '/v1/apps', app)).status).toBe(201);
    await eventually(async () => (await readyEntries('roll')).length === 3 && running('roll').length === 3, { timeout: 15_000, what: 'three ready containers' });
  });

  it('under a steady client: no failed request, every container on the new spec, never zero ready, one at a time', async () => {
    const w = await watch('roll');
    const client = steadyClient('roll.test');
    await eventually(() => running('roll').length === 3, { what: 'load to begin' });
    const res = await t.api('PATCH', '/v1/apps/roll', { image: 'fastcontainer/hello:v2', env: { VERSION: '2' } });
    expect(res.status).toBe(200);
    await eventually(async () => {
      const now = running('roll');
      const ready = await readyEntries('roll');
      const live = (await t.stack.store.listContainers({ app: 'roll' })).filter((e) => e.state !== 'draining');
      return now.length === 3 && now.every((c) => c.image === 'fastcontainer/hello:v2' && c.env.VERSION === '2') &&
        ready.length === 3 && live.length === 3 && ready.every((e) => e.image === 'fastcontainer/hello:v2');
    }, { timeout: 30_000, what: `every container on v2 (running: ${JSON.stringify(running('roll'))})` });
    const { sent, failed } = await client.stop();
    await w.stop();
    console.log(`[rollout] ${sent} requests during the update, ${failed.length} failed; fewest ready ${w.minReady}, most coming up at once ${w.maxPending}`);
    expect(sent).toBeGreaterThan(20);
    expect(failed).toEqual([]);
    expect(w.minReady).toBeGreaterThanOrEqual(1);
    expect(w.maxPending).toBe(1);
    const { body } = await t.api('GET', '/v1/apps/roll/events?limit=50');
    const replaced = (body.events as { kind: string; reason: string }[]).filter((e) => e.kind === 'replace');
    expect(replaced).toHaveLength(3);
    expect(replaced.every((e) => e.reason.startsWith('the app\'s spec changed (app update)'))).toBe(true);

    // The digest covers secret values: the CMDB keeps it, the API never answers it.
    const stored = await readyEntries('roll');
    expect(stored.every((e) => typeof e.specHash === 'string' && e.specHash.length === 16)).toBe(true);
    for (const p of ['/v1/apps/roll/containers', '/v1/containers?app=roll', `/v1/containers/${stored[0]?.id}`]) {
      const answer = await t.api('GET', p);
      expect([p, answer.status, JSON.stringify(answer.body).includes('specHash')]).toEqual([p, 200, false]);
    }
  });

  it('leaves running containers alone when only live fields change (cpus, hostnames, lifespan, scaling)', async () => {
    const before = (await readyEntries('roll')).map((e) => e.id).sort();
    const res = await t.api('PATCH', '/v1/apps/roll', { cpus: 0.25, hostnames: ['roll.test', 'www.roll.test'], lifespan: 1800, latencyTargetMs: 300 });
    expect(res.status).toBe(200);
    // Three lifespan ticks and more: a rollout would have registered a replacement by now.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await t.stack.store.listContainers({ app: 'roll' })).map((e) => `${e.id}:${e.state}`).sort()).toEqual(before.map((id) => `${id}:ready`));
  });

  it('an update to an image that cannot start stalls at one replacement; the old containers keep serving', async () => {
    const w = await watch('roll');
    const client = steadyClient('roll.test', 2);
    expect((await t.api('PATCH', '/v1/apps/roll', { image: 'fastcontainer/no-such-image' })).status).toBe(200);
    // The first replacement fails to start (FC_ERR_IMAGE_NOT_FOUND): recorded as start-failed.
    await eventually(async () => {
      const { body } = await t.api('GET', '/v1/apps/roll/events?limit=20');
      return (body.events as { kind: string; reason: string }[]).some((e) => e.kind === 'start-failed' && e.reason.includes('FC_ERR_IMAGE_NOT_FOUND'));
    }, { timeout: 15_000, what: 'the failed start of the replacement' });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(running('roll').map((c) => c.image)).toEqual(['fastcontainer/hello:v2', 'fastcontainer/hello:v2', 'fastcontainer/hello:v2']);
    expect((await readyEntries('roll')).length).toBe(3);
    // Fixed by another update: the rollout goes on to the end, still one at a time.
    expect((await t.api('PATCH', '/v1/apps/roll', { image: 'fastcontainer/hello:v3' })).status).toBe(200);
    await eventually(async () => {
      const now = running('roll');
      return now.length === 3 && now.every((c) => c.image === 'fastcontainer/hello:v3') && (await readyEntries('roll')).length === 3;
    }, { timeout: 30_000, what: 'every container on v3' });
    const { failed } = await client.stop();
    await w.stop();
    expect(failed).toEqual([]);
    expect(w.minReady).toBeGreaterThanOrEqual(1);
    expect(w.maxPending).toBe(1);
  });
});
