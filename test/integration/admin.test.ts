// The admin listener on its own: what it serves, what it refuses, and a role that is not well.

import { Counter } from 'prom-client';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startAdmin, type AdminSource } from '../../src/shared/admin.js';
import type { Listening } from '../../src/shared/http.js';
import { createRegistry } from '../../src/shared/metrics.js';

let admin: Listening | undefined;
afterEach(async () => {
  await admin?.destroy();
  admin = undefined;
});

function source(role: string, health: AdminSource['health'], routes?: AdminSource['routes']): AdminSource {
  const registry = createRegistry(role);
  new Counter({ name: `fc_${role}_things_total`, help: 'things', registers: [registry] }).inc(3);
  return { role, registry, health, ...(routes ? { routes } : {}) };
}

async function get(path: string, method: 'GET' | 'POST' = 'GET') {
  const res = await request(`${admin!.url}${path}`, { method });
  return { status: res.statusCode, body: await res.body.text() };
}

describe('the admin listener', () => {
  it('answers every role\'s health and metrics, and a role\'s own routes', async () => {
    admin = await startAdmin([
      source('proxy', () => ({ status: 'ok', apps: 2 })),
      source('dispatcher', async () => ({ status: 'ok', containers: 1 }), { '/v1/containers': () => ({ containers: ['c1'] }) }),
    ], 0, '127.0.0.1');
    expect(new URL(admin.url).hostname).toBe('127.0.0.1');
    const health = await get('/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'ok', roles: { proxy: { status: 'ok', apps: 2 }, dispatcher: { status: 'ok', containers: 1 } } });
    const metrics = await get('/metrics');
    expect(metrics.body).toContain('fc_proxy_things_total{role="proxy"} 3');
    expect(metrics.body).toContain('fc_dispatcher_things_total{role="dispatcher"} 3');
    expect(JSON.parse((await get('/v1/containers')).body)).toEqual({ containers: ['c1'] });
  });

  it('says degraded (503) with the failing role\'s reason when a role is not well', async () => {
    admin = await startAdmin([
      source('proxy', () => ({ status: 'ok' })),
      source('dispatcher', async () => { throw new Error('the CMDB did not answer'); }),
    ], 0, '127.0.0.1');
    const health = await get('/healthz');
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toEqual({ status: 'degraded', roles: { proxy: { status: 'ok' }, dispatcher: { status: 'error', error: 'the CMDB did not answer' } } });
  });

  it('serves nothing else, and only GET', async () => {
    admin = await startAdmin([source('coreapi', () => ({ status: 'ok' }))], 0, '127.0.0.1');
    expect((await get('/v1/containers')).status).toBe(404);
    expect((await get('/')).status).toBe(404);
    expect((await get('/metrics', 'POST')).status).toBe(405);
  });

  it('says which option to change when its port is taken', async () => {
    admin = await startAdmin([source('proxy', () => ({ status: 'ok' }))], 0, '127.0.0.1');
    await expect(startAdmin([source('dispatcher', () => ({ status: 'ok' }))], admin.port, '127.0.0.1')).rejects.toMatchObject({
      code: 'FC_ERR_CONFIG', message: expect.stringContaining('give each process its own FC_ADMIN_PORT'),
    });
  });
});
