// The request path end to end on the real Redis and the real Docker engine: proxy, dispatcher,
// CoreAPI and containers of the fastcontainer/hello image.

import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { containersOfHost, docker, imageExists } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const HELLO = 'fastcontainer/hello';
const PHP = 'fastcontainer/php';

let t: TestStack;

beforeAll(async () => {
  for (const image of [HELLO, PHP]) {
    if (!(await imageExists(image))) throw new Error(`image ${image} is missing; run \`bash scripts/setup.sh\` first`);
  }
  t = await startTestStack();
});

afterAll(async () => {
  await t?.cleanup();
});

async function createApp(spec: Record<string, unknown>): Promise<void> {
  const res = await t.api('POST', '/v1/apps', { image: HELLO, ...spec });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

async function runningContainersOf(app: string): Promise<string[]> {
  const list = await containersOfHost(t.hostId, { all: false });
  return list.filter((c) => c.Labels[labelKeys.app] === app).map((c) => c.Id);
}

describe('the request path', () => {
  it('answers the first request to a registered app with the container\'s body', async () => {
    await createApp({ name: 'first', hostnames: ['first.test'] });
    const res = await t.get('first.test');
    expect(res.status).toBe(200);
    expect(res.body).toContain('Hello from FastContainer');
    const whoami = await t.get('first.test', '/cgi-bin/whoami');
    expect(whoami.status).toBe(200);
    const ids = await runningContainersOf('first');
    expect(ids).toHaveLength(1);
    // The container's hostname is its short id: the answer came from that container.
    expect(ids[0]?.startsWith(whoami.body.trim())).toBe(true);
    const info = await docker.getContainer(ids[0] as string).inspect();
    expect(info.Config.Labels).toMatchObject({ [labelKeys.app]: 'first', [labelKeys.host]: t.hostId, [labelKeys.managed]: 'true' });
    expect(info.HostConfig).toMatchObject({ Privileged: false, CapDrop: ['ALL'], CpuQuota: 50_000, CpuPeriod: 100_000, PidsLimit: 256 });
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    const ps = await t.api('GET', '/v1/apps/first/containers');
    expect(ps.body.containers).toHaveLength(1);
    expect(ps.body.containers[0]).toMatchObject({ state: 'ready', host: t.hostId, runtimeId: ids[0] });
  });

  it('starts exactly one container for 50 concurrent first requests, and all of them succeed', async () => {
    await createApp({ name: 'burst', hostnames: ['burst.test'] });
    const answers = await Promise.all(Array.from({ length: 50 }, () => t.get('burst.test', '/cgi-bin/whoami')));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(new Set(answers.map((a) => a.body.trim())).size).toBe(1);
    expect(await runningContainersOf('burst')).toHaveLength(1);
    const all = await containersOfHost(t.hostId);
    expect(all.filter((c) => c.Labels[labelKeys.app] === 'burst')).toHaveLength(1);
    const entries = await t.api('GET', '/v1/apps/burst/containers');
    expect(entries.body.containers).toHaveLength(1);
  });

  it('answers 404 with a clear body for a host no app serves', async () => {
    const res = await t.get('nobody-serves-this.test');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('application/problem+json');
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ code: 'FC_ERR_UNKNOWN_HOST', status: 404, requestId: res.headers['x-request-id'] });
  });

  it('fails clearly and in bounded time for a missing image, while other apps keep serving', async () => {
    await createApp({ name: 'noimage', hostnames: ['noimage.test'], image: 'fastcontainer/no-such-image:1' });
    await createApp({ name: 'healthy', hostnames: ['healthy.test'] });
    await t.get('healthy.test');
    const began = Date.now();
    const [broken, ...healthy] = await Promise.all([
      t.get('noimage.test'),
      ...Array.from({ length: 10 }, () => t.get('healthy.test')),
    ]);
    const took = Date.now() - began;
    expect(broken?.status).toBe(503);
    expect(broken?.headers['retry-after']).toBeDefined();
    const problem = JSON.parse(broken?.body ?? '{}');
    expect(problem.code).toBe('FC_ERR_IMAGE_NOT_FOUND');
    // Which image, and where: for the operator (ps, the log), not the public.
    expect(broken?.body).not.toMatch(/no-such-image|noimage|127\.0\.0\.1|172\./);
    expect(took).toBeLessThan(10_000);
    expect(healthy.map((h) => h.status)).toEqual(Array(10).fill(200));
    // Within the back-off the same error comes back at once, and ps shows it.
    const again = await t.get('noimage.test');
    expect(JSON.parse(again.body).code).toBe('FC_ERR_IMAGE_NOT_FOUND');
    const entries = await t.api('GET', '/v1/apps/noimage/containers');
    expect(entries.body.containers[0]).toMatchObject({ state: 'registered', lastErrorCode: 'FC_ERR_IMAGE_NOT_FOUND' });
    expect(entries.body.containers[0].lastError).toContain('fastcontainer/no-such-image:1');
    expect(broken?.body).not.toContain(entries.body.containers[0].id);
    expect(broken?.body).not.toContain(t.hostId);
    expect(await runningContainersOf('noimage')).toEqual([]);
  });

  it('notices a container that dies (Docker events) and starts a new one on the next request', async () => {
    await createApp({ name: 'mayfly', hostnames: ['mayfly.test'] });
    const first = (await t.get('mayfly.test', '/cgi-bin/whoami')).body.trim();
    const [id] = await runningContainersOf('mayfly');
    await docker.getContainer(id as string).kill({ signal: 'SIGKILL' });
    await eventually(async () => (await t.api('GET', '/v1/apps/mayfly/containers')).body.containers.length === 0, {
      timeout: 15_000, what: 'the die event to clear the entry',
    });
    expect(await runningContainersOf('mayfly')).toEqual([]);
    const second = await t.get('mayfly.test', '/cgi-bin/whoami');
    expect(second.status).toBe(200);
    expect(second.body.trim()).not.toBe(first);
    expect(await runningContainersOf('mayfly')).toHaveLength(1);
  });

  it('serves a tenant site from a host directory mounted into the PHP image', async () => {
    const site = mkdtempSync(path.join(os.tmpdir(), 'fctest-site-'));
    try {
      writeFileSync(path.join(site, 'index.php'), '<?php echo "site says " . (6 * 7) . " via " . $_SERVER["HTTP_X_FORWARDED_HOST"];');
      chmodSync(site, 0o755);
      await createApp({ name: 'phpsite', hostnames: ['php.test'], image: PHP, volumes: [`${site}:/var/www/html:ro`] });
      const res = await t.get('php.test');
      expect(res.status).toBe(200);
      expect(res.body).toBe('site says 42 via php.test');
    } finally {
      rmSync(site, { recursive: true, force: true });
    }
  });
});

