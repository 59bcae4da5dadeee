// Freezing on the real Docker engine: a container idle for its app's freezeAfter is frozen (the
// cgroup freezer), uses no CPU while frozen, and the next request thaws it and is answered by the
// same container. A frozen container still ends at its lifespan, and is never taken for dead.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { CgroupCpu } from '../../src/dispatcher/signals/cgroup.js';
import { containersOfHost, docker, imageExists } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const HELLO = 'fastcontainer/hello';
let t: TestStack;

beforeAll(async () => {
  if (!(await imageExists(HELLO))) throw new Error(`image ${HELLO} is missing; run \`bash scripts/setup.sh\` first`);
  // Reconcile often, so a frozen container mistaken for a dead one would be caught here.
  t = await startTestStack({ env: { FC_RECONCILE_INTERVAL: '1s' } });
});

afterAll(async () => {
  await t?.cleanup();
});

interface Entry { id: string; state: string; runtimeId: string; frozenAt: number | null }

async function entries(app: string): Promise<Entry[]> {
  return (await t.api('GET', `/v1/apps/${app}/containers`)).body.containers;
}

async function paused(runtimeId: string): Promise<boolean> {
  return (await docker.getContainer(runtimeId).inspect()).State.Paused;
}

describe('freezing', () => {
  it('freezes an idle container (no CPU, even with a busy loop inside), and thaws it for the next request', async () => {
    // A tenant's background loop: frozen, it gets no CPU at all.
    const res = await t.api('POST', '/v1/apps', {
      name: 'sleepy', hostnames: ['sleepy.test'], image: HELLO, cpus: 0.2, freezeAfter: 1,
      command: ['/bin/busybox', 'sh', '-c', 'while :; do :; done & exec /bin/fastcontainer-httpd'],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const first = await t.get('sleepy.test', '/cgi-bin/whoami');
    expect(first.status).toBe(200);
    const [entry] = await eventually(async () => {
      const list = await entries('sleepy');
      return list[0]?.frozenAt != null ? list : undefined;
    }, { timeout: 10_000, what: 'the container to be frozen' });
    expect(await paused(entry!.runtimeId)).toBe(true);
    const cgroup = new CgroupCpu();
    const before = await cgroup.read(entry!.runtimeId);
    await new Promise((r) => setTimeout(r, 1_000));
    const after = await cgroup.read(entry!.runtimeId);
    expect(after!.usageNs - before!.usageNs).toBeLessThan(1e6);
    // Still there after a few reconciliations: frozen is not dead.
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await entries('sleepy')).map((e) => e.id)).toEqual([entry!.id]);
    // Once thawed it must stay thawed while it is looked at: with freezeAfter 1 it would freeze
    // again about a second after the next answer, which a slow machine can overrun. freezeAfter
    // applies live (no restart); the dispatcher reads it from its cache, so that is waited for.
    expect((await t.api('PATCH', '/v1/apps/sleepy', { freezeAfter: 60 })).status).toBe(200);
    await eventually(() => t.stack.cache?.app('sleepy')?.freezeAfter === 60, { what: 'the dispatcher to see freezeAfter 60' });
    expect(await paused(entry!.runtimeId)).toBe(true);

    const second = await t.get('sleepy.test', '/cgi-bin/whoami');
    expect(second.status).toBe(200);
    // The same container answered: thawed, not started again.
    expect(second.body).toBe(first.body);
    expect(await paused(entry!.runtimeId)).toBe(false);
    const thawed = await cgroup.read(entry!.runtimeId);
    await new Promise((r) => setTimeout(r, 500));
    // Thawed, its loop runs again (within its 0.2 core).
    expect((await cgroup.read(entry!.runtimeId))!.usageNs - thawed!.usageNs).toBeGreaterThan(20e6);
    const kinds = (await t.api('GET', '/v1/apps/sleepy/events')).body.events.map((e: { kind: string }) => e.kind);
    expect(kinds.slice(0, 2)).toEqual(['thaw', 'freeze']);
    await eventually(async () => (await entries('sleepy'))[0]?.frozenAt === null, { timeout: 5_000, what: 'the entry to say thawed' });
  }, 30_000);

  it('serves many requests arriving at once at a frozen container, thawing it once', async () => {
    expect((await t.api('POST', '/v1/apps', { name: 'crowd', hostnames: ['crowd.test'], image: HELLO, freezeAfter: 1 })).status).toBe(201);
    expect((await t.get('crowd.test')).status).toBe(200);
    await eventually(async () => (await entries('crowd'))[0]?.frozenAt != null, { timeout: 10_000, what: 'the container to be frozen' });
    const answers = await Promise.all(Array.from({ length: 30 }, () => t.get('crowd.test', '/cgi-bin/whoami')));
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(200));
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
    const kinds = (await t.api('GET', '/v1/apps/crowd/events')).body.events.map((e: { kind: string }) => e.kind);
    expect(kinds.filter((k: string) => k === 'thaw')).toHaveLength(1);
  }, 30_000);

  it('still ends a frozen container at its lifespan, leaving nothing behind', async () => {
    expect((await t.api('POST', '/v1/apps', { name: 'brief', hostnames: ['brief.test'], image: HELLO, freezeAfter: 1, lifespan: 4, idleTimeout: 1, autoscale: false })).status).toBe(201);
    expect((await t.get('brief.test')).status).toBe(200);
    await eventually(async () => (await entries('brief'))[0]?.frozenAt != null, { timeout: 10_000, what: 'the container to be frozen' });
    await eventually(async () => (await entries('brief')).length === 0, { timeout: 15_000, what: 'the frozen container to end at its lifespan' });
    await eventually(async () => (await containersOfHost(t.hostId)).every((c) => c.Labels[labelKeys.app] !== 'brief'), { timeout: 10_000, what: 'its container to be removed' });
  }, 30_000);

  it('never freezes an app with freezeAfter 0', async () => {
    expect((await t.api('POST', '/v1/apps', { name: 'awake', hostnames: ['awake.test'], image: HELLO, freezeAfter: 0 })).status).toBe(201);
    expect((await t.get('awake.test')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2_500));
    const [entry] = await entries('awake');
    expect(entry?.frozenAt).toBeNull();
    expect(await paused(entry!.runtimeId)).toBe(false);
  }, 30_000);
});
