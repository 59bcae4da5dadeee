// The CoreAPI over real HTTP with the Redis CMDB: CRUD, auth, validation, container entries,
// events, stats and manual scaling.

import os from 'node:os';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppEvent, ContainerEntry, ContainerStats } from '../../src/cmdb/types.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, TEST_TOKEN, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack;
/** The read-only token the CoreAPI generated in the stack's state directory. */
const readToken = () => t.stack.coreapi?.readToken.token ?? '';

beforeAll(async () => {
  t = await startTestStack({ roles: ['coreapi'] });
});

afterAll(async () => {
  await t?.cleanup();
});

const valid = { name: 'blog', hostnames: ['blog.example.test'], image: 'fastcontainer/php' };

async function raw(method: string, path: string, body: string | undefined, headers: Record<string, string> = {}) {
  const res = await request(`${t.apiUrl}${path}`, { method: method as 'POST', headers, body: body ?? null });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
}

async function liveHost(id: string) {
  const now = Date.now();
  await t.stack.store.heartbeatHost({ id, dispatcherUrl: 'http://127.0.0.1:1', capacity: 10, startedAt: now, heartbeatAt: now });
}

describe('apps', () => {
  it('creates an app with defaults and reads it back', async () => {
    const res = await t.api('POST', '/v1/apps', { ...valid, memory: '128m', env: { WP_ENV: 'production' } });
    expect(res.status).toBe(201);
    expect(res.headers.location).toBe('/v1/apps/blog');
    expect(res.body).toMatchObject({
      name: 'blog', hostnames: ['blog.example.test'], image: 'fastcontainer/php', port: 8080, command: null,
      env: { WP_ENV: 'production' }, volumes: [], cpus: 0.5, memory: 128 * 1024 * 1024, lifespan: 600,
      minContainers: 0, maxContainers: 4, readinessPath: null,
    });
    expect((await t.api('GET', '/v1/apps/blog')).body).toEqual(res.body);
    expect((await t.api('GET', '/v1/apps')).body.apps.map((a: { name: string }) => a.name)).toEqual(['blog']);
  });

  it('changes an app with PATCH, keeping the other fields', async () => {
    const res = await t.api('PATCH', '/v1/apps/blog', { cpus: 0.3, hostnames: ['blog.example.test', 'www.blog.example.test'] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ cpus: 0.3, memory: 128 * 1024 * 1024, hostnames: ['blog.example.test', 'www.blog.example.test'] });
    const rename = await t.api('PATCH', '/v1/apps/blog', { name: 'other' });
    expect(rename.status).toBe(400);
    expect(rename.body.field).toBe('name');
  });

  it('refuses duplicates and taken hostnames with 409', async () => {
    expect((await t.api('POST', '/v1/apps', valid)).body.code).toBe('FC_ERR_APP_EXISTS');
    const taken = await t.api('POST', '/v1/apps', { ...valid, name: 'copycat' });
    expect(taken.status).toBe(409);
    expect(taken.body).toMatchObject({ code: 'FC_ERR_HOSTNAME_TAKEN', field: 'hostnames', value: 'blog.example.test', app: 'blog' });
  });

  it('answers 404 problem+json for an unknown app', async () => {
    const res = await t.api('GET', '/v1/apps/nope');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.body).toMatchObject({ code: 'FC_ERR_APP_NOT_FOUND', status: 404, app: 'nope', type: 'urn:fastcontainer:error:FC_ERR_APP_NOT_FOUND' });
  });
});

