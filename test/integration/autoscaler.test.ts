// The autoscaler on the real Docker engine and Redis: a CPU-hungry app gets its quota raised in
// place, an app with more concurrency than its target allows gets a second container that takes
// traffic, both go back to their minimum when the load stops, and an idle app scales in, to zero
// where its minimum is zero. Loads are small (a few clients, a few seconds) and bounded; how fast
// the autoscaler reacts is measured by bench/, not asserted here.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { CgroupCpu } from '../../src/dispatcher/signals/cgroup.js';
import { containersOfHost, imageExists } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const PHP = 'fastcontainer/php';
let t: TestStack;
let site: string;

beforeAll(async () => {
  if (!(await imageExists(PHP))) throw new Error(`image ${PHP} is missing; run \`bash scripts/setup.sh\` first`);
  site = mkdtempSync(path.join(os.tmpdir(), 'fctest-scale-'));
  // burn.php: about 20 ms of CPU per request. sleep.php: 100 ms of waiting, no CPU. Both say
  // which container answered.
  writeFileSync(path.join(site, 'burn.php'), '<?php $x = 0; $end = microtime(true) + 0.02; while (microtime(true) < $end) { $x++; } echo gethostname();');
  writeFileSync(path.join(site, 'sleep.php'), '<?php usleep(100000); echo gethostname();');
  writeFileSync(path.join(site, 'index.php'), '<?php echo gethostname();');
  chmodSync(site, 0o755);
  t = await startTestStack();
});

afterAll(async () => {
  await t?.cleanup();
  rmSync(site, { recursive: true, force: true });
});

async function createApp(spec: Record<string, unknown>): Promise<void> {
  const res = await t.api('POST', '/v1/apps', { image: PHP, volumes: [`${site}:/var/www/html:ro`], ...spec });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

/** `clients` loops sending GETs until `stop()` says so (or 30 s pass); returns what they saw. */
function load(host: string, p: string, clients: number, stop: () => boolean) {
  const statuses = new Map<number, number>();
  const answeredBy = new Set<string>();
  const deadline = Date.now() + 30_000;
  const done = Promise.all(
    Array.from({ length: clients }, async () => {
      while (!stop() && Date.now() < deadline) {
        const res = await t.get(host, p);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 200) answeredBy.add(res.body.trim());
      }
    }),
  );
  return { statuses, answeredBy, done };
}

async function entries(app: string): Promise<{ id: string; state: string; cpus: number; runtimeId: string }[]> {
  return (await t.api('GET', `/v1/apps/${app}/containers`)).body.containers;
}

async function eventKinds(app: string): Promise<string[]> {
  return (await t.api('GET', `/v1/apps/${app}/events?limit=200`)).body.events.map((e: { kind: string }) => e.kind);
}

const cgroup = new CgroupCpu();

/** The container's CFS quota in µs, from its cgroup (v1 or v2, cgroupfs or systemd driver). */
async function quotaOf(runtimeId: string): Promise<number | null> {
  return (await cgroup.readQuota(runtimeId))?.quotaUs ?? null;
}

