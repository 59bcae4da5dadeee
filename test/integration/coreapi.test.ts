// The CoreAPI over real HTTP with the Redis CMDB: CRUD, auth, validation, container entries.

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let t: TestStack;

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
    const badPath = await raw('GET', '/v1/apps/%E0%A4%A', undefined);
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

describe('auth and routing', () => {
  it('needs the bearer token for writes but not for reads', async () => {
    const none = await raw('POST', '/v1/apps', JSON.stringify({ ...valid, name: 'x', hostnames: ['x.test'] }), { 'content-type': 'application/json' });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    const wrong = await raw('DELETE', '/v1/apps/blog', undefined, { authorization: 'Bearer wrong-token-0123456789abcdef' });
    expect(wrong.status).toBe(401);
    expect((await t.api('GET', '/v1/apps/blog')).status).toBe(200);
    expect((await raw('GET', '/v1/apps', undefined)).status).toBe(200);
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