describe('lifespan', () => {
  it('removes an idle container at the end of its lifespan, and starts a new one on the next request', async () => {
    // Idle (no request for idleTimeout) when its end nears: no replacement. Autoscaling off, so
    // it is the lifespan that ends it, not a scale-in.
    await createApp({ name: 'mortal', hostnames: ['mortal.test'], lifespan: 4, idleTimeout: 1, autoscale: false });
    // The replacement lead is at most half the lifespan (2 s), later than idleTimeout after the request.
    const firstAnswer = await t.get('mortal.test', '/cgi-bin/whoami');
    expect(firstAnswer.status, firstAnswer.body).toBe(200);
    const first = firstAnswer.body.trim();
    const [firstId] = await runningContainersOf('mortal');
    expect(firstId).toBeDefined();
    await eventually(async () => (await containersOfHost(t.hostId)).every((c) => c.Id !== firstId), { timeout: 15_000, what: 'the first container to be removed' });
    // Its entry goes once the engine has removed it.
    await eventually(async () => ((await t.api('GET', '/v1/apps/mortal/containers')).body.containers.length === 0 ? true : undefined), { timeout: 5_000, what: 'its entry to go' });
    const second = await t.get('mortal.test', '/cgi-bin/whoami');
    expect(second.status).toBe(200);
    expect(second.body.trim()).not.toBe(first);
  });

  it('replaces a container with traffic before its lifespan ends (make before break), then removes it', async () => {
    await createApp({ name: 'renewed', hostnames: ['renewed.test'], lifespan: 4, autoscale: false });
    const firstAnswer = await t.get('renewed.test', '/cgi-bin/whoami');
    expect(firstAnswer.status).toBe(200);
    const [firstEntry] = (await t.api('GET', '/v1/apps/renewed/containers')).body.containers;
    // A light load, so each container has traffic; watched until the first one is gone.
    let fewestReady = Number.POSITIVE_INFINITY;
    const failures: number[] = [];
    const deadline = Date.now() + 20_000;
    for (;;) {
      const res = await t.get('renewed.test', '/cgi-bin/whoami');
      if (res.status !== 200) failures.push(res.status);
      const list = (await t.api('GET', '/v1/apps/renewed/containers')).body.containers as { id: string; state: string }[];
      fewestReady = Math.min(fewestReady, list.filter((c) => c.state === 'ready').length);
      if (!list.some((c) => c.id === firstEntry.id) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(failures).toEqual([]);
    // The app was never without a ready container: the replacement was ready before the drain.
    expect(fewestReady).toBeGreaterThanOrEqual(1);
    const events = (await t.api('GET', '/v1/apps/renewed/events?limit=200')).body.events.reverse() as { kind: string; container: string; reason: string }[];
    const ofFirst = events.filter((e) => e.container === firstEntry.id).map((e) => e.kind);
    expect(ofFirst).toEqual(['ready', 'replace', 'drain']);
    const replacement = /replacement (\S+) on host/.exec(events.find((e) => e.kind === 'replace')?.reason ?? '')?.[1];
    const order = events.map((e) => `${e.kind}:${e.container}`);
    expect(order.indexOf(`ready:${replacement}`)).toBeGreaterThan(-1);
    expect(order.indexOf(`ready:${replacement}`)).toBeLessThan(order.indexOf(`drain:${firstEntry.id}`));
  });

  it('loses no request of 20 steady clients across the lifespan boundary', async () => {
    await createApp({ name: 'steady', hostnames: ['steady.test'], lifespan: 2 });
    await t.get('steady.test');
    const until = Date.now() + 5_000;
    const statuses = new Map<number, number>();
    const hostnames = new Set<string>();
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (Date.now() < until) {
          const res = await t.get('steady.test', '/cgi-bin/whoami');
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 200) hostnames.add(res.body.trim());
          else failures.push(`${res.status} ${res.body.slice(0, 200)}`);
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(statuses.get(200)).toBeGreaterThan(100);
    // The boundary was crossed: more than one container answered.
    expect(hostnames.size).toBeGreaterThanOrEqual(2);
  });
});