describe('invalid app specs get 400 naming the field, the value and what is allowed', () => {
  const cases: [string, Record<string, unknown>, string, unknown][] = [
    ['no hostnames', { name: 'a', image: 'x' }, 'hostnames', null],
    ['empty hostnames', { name: 'a', image: 'x', hostnames: [] }, 'hostnames', []],
    ['a hostname with a port', { name: 'a', image: 'x', hostnames: ['a.test:8080'] }, 'hostnames', ['a.test:8080']],
    ['a bad name', { ...valid, name: 'Bad_Name' }, 'name', 'Bad_Name'],
    ['negative cpus', { ...valid, name: 'a', hostnames: ['a.test'], cpus: -1 }, 'cpus', -1],
    ['unreadable memory', { ...valid, name: 'a', hostnames: ['a.test'], memory: 'lots' }, 'memory', 'lots'],
    ['too little memory', { ...valid, name: 'a', hostnames: ['a.test'], memory: '1m' }, 'memory', '1m'],
    ['a relative volume', { ...valid, name: 'a', hostnames: ['a.test'], volumes: ['site:/var/www/html'] }, 'volumes', ['site:/var/www/html']],
    ['a volume mode', { ...valid, name: 'a', hostnames: ['a.test'], volumes: ['/srv:/var/www/html:rx'] }, 'volumes', ['/srv:/var/www/html:rx']],
    ['a port out of range', { ...valid, name: 'a', hostnames: ['a.test'], port: 70000 }, 'port', 70000],
    ['a fractional lifespan', { ...valid, name: 'a', hostnames: ['a.test'], lifespan: 1.5 }, 'lifespan', 1.5],
    ['min above max', { ...valid, name: 'a', hostnames: ['a.test'], minContainers: 5, maxContainers: 2 }, 'minContainers', 5],
    ['a number in env', { ...valid, name: 'a', hostnames: ['a.test'], env: { PORT: 80 } }, 'env', { PORT: 80 }],
    ['a command string', { ...valid, name: 'a', hostnames: ['a.test'], command: 'httpd -f' }, 'command', 'httpd -f'],
    ['an unknown field', { ...valid, name: 'a', hostnames: ['a.test'], replicas: 3 }, 'replicas', 3],
    // Found: accepted (201), and every start then failed with the engine's message shown to the public.
    ['a NUL in an env value', { ...valid, name: 'a', hostnames: ['a.test'], env: { DB: 'x\u0000y' } }, 'env', { DB: 'x\u0000y' }],
    ['a NUL in a command argument', { ...valid, name: 'a', hostnames: ['a.test'], command: ['sh', '-c', 'a\u0000b'] }, 'command', ['sh', '-c', 'a\u0000b']],
    ['an env value past exec\'s limit', { ...valid, name: 'a', hostnames: ['a.test'], env: { BIG: 'x'.repeat(40_000) } }, 'env', { BIG: `${'x'.repeat(200)}…(40000 characters)` }],
    ['a non-ASCII readiness path', { ...valid, name: 'a', hostnames: ['a.test'], readinessPath: '/héalth' }, 'readinessPath', '/héalth'],
    ['a NUL in the readiness path', { ...valid, name: 'a', hostnames: ['a.test'], readinessPath: '/a\u0000' }, 'readinessPath', '/a\u0000'],
    ['a NUL in the image', { ...valid, name: 'a', hostnames: ['a.test'], image: 'img\u0000' }, 'image', 'img\u0000'],
    ['a huge port', { ...valid, name: 'a', hostnames: ['a.test'], port: 1e308 }, 'port', 1e308],
    ['localhost as a hostname', { ...valid, name: 'a', hostnames: ['localhost'] }, 'hostnames', ['localhost']],
    ['an IPv4 address as a hostname', { ...valid, name: 'a', hostnames: ['10.0.0.1'] }, 'hostnames', ['10.0.0.1']],
    ['a short IPv4 form as a hostname', { ...valid, name: 'a', hostnames: ['127.1'] }, 'hostnames', ['127.1']],
    ['a decimal IPv4 as a hostname', { ...valid, name: 'a', hostnames: ['2130706433'] }, 'hostnames', ['2130706433']],
    ['a hex IPv4 as a hostname', { ...valid, name: 'a', hostnames: ['0x7f.1'] }, 'hostnames', ['0x7f.1']],
    ['an IPv6 address as a hostname', { ...valid, name: 'a', hostnames: ['[::1]'] }, 'hostnames', ['[::1]']],
    ['root as the user', { ...valid, name: 'a', hostnames: ['a.test'], user: '0' }, 'user', '0'],
    ['a user name', { ...valid, name: 'a', hostnames: ['a.test'], user: 'root' }, 'user', 'root'],
    ['readOnlyRootfs as text', { ...valid, name: 'a', hostnames: ['a.test'], readOnlyRootfs: 'yes' }, 'readOnlyRootfs', 'yes'],
    // Found: all accepted. The stack's only volume root is the temporary directory.
    ['the host root as a volume', { ...valid, name: 'a', hostnames: ['a.test'], volumes: ['/:/host:rw'] }, 'volumes', ['/:/host:rw']],
    ['the Docker socket as a volume', { ...valid, name: 'a', hostnames: ['a.test'], volumes: ['/var/run/docker.sock:/var/run/docker.sock'] }, 'volumes', ['/var/run/docker.sock:/var/run/docker.sock']],
    ['/proc as a volume', { ...valid, name: 'a', hostnames: ['a.test'], volumes: ['/proc:/host/proc:ro'] }, 'volumes', ['/proc:/host/proc:ro']],
    ['/etc as a volume', { ...valid, name: 'a', hostnames: ['a.test'], volumes: ['/etc:/srv/etc:ro'] }, 'volumes', ['/etc:/srv/etc:ro']],
    ['a volume climbing out with ..', { ...valid, name: 'a', hostnames: ['a.test'], volumes: [`${os.tmpdir()}/../etc:/srv:ro`] }, 'volumes', [`${os.tmpdir()}/../etc:/srv:ro`]],
  ];
  it.each(cases)('%s', async (_what, body, field, value) => {
    const res = await t.api('POST', '/v1/apps', body);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field, value });
    expect(typeof res.body.allowed).toBe('string');
    expect(res.body.detail).toContain(field);
    expect((await t.api('GET', '/v1/apps/a')).status).toBe(404);
  });

  // Found: a 500 (the stack overflowed while the 400 was being written).
  it('answers 400 naming the field for JSON nested 100,000 deep', async () => {
    const deep = `{"name":"a","hostnames":["a.test"],"image":"x","env":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const res = await raw('POST', '/v1/apps', deep, auth);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: expect.stringMatching(/^env(\.0)*/) });
    const top = await raw('POST', '/v1/apps', '['.repeat(100_000) + ']'.repeat(100_000), auth);
    expect(top.status).toBe(400);
    expect(top.body.field).toMatch(/^\(body\)\.0\.0/);
    expect((await t.api('GET', '/v1/apps/a')).status).toBe(404);
  });

  it('reports every bad field at once', async () => {
    const res = await t.api('POST', '/v1/apps', { name: 'a', hostnames: ['a.test'], image: 'x', cpus: 0, port: 0 });
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['port', 'cpus']);
  });

  it('answers 413 for a body over 1 MiB, and 400 for odd bodies and paths', async () => {
    const auth = { authorization: 'Bearer test-token-0123456789abcdef', 'content-type': 'application/json' };
    const big = await raw('POST', '/v1/apps', JSON.stringify({ name: 'a', pad: 'x'.repeat(1_100_000) }), auth);
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('FC_ERR_BODY_TOO_LARGE');
    await t.api('POST', '/v1/apps', { name: 'odd', hostnames: ['odd.test'], image: 'x' });
    const nullBody = await raw('POST', '/v1/apps/odd/containers', 'null', auth);
    expect(nullBody.status).toBe(400);
    expect(nullBody.body.field).toBe('(body)');
    const badPath = await raw('GET', '/v1/apps/%E0%A4%A', undefined, auth);
    expect(badPath.status).toBe(400);
    expect(badPath.body.field).toBe('name');
    await t.api('DELETE', '/v1/apps/odd');
  });

  it('says when the body is not JSON', async () => {
    const res = await raw('POST', '/v1/apps', '{"name":', { authorization: 'Bearer test-token-0123456789abcdef', 'content-type': 'application/json' });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('FC_ERR_INVALID_JSON');
  });
});

describe('secrets: written, never read back', () => {
  const secretApp = { name: 'vault', hostnames: ['vault.test'], image: 'fastcontainer/hello', env: { MODE: 'prod' } };
  it('takes secrets, answers only their keys, and keeps the values for the dispatchers', async () => {
    const res = await t.api('POST', '/v1/apps', { ...secretApp, secrets: { DB_PASSWORD: 's3cret-one', API_KEY: 's3cret-two' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ env: { MODE: 'prod' }, secretKeys: ['API_KEY', 'DB_PASSWORD'] });
    expect(res.body.secrets).toBeUndefined();
    for (const p of ['/v1/apps/vault', '/v1/apps']) {
      const text = JSON.stringify((await t.api('GET', p)).body);
      expect(text).toContain('DB_PASSWORD');
      expect(text).not.toContain('s3cret');
    }
    expect((await t.stack.store.getApp('vault'))?.secrets).toEqual({ DB_PASSWORD: 's3cret-one', API_KEY: 's3cret-two' });
  });

  it('changes secrets key by key: a string sets one, null removes one, the others stay', async () => {
    const res = await t.api('PATCH', '/v1/apps/vault', { secrets: { API_KEY: null, TOKEN: 's3cret-three' } });
    expect(res.status).toBe(200);
    expect(res.body.secretKeys).toEqual(['DB_PASSWORD', 'TOKEN']);
    expect(JSON.stringify(res.body)).not.toContain('s3cret');
    expect((await t.stack.store.getApp('vault'))?.secrets).toEqual({ DB_PASSWORD: 's3cret-one', TOKEN: 's3cret-three' });
    expect((await t.api('PATCH', '/v1/apps/vault', { cpus: 0.25 })).body.secretKeys).toEqual(['DB_PASSWORD', 'TOKEN']);
  });

  it('refuses a bad secret without showing its value, and a key in both env and secrets', async () => {
    const nul = await t.api('PATCH', '/v1/apps/vault', { secrets: { DB_PASSWORD: 'hidden\u0000value' } });
    expect(nul.status).toBe(400);
    expect(nul.body).toMatchObject({ field: 'secrets', value: { DB_PASSWORD: '***', TOKEN: '***' } });
    expect(JSON.stringify(nul.body)).not.toContain('hidden');
    const both = await t.api('PATCH', '/v1/apps/vault', { secrets: { MODE: 'other-hidden' } });
    expect(both.status).toBe(400);
    expect(both.body.field).toBe('secrets');
    expect(JSON.stringify(both.body)).not.toContain('other-hidden');
    expect((await t.api('PATCH', '/v1/apps/vault', { secretKeys: ['X'] })).body.field).toBe('secretKeys');
    await t.api('DELETE', '/v1/apps/vault');
  });
});

describe('auth and routing', () => {
  it('needs the admin token for writes', async () => {
    const none = await raw('POST', '/v1/apps', JSON.stringify({ ...valid, name: 'x', hostnames: ['x.test'] }), { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    const wrong = await raw('DELETE', '/v1/apps/blog', undefined, { authorization: 'Bearer wrong-token-0123456789abcdef' });
    expect(wrong.status).toBe(401);
    const reader = await raw('DELETE', '/v1/apps/blog', undefined, { authorization: `Bearer ${readToken()}` });
    expect(reader.status).toBe(403);
    expect(reader.body.code).toBe('FC_ERR_FORBIDDEN');
    expect((await t.api('GET', '/v1/apps/blog')).status).toBe(200);
  });

  // Found: GET /v1/apps/:name answered anyone, with the env values tenants keep passwords in.
  it('needs a token for every read: the read token or the admin token', async () => {
    const reads = ['/v1/apps', '/v1/apps/blog', '/v1/apps/blog/containers', '/v1/apps/blog/events', '/v1/containers', '/v1/hosts'];
    for (const p of reads) {
      const none = await raw('GET', p, undefined);
      expect([p, none.status, none.body.code]).toEqual([p, 401, 'FC_ERR_UNAUTHORIZED']);
      expect(JSON.stringify(none.body)).not.toContain('production');
      expect((await raw('GET', p, undefined, { authorization: 'Bearer wrong-token-0123456789abcdef' })).status).toBe(401);
      expect((await raw('GET', p, undefined, { authorization: `Bearer ${readToken()}` })).status).toBe(200);
      expect((await raw('GET', p, undefined, { authorization: `Bearer ${TEST_TOKEN}` })).status).toBe(200);
    }
  });

  it('keeps /healthz open, saying nothing about apps', async () => {
    const health = await raw('GET', '/healthz', undefined);
    expect(health.status).toBe(200);
    expect(Object.keys(health.body).sort()).toEqual(['cmdb', 'role', 'status', 'store']);
  });

  it('answers 404 for unknown paths and 405 with Allow for wrong methods', async () => {
    expect((await raw('GET', '/v2/apps', undefined)).body.code).toBe('FC_ERR_NOT_FOUND');
    const res = await raw('PUT', '/v1/apps/blog', '{}', { authorization: 'Bearer test-token-0123456789abcdef' });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, PATCH, DELETE');
  });

  it('serves health and metrics', async () => {
    expect((await raw('GET', '/healthz', undefined)).body).toMatchObject({ status: 'ok', role: 'coreapi', store: 'redis' });
    const metrics = await request(`${t.apiUrl}/metrics`);
    const text = await metrics.body.text();
    expect(text).toContain('fc_coreapi_requests_total');
    expect(text).toContain('fc_process_cpu_user_seconds_total');
  });
});

describe('container entries and hosts', () => {
  it('has no host to place a container on until a dispatcher heartbeats', async () => {
    const res = await t.api('POST', '/v1/apps/blog/containers', {});
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('FC_ERR_NO_COMPUTE_HOST');
    expect(res.headers['retry-after']).toBeDefined();
  });

  it('adds entries on a live host up to maxContainers (the scale-out primitive)', async () => {
    await liveHost('h1');
    await t.api('PATCH', '/v1/apps/blog', { maxContainers: 2 });
    const one = await t.api('POST', '/v1/apps/blog/containers', {});
    expect(one.status).toBe(201);
    expect(one.body).toMatchObject({ app: 'blog', host: 'h1', state: 'registered', image: 'fastcontainer/php' });
    expect(one.headers.location).toBe(`/v1/containers/${one.body.id}`);
    expect((await t.api('POST', '/v1/apps/blog/containers', { host: 'h1' })).status).toBe(201);
    const third = await t.api('POST', '/v1/apps/blog/containers', {});
    expect(third.status).toBe(409);
    expect(third.body).toMatchObject({ code: 'FC_ERR_MAX_CONTAINERS', maxContainers: 2 });
    const bad = await t.api('POST', '/v1/apps/blog/containers', { host: 'nowhere' });
    expect(bad.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: 'host' });
    for (const host of [7, null, ['h1'], { id: 'h1' }]) {
      const odd = await t.api('POST', '/v1/apps/blog/containers', { host });
      expect([odd.status, odd.body]).toEqual([400, expect.objectContaining({ code: 'FC_ERR_INVALID_FIELD', field: 'host', value: host, allowed: 'a host id (a string), or absent' })]);
    }
    const list = await t.api('GET', '/v1/apps/blog/containers');
    expect(list.body.containers).toHaveLength(2);
    expect(typeof list.body.now).toBe('number');
  });

  it('removes a never-started entry at once and drains a running one', async () => {
    const [a, b] = (await t.api('GET', '/v1/apps/blog/containers')).body.containers as { id: string }[];
    await t.stack.store.transitionContainer(b!.id, ['registered'], 'ready', { address: '10.0.0.9:8080' });
    const gone = await t.api('DELETE', `/v1/containers/${a!.id}`);
    expect(gone.status).toBe(200);
    expect(gone.body.state).toBe('gone');
    const draining = await t.api('DELETE', `/v1/containers/${b!.id}`);
    expect(draining.status).toBe(202);
    expect(draining.body.state).toBe('draining');
    expect((await t.api('GET', `/v1/containers/${a!.id}`)).body.code).toBe('FC_ERR_CONTAINER_NOT_FOUND');
  });

  it('lists hosts with whether they are live', async () => {
    const old = Date.now() - 60_000;
    await t.stack.store.heartbeatHost({ id: 'h0', dispatcherUrl: 'http://127.0.0.1:2', capacity: 1, startedAt: old, heartbeatAt: old });
    const res = await t.api('GET', '/v1/hosts');
    expect(res.body.hosts.map((h: { id: string; live: boolean }) => `${h.id}:${h.live}`)).toEqual(['h0:false', 'h1:true']);
  });

  it('deletes an app: its entries drain', async () => {
    await t.api('PATCH', '/v1/apps/blog', { maxContainers: 4 });
    const entry = (await t.api('POST', '/v1/apps/blog/containers', {})).body;
    await t.stack.store.transitionContainer(entry.id, ['registered'], 'ready');
    expect((await t.api('DELETE', '/v1/apps/blog')).status).toBe(200);
    expect((await t.api('GET', `/v1/containers/${entry.id}`)).body.state).toBe('draining');
    expect((await t.api('GET', '/v1/apps/blog')).status).toBe(404);
  });
});

type Listed = ContainerEntry & { stats: ContainerStats | null };

const auth = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };
const liveOf = (list: Listed[]) => list.filter((c) => ['registered', 'starting', 'ready'].includes(c.state));
const events = async (app: string, query = ''): Promise<AppEvent[]> => (await t.api('GET', `/v1/apps/${app}/events${query}`)).body.events;
const entries = async (app: string): Promise<Listed[]> => (await t.api('GET', `/v1/apps/${app}/containers`)).body.containers;

function statsOf(c: ContainerEntry, overrides: Partial<ContainerStats> = {}): ContainerStats {
  return {
    id: c.id, app: c.app, host: c.host, cpus: 0.8, inflight: 3, held: 1, rps: 20, meanMs: 120, p95Ms: 480, throttledShare: 0.25,
    cpuUsage: 0.7, lastRequestAt: Date.now(), at: Date.now(), ...overrides,
  };
}

describe('app events', () => {
  beforeAll(async () => {
    expect((await t.api('POST', '/v1/apps', { name: 'evt', hostnames: ['evt.test'], image: 'fastcontainer/hello' })).status).toBe(201);
  });

  it('lists none for a new app, and 404 for an unknown one', async () => {
    expect((await t.api('GET', '/v1/apps/evt/events')).body).toEqual({ events: [] });
    const unknown = await t.api('GET', '/v1/apps/nope/events');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 'FC_ERR_APP_NOT_FOUND', app: 'nope' });
  });

  it('lists the newest first, 50 by default, up to the limit asked', async () => {
    for (let i = 1; i <= 60; i++) {
      await t.stack.store.appendEvent({ at: i, app: 'evt', kind: i % 2 === 0 ? 'scale-out' : 'scale-up', container: `evt-${i}`, host: 'h1', reason: `event ${i}`, from: i - 1, to: i });
    }
    const byDefault = await events('evt');
    expect(byDefault).toHaveLength(50);
    expect(byDefault[0]).toEqual({ at: 60, app: 'evt', kind: 'scale-out', container: 'evt-60', host: 'h1', reason: 'event 60', from: 59, to: 60 });
    expect(byDefault.at(-1)?.at).toBe(11);
    expect((await events('evt', '?limit=3')).map((e) => e.at)).toEqual([60, 59, 58]);
    expect(await events('evt', '?limit=200')).toHaveLength(60);
    expect(await events('evt', '?limit=1')).toHaveLength(1);
  });

  it.each(['0', '201', '1000', 'abc', '-1', '1.5', '', '1e2', ' 5', '0x10'])('refuses limit=%j with 400 naming limit', async (limit) => {
    const res = await raw('GET', `/v1/apps/evt/events?limit=${encodeURIComponent(limit)}`, undefined, auth);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: 'limit', value: limit });
    expect(res.body.allowed).toContain('1 to 200');
  });

  it('answers 404 for names that try to walk out of the app\'s keys', async () => {
    for (const name of ['..%2Fevt', '%2E%2E', 'evt%00', '*', 'evt%2Fevents']) {
      const res = await raw('GET', `/v1/apps/${name}/events`, undefined, auth);
      expect(res.status, name).toBe(404);
    }
  });

  it('forgets the events when the app is deleted', async () => {
    expect((await t.api('DELETE', '/v1/apps/evt')).status).toBe(200);
    expect((await t.api('POST', '/v1/apps', { name: 'evt', hostnames: ['evt.test'], image: 'fastcontainer/hello' })).status).toBe(201);
    expect(await events('evt')).toEqual([]);
  });
});

describe('manual scaling', () => {
  beforeAll(async () => {
    await liveHost('h1');
    await liveHost('h2');
    const res = await t.api('POST', '/v1/apps', { name: 'shop', hostnames: ['shop.test'], image: 'fastcontainer/hello', cpus: 0.5, maxCpus: 1, maxContainers: 4 });
    expect(res.status).toBe(201);
  });

  it('scales out: registers the missing entries, spread over the live hosts, and records why', async () => {
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 3 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.app).toBe('shop');
    const list = res.body.containers as Listed[];
    expect(list.map((c) => c.state)).toEqual(['registered', 'registered', 'registered']);
    expect(new Set(list.map((c) => c.host))).toEqual(new Set(['h1', 'h2']));
    expect(list.every((c) => c.stats === null && c.cpus === 0.5)).toBe(true);
    const [latest] = await events('shop');
    expect(latest).toMatchObject({ app: 'shop', kind: 'manual', container: null, host: null, from: 0, to: 3 });
    expect(latest?.reason).toContain('asked via the CoreAPI for 3 containers');
    expect(latest?.reason).toContain('registered 3');
  });

  it('does nothing more when asked again for as many (and says so)', async () => {
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 3 });
    expect(liveOf(res.body.containers)).toHaveLength(3);
    const [latest] = await events('shop');
    expect(latest).toMatchObject({ kind: 'manual', from: 3, to: 3 });
    expect(latest?.reason).toContain('nothing to do');
  });

  it('scales in: never-started entries go first, then the ready ones that expire first drain', async () => {
    const [a, b] = await entries('shop');
    const now = Date.now();
    await t.stack.store.transitionContainer(a!.id, ['registered'], 'ready', { address: '10.0.0.1:8080', expiresAt: now + 90_000 });
    await t.stack.store.transitionContainer(b!.id, ['registered'], 'ready', { address: '10.0.0.2:8080', expiresAt: now + 30_000 });
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 1 });
    expect(res.status).toBe(200);
    const after = res.body.containers as Listed[];
    expect(after.map((c) => `${c.id}:${c.state}`).sort()).toEqual([`${a!.id}:ready`, `${b!.id}:draining`].sort());
    expect((await events('shop'))[0]).toMatchObject({ kind: 'manual', from: 3, to: 1 });
    expect((await events('shop'))[0]?.reason).toMatch(/removed 1 not yet started, drained 1/);
  });

  it('scales the CPU quota of every live entry, leaving draining ones alone', async () => {
    const res = await t.api('POST', '/v1/apps/shop/scale', { cpus: 0.8 });
    expect(res.status).toBe(200);
    const byState = Object.fromEntries((res.body.containers as Listed[]).map((c) => [c.state, c.cpus]));
    expect(byState).toEqual({ ready: 0.8, draining: 0.5 });
    const [latest] = await events('shop');
    expect(latest).toMatchObject({ kind: 'manual', from: 0.5, to: 0.8 });
    expect(latest?.reason).toContain('set on 1 of 1 live');
  });

  it('does both at once, the new entries with the new quota', async () => {
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 2, cpus: 1 });
    expect(res.status).toBe(200);
    const live = liveOf(res.body.containers);
    expect(live).toHaveLength(2);
    expect(live.map((c) => c.cpus)).toEqual([1, 1]);
    // The quotas were mixed (the new entry had the app's 0.5): no single "from", the reason says.
    const [quota, count] = await events('shop', '?limit=2');
    expect([`${quota?.from}->${quota?.to}`, `${count?.from}->${count?.to}`]).toEqual(['null->1', '1->2']);
    expect(quota?.reason).toContain('set on 2 of 2 live (was 0.5-0.8)');
  });

  it('shows each entry\'s latest stats in the container lists', async () => {
    const [ready, registered] = liveOf(await entries('shop')).sort((x, y) => (x.state === 'ready' ? -1 : 1) - (y.state === 'ready' ? -1 : 1));
    expect(ready?.state).toBe('ready');
    const reported = statsOf(ready!);
    await t.stack.store.reportStats(ready!.host, [reported], Date.now(), 60_000);
    const listed = await entries('shop');
    expect(listed.find((c) => c.id === ready!.id)?.stats).toEqual(reported);
    expect(listed.find((c) => c.id === registered!.id)?.stats).toBeNull();
    const all = (await t.api('GET', '/v1/containers?app=shop')).body.containers as Listed[];
    expect(all.find((c) => c.id === ready!.id)?.stats).toMatchObject({ p95Ms: 480, throttledShare: 0.25, inflight: 3 });
    // Stats that have expired are not shown.
    await t.stack.store.reportStats(ready!.host, [statsOf(ready!)], Date.now() - 120_000, 60_000);
    expect((await entries('shop')).find((c) => c.id === ready!.id)?.stats).toBeNull();
  });

  it('answers 503 when no host is live, recording the attempt', async () => {
    const old = Date.now() - 60_000;
    for (const id of ['h1', 'h2']) {
      await t.stack.store.heartbeatHost({ id, dispatcherUrl: 'http://127.0.0.1:1', capacity: 10, startedAt: old, heartbeatAt: old });
    }
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 4 });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ code: 'FC_ERR_NO_COMPUTE_HOST', app: 'shop' });
    expect(res.headers['retry-after']).toBeDefined();
    expect(liveOf(await entries('shop'))).toHaveLength(2);
    const [latest] = await events('shop');
    // The two entries are on hosts that are not live: they serve nobody and do not count.
    expect(latest).toMatchObject({ kind: 'manual', from: 0, to: 0 });
    expect(latest?.reason).toContain('then failed: no live compute host');
    await liveHost('h1');
    await liveHost('h2');
  });

  it('two identical asks at once to scale in do not take the app below what was asked', async () => {
    expect((await t.api('POST', '/v1/apps/shop/scale', { containers: 4 })).status).toBe(200);
    const [x, y] = await Promise.all([1, 2].map(() => t.api('POST', '/v1/apps/shop/scale', { containers: 2 })));
    expect([x?.status, y?.status]).toEqual([200, 200]);
    expect(liveOf(await entries('shop'))).toHaveLength(2);
  });

  it('scales to zero', async () => {
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 0 });
    expect(res.status).toBe(200);
    expect(liveOf(res.body.containers)).toEqual([]);
  });

  it('refuses fewer containers than minContainers (the dispatchers would add them back at once)', async () => {
    expect((await t.api('PATCH', '/v1/apps/shop', { minContainers: 1 })).status).toBe(200);
    const res = await t.api('POST', '/v1/apps/shop/scale', { containers: 0 });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ field: 'containers', value: 0 });
    expect(res.body.allowed).toContain('from the app\'s minContainers (1)');
    expect((await t.api('PATCH', '/v1/apps/shop', { minContainers: 0 })).status).toBe(200);
  });
});

describe('manual scaling refuses bad asks, changing nothing', () => {
  beforeAll(async () => {
    await liveHost('h1');
    const res = await t.api('POST', '/v1/apps', { name: 'guard', hostnames: ['guard.test'], image: 'fastcontainer/hello', cpus: 0.5, maxCpus: 1, maxContainers: 4 });
    expect(res.status).toBe(201);
  });

  async function unchanged(): Promise<void> {
    expect(await entries('guard')).toEqual([]);
    expect(await events('guard')).toEqual([]);
  }

  it('needs the token: none or a wrong one is 401', async () => {
    const none = await raw('POST', '/v1/apps/guard/scale', JSON.stringify({ containers: 2 }), { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    const wrong = await raw('POST', '/v1/apps/guard/scale', JSON.stringify({ containers: 2 }), { ...auth, authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    const longer = await raw('POST', '/v1/apps/guard/scale', JSON.stringify({ containers: 2 }), { ...auth, authorization: `Bearer ${TEST_TOKEN}x` });
    expect(longer.status).toBe(401);
    await unchanged();
  });

  it.each([['null'], ['[]'], ['"3"'], ['3'], ['true']])('refuses the body %s, naming (body)', async (body) => {
    const res = await raw('POST', '/v1/apps/guard/scale', body, auth);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: '(body)' });
    await unchanged();
  });

  it('refuses an empty ask and a body that is not JSON', async () => {
    const empty = await t.api('POST', '/v1/apps/guard/scale', {});
    expect(empty.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: '(body)' });
    expect(empty.body.allowed).toContain('at least one of containers, cpus');
    expect((await raw('POST', '/v1/apps/guard/scale', '{"cpus": NaN}', auth)).body.code).toBe('FC_ERR_INVALID_JSON');
    await unchanged();
  });

  const cases: [string, Record<string, unknown>, string, unknown][] = [
    ['an unknown field', { containers: 2, replicas: 3 }, 'replicas', 3],
    ['negative containers', { containers: -1 }, 'containers', -1],
    ['fractional containers', { containers: 1.5 }, 'containers', 1.5],
    ['containers above maxContainers', { containers: 5 }, 'containers', 5],
    ['huge containers', { containers: 1e12 }, 'containers', 1e12],
    ['containers as a string', { containers: '2' }, 'containers', '2'],
    ['containers null', { containers: null }, 'containers', null],
    ['containers true', { containers: true }, 'containers', true],
    ['cpus as a string', { cpus: '0.8' }, 'cpus', '0.8'],
    ['cpus "NaN"', { cpus: 'NaN' }, 'cpus', 'NaN'],
    ['cpus below the app\'s cpus', { cpus: 0.4 }, 'cpus', 0.4],
    ['cpus above maxCpus', { cpus: 1.01 }, 'cpus', 1.01],
    ['zero cpus', { cpus: 0 }, 'cpus', 0],
    ['negative cpus', { cpus: -1 }, 'cpus', -1],
    ['a good containers with bad cpus', { containers: 2, cpus: 64 }, 'cpus', 64],
  ];
  it.each(cases)('refuses %s with 400 naming the field and value', async (_what, body, field, value) => {
    const res = await t.api('POST', '/v1/apps/guard/scale', body);
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field, value });
    expect(typeof res.body.allowed).toBe('string');
    await unchanged();
  });

  it('names the allowed ranges from the app, and every bad field at once', async () => {
    const res = await t.api('POST', '/v1/apps/guard/scale', { containers: -1, cpus: 9 });
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['containers', 'cpus']);
    expect(res.body.errors[0].allowed).toContain('from the app\'s minContainers (0) to its maxContainers (4)');
    expect(res.body.errors[1].allowed).toContain('from the app\'s cpus (0.5) to its maxCpus (1)');
    const infinite = await raw('POST', '/v1/apps/guard/scale', '{"cpus": 1e999}', auth);
    expect(infinite.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: 'cpus' });
    await unchanged();
  });

  it('answers 404 for an unknown app or a path-walking name, and 405 for GET', async () => {
    for (const name of ['nope', '..%2Fguard', '%2E%2E%2F%2E%2E%2Fguard', 'guard%2F..']) {
      const res = await raw('POST', `/v1/apps/${name}/scale`, JSON.stringify({ containers: 1 }), auth);
      expect(res.status, name).toBe(404);
    }
    const get = await raw('GET', '/v1/apps/guard/scale', undefined);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    await unchanged();
  });
});

describe('manual scaling with a dispatcher', () => {
  let d: TestStack;
  let runtime: FakeRuntime;
  beforeAll(async () => {
    runtime = new FakeRuntime();
    d = await startTestStack({ roles: ['coreapi', 'dispatcher'], runtime, env: { FC_RECONCILE_INTERVAL: '1s' } });
  });
  afterAll(async () => {
    await d?.cleanup();
    await runtime?.close();
  });

  it('starts the containers asked for, and drains the extras', async () => {
    expect((await d.api('POST', '/v1/apps', { name: 'live', hostnames: ['live.test'], image: 'fastcontainer/hello', maxContainers: 3 })).status).toBe(201);
    const up = await d.api('POST', '/v1/apps/live/scale', { containers: 2 });
    expect(up.status, JSON.stringify(up.body)).toBe(200);
    expect((up.body.containers as Listed[]).every((c) => c.host === d.hostId)).toBe(true);
    const running = () => [...runtime.containers.values()].filter((c) => c.running).length;
    await eventually(async () => running() === 2 && liveOf((await d.api('GET', '/v1/apps/live/containers')).body.containers).every((c) => c.state === 'ready'), {
      what: 'two ready containers',
    });
    const down = await d.api('POST', '/v1/apps/live/scale', { containers: 1 });
    expect(liveOf(down.body.containers)).toHaveLength(1);
    await eventually(() => running() === 1, { what: 'the extra container to be drained and removed' });
  });
});
