// The operator's host commands over the CoreAPI (`host ls | rm | drain | undrain`): use and abuse,
// on a whole stack (embedded CMDB, fake runtime) whose own dispatcher is one live host; the other
// hosts are records written as their heartbeats would be.

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { newContainerEntry, newContainerId } from '../../src/cmdb/placement.js';
import type { ContainerEntry } from '../../src/cmdb/types.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack | undefined;
let runtime: FakeRuntime | undefined;

async function stack(): Promise<TestStack> {
  runtime = new FakeRuntime();
  t = await startTestStack({ store: 'memory', runtime });
  return t;
}

afterEach(async () => {
  await t?.cleanup();
  await runtime?.close();
  t = undefined;
});

/** A host record as its dispatcher's heartbeat `agoMs` ago would have left it. */
async function host(s: TestStack, id: string, agoMs: number): Promise<void> {
  const now = Date.now();
  await s.stack.store.heartbeatHost({ id, dispatcherUrl: 'http://127.0.0.1:1', capacity: 10, startedAt: now - agoMs, heartbeatAt: now - agoMs });
}

async function unauthenticated(s: TestStack, method: 'POST' | 'DELETE', path: string) {
  const res = await request(`${s.apiUrl}${path}`, { method });
  return { status: res.statusCode, body: JSON.parse(await res.body.text()) as { code: string } };
}

describe('host ls', () => {
  it('lists each host with live, schedulable, its drain mark and its container entries', async () => {
    const s = await stack();
    await host(s, 'silent', 60_000);
    const list = await s.api('GET', '/v1/hosts');
    expect(list.status).toBe(200);
    expect(list.body.hosts).toEqual(expect.arrayContaining([
      expect.objectContaining({ id: s.hostId, live: true, schedulable: true, drainedAt: null, containers: 0 }),
      expect.objectContaining({ id: 'silent', live: false, schedulable: false, drainedAt: null, containers: 0 }),
    ]));
    expect((await s.api('GET', `/v1/hosts/${s.hostId}`)).body).toMatchObject({ id: s.hostId, live: true });
  });
});

describe('abuse: unknown hosts, no token, bad force', () => {
  it.each([
    ['GET', '/v1/hosts/nope'],
    ['DELETE', '/v1/hosts/nope'],
    ['POST', '/v1/hosts/nope/drain'],
    ['POST', '/v1/hosts/nope/undrain'],
  ] as const)('%s %s is 404 FC_ERR_HOST_NOT_FOUND', async (method, path) => {
    const s = await stack();
    const res = await s.api(method, path);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('FC_ERR_HOST_NOT_FOUND');
  });

  it('refuses every write without the token, and changes nothing', async () => {
    const s = await stack();
    await host(s, 'dead', 60_000);
    for (const [method, path] of [['DELETE', '/v1/hosts/dead'], ['POST', `/v1/hosts/${s.hostId}/drain`], ['POST', `/v1/hosts/${s.hostId}/undrain`]] as const) {
      const res = await unauthenticated(s, method, path);
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.body.code).toBe('FC_ERR_UNAUTHORIZED');
    }
    const ids = (await s.api('GET', '/v1/hosts')).body.hosts.map((h: { id: string; drainedAt: number | null }) => `${h.id}:${h.drainedAt}`);
    expect(ids.sort()).toEqual(['dead:null', `${s.hostId}:null`].sort());
  });

  it('answers 400 naming the field for a force that is not a boolean', async () => {
    const s = await stack();
    const res = await s.api('DELETE', '/v1/hosts/x?force=maybe');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: 'force', value: 'maybe' });
  });
});

describe('host rm', () => {
  it('removes a host that went silent, with its container entries', async () => {
    const s = await stack();
    expect((await s.api('POST', '/v1/apps', { name: 'a', hostnames: ['a.test'], image: 'fastcontainer/hello', maxContainers: 3 })).status).toBe(201);
    await host(s, 'dead', 0);
    // Placed on the dead host while it was live (as its dispatcher had run it).
    const placed = await s.api('POST', '/v1/apps/a/containers', { host: 'dead' });
    expect(placed.status).toBe(201);
    const other = await s.api('POST', '/v1/apps/a/containers', { host: s.hostId });
    expect(other.status).toBe(201);
    await host(s, 'dead', 60_000);
    const res = await s.api('DELETE', '/v1/hosts/dead');
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ host: { id: 'dead' }, removedContainers: 1 });
    const left = (await s.api('GET', '/v1/apps/a/containers')).body.containers as ContainerEntry[];
    expect(left.map((e) => e.id)).toEqual([other.body.id]);
    expect((await s.api('GET', '/v1/hosts/dead')).status).toBe(404);
  });

  it('refuses a live host (409 FC_ERR_HOST_LIVE) and keeps it; with force it goes until its next heartbeat', async () => {
    const s = await stack();
    const refused = await s.api('DELETE', `/v1/hosts/${s.hostId}`);
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('FC_ERR_HOST_LIVE');
    expect((await s.api('GET', `/v1/hosts/${s.hostId}`)).status).toBe(200);
    expect((await s.api('DELETE', `/v1/hosts/${s.hostId}?force=true`)).status).toBe(200);
    // Its dispatcher lives: its heartbeat writes the record again.
    await eventually(async () => (await s.api('GET', `/v1/hosts/${s.hostId}`)).status === 200, { what: 'the host back at its heartbeat' });
  });
});

