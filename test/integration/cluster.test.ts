// compose/cluster.sh: every role its own process on one Redis, two dispatchers acting as two
// compute hosts. Scale-out places the second container on the other host, and both serve.

import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { sandboxLabels } from '../../src/dispatcher/runtime/network-sandboxes.js';
import { docker } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { eventually } from '../helpers/wait.js';

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const name = uniqueName('fctest-cluster');
let base = 0;
let token = '';

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Four consecutive free ports (proxy, CoreAPI, two dispatchers) and their admin ports, 100 above. */
async function freeBase(): Promise<number> {
  for (;;) {
    const candidate = 20_000 + Math.floor(Math.random() * 20_000);
    const free = await Promise.all([0, 1, 2, 3, 100, 101, 102, 103].map((i) => portFree(candidate + i)));
    if (free.every(Boolean)) return candidate;
  }
}

const env = () => ({ ...process.env, FC_CLUSTER_NAME: name, FC_CLUSTER_BASE_PORT: String(base), FC_CLUSTER_SKIP_SETUP: '1' });

async function api(method: 'GET' | 'POST', p: string, body?: unknown) {
  const res = await request(`http://127.0.0.1:${base + 1}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: res.statusCode, body: JSON.parse(await res.body.text()) };
}

async function whoami(): Promise<string> {
  const res = await request(`http://127.0.0.1:${base}/cgi-bin/whoami`, { headers: { host: 'spread.test' } });
  expect(res.statusCode).toBe(200);
  return (await res.body.text()).trim();
}

async function clusterContainers() {
  const all = await docker.listContainers({ all: true, filters: { label: [`${labelKeys.managed}=true`] } });
  return all.filter((c) => (c.Labels[labelKeys.host] ?? '').startsWith(`${name}-host-`) && c.Labels[sandboxLabels.role] !== 'sandbox');
}

beforeAll(async () => {
  base = await freeBase();
  await run('bash', [path.join(repo, 'compose/cluster.sh'), 'up', '2'], { env: env() });
  token = readFileSync(path.join(repo, '.state', name, 'api-token'), 'utf8').trim();
});

afterAll(async () => {
  await run('bash', [path.join(repo, 'compose/cluster.sh'), 'down'], { env: env() });
  rmSync(path.join(repo, '.state', name), { recursive: true, force: true });
});

describe('a cluster of separate processes on one Redis', () => {
  it('registers both dispatchers as live hosts', async () => {
    const hosts = await api('GET', '/v1/hosts');
    expect(hosts.body.hosts.map((h: { id: string; live: boolean }) => `${h.id}:${h.live}`)).toEqual([`${name}-host-1:true`, `${name}-host-2:true`]);
  });

  it('spreads an app over both hosts when it scales out, and both serve', async () => {
    expect((await api('POST', '/v1/apps', { name: 'spread', hostnames: ['spread.test'], image: 'fastcontainer/hello', maxContainers: 2 })).status).toBe(201);
    const first = await whoami();
    const added = await api('POST', '/v1/apps/spread/containers', {});
    expect(added.status).toBe(201);
    const entries = (await api('GET', '/v1/apps/spread/containers')).body.containers as { id: string; host: string }[];
    expect(entries.map((e) => e.host).sort()).toEqual([`${name}-host-1`, `${name}-host-2`]);
    await eventually(async () => (await api('GET', `/v1/containers/${added.body.id}`)).body.state === 'ready', { timeout: 15_000, what: 'the second container' });
    const seen = new Set<string>([first]);
    for (let i = 0; i < 40; i++) seen.add(await whoami());
    expect(seen.size).toBe(2);
    // The proxy process signs with the secret the first process kept in Redis; a client that is
    // not a proxy gets nothing from a dispatcher, even naming a running container.
    for (const port of [base + 2, base + 3]) {
      for (const e of entries) {
        const raw = await request(`http://127.0.0.1:${port}/cgi-bin/whoami`, { headers: { 'x-fc-container': e.id } });
        expect(raw.statusCode).toBe(403);
        expect(JSON.parse(await raw.body.text()).code).toBe('FC_ERR_HOP_FORBIDDEN');
      }
      // Its health is on its admin listener.
      const health = await request(`http://127.0.0.1:${port + 100}/healthz`);
      expect(((await health.body.json()) as { roles: { dispatcher: { status: string } } }).roles.dispatcher.status).toBe('ok');
    }
    const containers = await clusterContainers();
    expect(containers.map((c) => c.Labels[labelKeys.host]).sort()).toEqual([`${name}-host-1`, `${name}-host-2`]);
  });

  it('leaves nothing behind when it goes down', async () => {
    await run('bash', [path.join(repo, 'compose/cluster.sh'), 'down'], { env: env() });
    expect(await clusterContainers()).toEqual([]);
    expect(await portFree(base)).toBe(true);
    expect(await portFree(base + 2)).toBe(true);
  });
});