describe('metabolism', () => {
  it('keeps minContainers ready through 5 s lifespans, replacing each container before it ends, with nothing piling up', async () => {
    await createApp({ name: 'phoenix', hostnames: ['phoenix.test'], minContainers: 2, maxContainers: 2, lifespan: 5, autoscale: false });
    await eventually(async () => (await entries('phoenix')).filter((e) => e.state === 'ready').length === 2, { timeout: 15_000, what: 'two ready containers' });
    let stop = false;
    const run = load('phoenix.test', '/', 2, () => stop);
    const seen = new Set<string>();
    let fewestReady = Number.POSITIVE_INFINITY;
    let mostInEngine = 0;
    let mostLive = 0;
    const until = Date.now() + 14_000;
    while (Date.now() < until) {
      const list = await entries('phoenix');
      for (const e of list) seen.add(e.id);
      fewestReady = Math.min(fewestReady, list.filter((e) => e.state === 'ready').length);
      mostLive = Math.max(mostLive, list.filter((e) => e.state !== 'draining').length);
      const inEngine = (await containersOfHost(t.hostId)).filter((c) => c.Labels[labelKeys.app] === 'phoenix');
      mostInEngine = Math.max(mostInEngine, inEngine.length);
      await new Promise((r) => setTimeout(r, 100));
    }
    stop = true;
    await run.done;
    // Two generations at least went by, and at no moment were fewer than two containers ready.
    expect(seen.size).toBeGreaterThanOrEqual(6);
    expect(fewestReady).toBeGreaterThanOrEqual(2);
    // Each container has at most one replacement beside it: never more than 2 × minContainers
    // live entries. The engine also holds the draining ones (1 s of grace, then stop and remove);
    // with a lifespan this short that is at most one more generation per place.
    expect(mostLive).toBeLessThanOrEqual(4);
    expect(mostInEngine).toBeLessThanOrEqual(8);
    expect([...run.statuses.keys()]).toEqual([200]);
    // Nothing left behind: once the app goes, so does every container it ever had.
    expect((await t.api('DELETE', '/v1/apps/phoenix')).status).toBe(200);
    await eventually(async () => (await containersOfHost(t.hostId)).every((c) => c.Labels[labelKeys.app] !== 'phoenix'), { timeout: 20_000, what: 'every phoenix container to be removed' });
  }, 40_000);
});