describe('app scale with a dead host', () => {
  it('does not count the entries on a host that is not live: it registers their replacements on a live host', async () => {
    const s = await stack();
    expect((await s.api('POST', '/v1/apps', { name: 'a', hostnames: ['a.test'], image: 'fastcontainer/hello', maxContainers: 2 })).status).toBe(201);
    await host(s, 'dead', 0);
    expect((await s.api('POST', '/v1/apps/a/containers', { host: 'dead' })).status).toBe(201);
    expect((await s.api('POST', '/v1/apps/a/containers', { host: 'dead' })).status).toBe(201);
    await host(s, 'dead', 60_000);
    const scaled = await s.api('POST', '/v1/apps/a/scale', { containers: 2 });
    expect(scaled.status, JSON.stringify(scaled.body)).toBe(200);
    const hosts = (scaled.body.containers as ContainerEntry[]).map((e) => e.host).sort();
    expect(hosts).toEqual(['dead', 'dead', s.hostId, s.hostId].sort());
  });
});

describe('host drain', () => {
  it('refuses to drain the last host that takes containers (409 FC_ERR_LAST_HOST); forced, new containers have nowhere to go until undrained', async () => {
    const s = await stack();
    expect((await s.api('POST', '/v1/apps', { name: 'a', hostnames: ['a.test'], image: 'fastcontainer/hello' })).status).toBe(201);
    await host(s, 'dead', 60_000);
    const refused = await s.api('POST', `/v1/hosts/${s.hostId}/drain`);
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('FC_ERR_LAST_HOST');
    expect((await s.api('GET', `/v1/hosts/${s.hostId}`)).body.drainedAt).toBeNull();

    const forced = await s.api('POST', `/v1/hosts/${s.hostId}/drain?force=true`);
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ id: s.hostId, live: true, schedulable: false });
    expect(forced.body.drainedAt).toEqual(expect.any(Number));
    // Draining again keeps the drain's start.
    expect((await s.api('POST', `/v1/hosts/${s.hostId}/drain?force=true`)).body.drainedAt).toBe(forced.body.drainedAt);
    // Heartbeats keep the mark.
    await eventually(async () => (await s.api('GET', `/v1/hosts/${s.hostId}`)).body.heartbeatAt > forced.body.heartbeatAt, { what: 'a heartbeat' });
    expect((await s.api('GET', `/v1/hosts/${s.hostId}`)).body.drainedAt).toBe(forced.body.drainedAt);
    const nowhere = await s.get('a.test');
    expect(nowhere.status).toBe(503);
    expect(JSON.parse(nowhere.body).code).toBe('FC_ERR_NO_COMPUTE_HOST');

    const undrained = await s.api('POST', `/v1/hosts/${s.hostId}/undrain`);
    expect(undrained.body).toMatchObject({ drainedAt: null, schedulable: true });
    expect((await s.get('a.test')).status).toBe(200);
  });

  it('on the last host, keeps serving the containers it has (no replacement can be placed) and drops entries not started', async () => {
    const s = await stack();
    expect((await s.api('POST', '/v1/apps', { name: 'a', hostnames: ['a.test'], image: 'fastcontainer/hello', minContainers: 1 })).status).toBe(201);
    await eventually(async () => (await s.get('a.test')).status === 200, { what: 'the app serving' });
    const before = (await s.api('GET', '/v1/apps/a/containers')).body.containers as ContainerEntry[];
    expect((await s.api('POST', `/v1/hosts/${s.hostId}/drain?force=true`)).status).toBe(200);
    // Asked by hand for a container there: refused, naming the field.
    const asked = await s.api('POST', '/v1/apps/a/containers', { host: s.hostId });
    expect(asked.status).toBe(400);
    expect(asked.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: 'host' });
    // A registered entry placed on it (as by a proxy that had not heard of the drain yet) goes.
    const app = await s.stack.store.getApp('a');
    const { entry: late } = await s.stack.store.registerContainer(newContainerEntry(app!, s.hostId, Date.now(), newContainerId('a')), { surge: 1 });
    await eventually(async () => (await s.api('GET', `/v1/containers/${late.id}`)).status === 404, { what: 'the unstarted entry gone' });
    for (let i = 0; i < 20; i++) expect((await s.get('a.test')).status).toBe(200);
    const after = (await s.api('GET', '/v1/apps/a/containers')).body.containers as ContainerEntry[];
    expect(after.map((e) => `${e.id}:${e.state}`)).toEqual(before.filter((e) => e.state === 'ready').map((e) => `${e.id}:ready`));
  });
});
