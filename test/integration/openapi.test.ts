// GET /v1/openapi.json against the routes that exist: every route documented, the document valid
// OpenAPI 3.1 (an independent validator), and every documented operation answering (not 404 or
// 405) with a body its documented schema accepts. Over real HTTP, Redis CMDB.

import { Validator } from '@seriousme/openapi-schema-validator';
import { Value } from '@sinclair/typebox/value';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiPath, type RouteInfo } from '../../src/coreapi/openapi.js';
import { startTestStack, TEST_TOKEN, type TestStack } from '../helpers/stack.js';

let t: TestStack;
let doc: Record<string, any>;
let routes: RouteInfo[];
let entryId = '';
const hostId = 'oa-host';

beforeAll(async () => {
  t = await startTestStack({ roles: ['coreapi'] });
  routes = t.stack.coreapi?.api.routeTable() ?? [];
  const now = Date.now();
  // A host that looks live, without a dispatcher behind it: entries stay registered.
  await t.stack.store.heartbeatHost({ id: hostId, dispatcherUrl: 'http://127.0.0.1:1', capacity: 10, startedAt: now, heartbeatAt: now + 600_000 });
  expect((await t.api('POST', '/v1/apps', { name: 'oa', hostnames: ['oa.test'], image: 'fastcontainer/hello', secrets: { K: 'v' } })).status).toBe(201);
  const added = await t.api('POST', '/v1/apps/oa/containers', {});
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  entryId = added.body.id;
  const res = await request(`${t.apiUrl}/v1/openapi.json`);
  expect(res.statusCode).toBe(200);
  doc = (await res.body.json()) as Record<string, any>;
});

afterAll(async () => {
  await t?.cleanup();
});