describe('autoscaler', () => {
  it('raises a CPU-starved container\'s quota in place, then lowers it again when the load is gone', async () => {
    await createApp({ name: 'hungry', hostnames: ['hungry.test'], cpus: 0.1, maxCpus: 0.2, maxContainers: 1, latencyTargetMs: 60_000 });
    expect((await t.get('hungry.test', '/burn.php')).status).toBe(200);
    const [before] = await entries('hungry');
    expect(before).toMatchObject({ state: 'ready', cpus: 0.1 });
    expect(await quotaOf(before!.runtimeId)).toBe(10_000);

    let stop = false;
    const run = load('hungry.test', '/burn.php', 4, () => stop);
    await eventually(async () => (await entries('hungry'))[0]?.cpus === 0.2, { timeout: 15_000, what: 'the quota to be raised to 0.2' });
    stop = true;
    await run.done;
    const [after] = await entries('hungry');
    // The same container, not a new one: the quota changed live.
    expect(after!.id).toBe(before!.id);
    expect(after!.runtimeId).toBe(before!.runtimeId);
    expect(await quotaOf(after!.runtimeId)).toBe(20_000);
    expect([...run.statuses.keys()]).toEqual([200]);
    expect(await eventKinds('hungry')).toContain('scale-up');

    // No load: after the scale-down delay the quota comes back to cpus.
    await eventually(async () => (await entries('hungry'))[0]?.cpus === 0.1, { timeout: 30_000, interval: 500, what: 'the quota to come back to 0.1' });
    expect(await quotaOf(before!.runtimeId)).toBe(10_000);
    expect(await eventKinds('hungry')).toContain('scale-down');
  }, 60_000);

  it('adds a container that takes traffic when latency is over the target without CPU starvation, and scales back in when idle', async () => {
    await createApp({
      name: 'crowded', hostnames: ['crowded.test'], cpus: 0.5, maxCpus: 0.5, minContainers: 1, maxContainers: 2, latencyTargetMs: 50, idleTimeout: 2,
    });
    await eventually(async () => (await entries('crowded')).some((e) => e.state === 'ready'), { timeout: 15_000, what: 'minContainers to start' });
    let stop = false;
    const run = load('crowded.test', '/sleep.php', 6, () => stop);
    // However slow it gets, never beyond maxContainers (2).
    let most = 0;
    const watch = (async () => {
      while (!stop) {
        most = Math.max(most, (await entries('crowded')).length);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await eventually(async () => (await entries('crowded')).filter((e) => e.state === 'ready').length === 2, { timeout: 15_000, what: 'a second ready container' });
    // Both take traffic: the proxy spreads requests over the ready containers.
    await eventually(async () => run.answeredBy.size === 2, { timeout: 10_000, what: 'answers from both containers' });
    await new Promise((r) => setTimeout(r, 2_000));
    stop = true;
    await Promise.all([run.done, watch]);
    expect([...run.statuses.keys()]).toEqual([200]);
    expect(most).toBe(2);
    const kinds = await eventKinds('crowded');
    expect(kinds).toContain('scale-out');
    expect(kinds).not.toContain('scale-up');

    // Idle for idleTimeout (2 s): back to minContainers (1), not below.
    await eventually(async () => (await entries('crowded')).length === 1, { timeout: 20_000, interval: 250, what: 'scale-in to minContainers' });
    expect(await eventKinds('crowded')).toContain('scale-in');
    await new Promise((r) => setTimeout(r, 3_000));
    expect((await entries('crowded')).map((e) => e.state)).toEqual(['ready']);
  }, 60_000);

  it('scales an idle app with minContainers 0 to zero before its lifespan ends', async () => {
    await createApp({ name: 'nap', hostnames: ['nap.test'], idleTimeout: 1, lifespan: 3600 });
    expect((await t.get('nap.test')).status).toBe(200);
    await eventually(async () => (await entries('nap')).length === 0, { timeout: 15_000, what: 'scale to zero' });
    const left = (await containersOfHost(t.hostId)).filter((c) => c.Labels[labelKeys.app] === 'nap');
    expect(left).toEqual([]);
    expect(await eventKinds('nap')).toContain('scale-in');
    // The next request starts it again.
    expect((await t.get('nap.test')).status).toBe(200);
  }, 30_000);

  it('applies a quota set by hand live, and holds it against scale-down for a while', async () => {
    await createApp({ name: 'tuned', hostnames: ['tuned.test'], cpus: 0.2, maxCpus: 0.6 });
    expect((await t.get('tuned.test')).status).toBe(200);
    const [before] = await entries('tuned');
    const res = await t.api('POST', '/v1/apps/tuned/scale', { cpus: 0.6 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await eventually(async () => (await quotaOf(before!.runtimeId)) === 60_000, { timeout: 5_000, what: 'the cgroup to get the quota' });
    // Idle, so the autoscaler would bring a quota of its own down; this one it leaves.
    await new Promise((r) => setTimeout(r, 4_000));
    const [after] = await entries('tuned');
    expect(after).toMatchObject({ id: before!.id, runtimeId: before!.runtimeId, cpus: 0.6 });
    expect(await quotaOf(before!.runtimeId)).toBe(60_000);
    // Beyond maxCpus is refused, naming the field.
    expect(await t.api('POST', '/v1/apps/tuned/scale', { cpus: 0.7 })).toMatchObject({ status: 400, body: { field: 'cpus' } });
  }, 30_000);

  it('does nothing for an app with autoscale off, however loaded', async () => {
    await createApp({ name: 'fixed', hostnames: ['fixed.test'], cpus: 0.1, maxCpus: 0.4, maxContainers: 3, latencyTargetMs: 10, autoscale: false });
    expect((await t.get('fixed.test', '/burn.php')).status).toBe(200);
    let stop = false;
    const run = load('fixed.test', '/burn.php', 4, () => stop);
    await new Promise((r) => setTimeout(r, 4_000));
    stop = true;
    await run.done;
    const list = await entries('fixed');
    expect(list.map((e) => [e.state, e.cpus])).toEqual([['ready', 0.1]]);
    expect((await eventKinds('fixed')).filter((k) => k.startsWith('scale'))).toEqual([]);
  }, 30_000);
});