describe('the OpenAPI document', () => {
  it('is open (no token), and valid OpenAPI 3.1 by an independent validator', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(structuredClone(doc));
    expect(result.errors, String(JSON.stringify(result.errors)).slice(0, 2000)).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  it('tells nothing of the data (no app, host or token), and takes only GET', async () => {
    const text = JSON.stringify(doc);
    for (const secret of ['oa.test', hostId, TEST_TOKEN, t.stack.coreapi?.readToken.token ?? '-']) expect(text).not.toContain(secret);
    const post = await request(`${t.apiUrl}/v1/openapi.json`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    expect(post.statusCode).toBe(405);
    expect(((await post.body.json()) as { code: string }).code).toBe('FC_ERR_METHOD_NOT_ALLOWED');
  });

  it('the validator can fail: a path not starting with "/", or a bad security scheme, is refused', async () => {
    const broken = structuredClone(doc);
    broken.paths['v1/apps'] = broken.paths['/v1/apps'];
    expect((await new Validator().validate(broken)).valid).toBe(false);
    const badScheme = structuredClone(doc);
    badScheme.components.securitySchemes.adminToken = { type: 'password' };
    expect((await new Validator().validate(badScheme)).valid).toBe(false);
  });

  it('documents every route that exists, and nothing else', () => {
    const served = routes.map((r) => `${r.method} ${openApiPath(r.name)}`).sort();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    expect(documented).toEqual(served);
    expect(routes.filter((r) => r.doc === undefined).map((r) => `${r.method} ${r.name}`)).toEqual([]);
    expect(JSON.stringify(doc)).not.toContain('x-undocumented');
    expect(served).toEqual(expect.arrayContaining(['GET /v1/openapi.json', 'PATCH /v1/apps/{name}', 'DELETE /v1/containers/{id}', 'POST /v1/apps/{name}/scale']));
  });

  it('names the bearer tokens: writes the admin token, reads either, the open paths none', () => {
    expect(doc.components.securitySchemes).toMatchObject({ adminToken: { type: 'http', scheme: 'bearer' }, readToken: { type: 'http', scheme: 'bearer' } });
    expect(doc.paths['/v1/apps'].post.security).toEqual([{ adminToken: [] }]);
    expect(doc.paths['/v1/apps'].get.security).toEqual([{ adminToken: [] }, { readToken: [] }]);
    for (const open of ['/healthz', '/metrics', '/v1/openapi.json']) expect(doc.paths[open].get.security).toEqual([]);
    expect(doc.paths['/v1/apps'].post.responses['401'].content['application/problem+json'].schema).toEqual({ $ref: '#/components/schemas/Problem' });
  });

  it('shows secrets as write-only: the app read has secretKeys and no secrets; create takes secrets', () => {
    const app = doc.components.schemas.App;
    expect(Object.keys(app.properties)).toContain('secretKeys');
    expect(Object.keys(app.properties)).not.toContain('secrets');
    expect(Object.keys(doc.components.schemas.AppCreate.properties)).toContain('secrets');
    expect(doc.components.schemas.AppCreate.required).toEqual(['name', 'hostnames', 'image']);
  });
});

/** What each documented write sends; a new write route needs a line here (the test says so). */
const bodies: Record<string, unknown> = {
  'POST /v1/apps': { name: 'oa2', hostnames: ['oa2.test'], image: 'fastcontainer/hello', lifespan: '10m', memory: '64m' },
  'PATCH /v1/apps/{name}': { cpus: 0.25, idleTimeout: '2m' },
  'POST /v1/apps/{name}/scale': { containers: 2 },
  'POST /v1/apps/{name}/containers': { host: hostId },
};
/** Deletions last, the app's own at the very end. */
const order = (m: string, p: string) => (m === 'get' ? 0 : m === 'delete' ? (p === '/v1/apps/{name}' ? 3 : 2) : 1);

describe('every documented operation answers, as documented', () => {
  it('answers each with a status other than 404/405 that it documents, and a JSON body its schema accepts', async () => {
    const ops = Object.entries(doc.paths as Record<string, Record<string, any>>)
      .flatMap(([p, o]) => Object.entries(o).map(([m, op]) => ({ p, m, op })))
      .sort((a, b) => order(a.m, a.p) - order(b.m, b.p));
    const seen: string[] = [];
    for (const { p, m, op } of ops) {
      const key = `${m.toUpperCase()} ${p}`;
      const route = routes.find((r) => r.method === m.toUpperCase() && openApiPath(r.name) === p) as RouteInfo;
      const url = p.replace('{name}', 'oa').replace('{id}', p.startsWith('/v1/hosts') ? hostId : entryId);
      const body = op.requestBody === undefined ? undefined : bodies[key];
      expect(op.requestBody === undefined || body !== undefined, `${key} takes a body: add a sample to "bodies"`).toBe(true);
      const res = await request(`${t.apiUrl}${url}`, {
        method: m.toUpperCase() as 'GET',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? null : JSON.stringify(body),
      });
      const type = String(res.headers['content-type'] ?? '');
      // Streams (Server-Sent Events) and text: the status and type are what is checked.
      const json = type.startsWith('application/json') || type.startsWith('application/problem+json') ? ((await res.body.json()) as unknown) : (res.body.on('error', () => undefined).destroy(), undefined);
      seen.push(`${key} ${res.statusCode}`);
      expect([404, 405], `${key}: ${res.statusCode} ${JSON.stringify(json)}`).not.toContain(res.statusCode);
      expect(Object.keys(op.responses), `${key} answered ${res.statusCode}, which it does not document`).toContain(String(res.statusCode));
      const documented = route.doc?.responses[res.statusCode];
      if (documented?.schema !== undefined && json !== undefined) {
        const errors = [...Value.Errors(documented.schema, json)].slice(0, 3).map((e) => `${e.path}: ${e.message}`);
        expect(errors, `${key} ${res.statusCode}: the body does not match its schema`).toEqual([]);
      }
    }
    console.log(`[openapi] ${seen.join(', ')}`);
    expect(seen.length).toBe(routes.length);
  });
});
