// The dispatcher's port against a client that is not a proxy (a tenant's code calling the host's
// address, say), on the real Redis and Docker: it is refused before any container is touched or
// started, however it names a container entry; only the proxy's signed requests get through. The
// internal endpoints are on the admin listener, nowhere else.

import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { HopAuth } from '../../src/shared/hop-auth.js';
import { containersOfHost, docker, imageExists } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { newContainer } from '../helpers/specs.js';
import { rawRequest } from '../helpers/raw-http.js';
import { eventually } from '../helpers/wait.js';

const HELLO = 'fastcontainer/hello';
let t: TestStack;
/** What a proxy of this stack signs with (the secret the stack keeps in its Redis prefix). */
let proxySigner: HopAuth;
let victimEntry: string;

beforeAll(async () => {
  if (!(await imageExists(HELLO))) throw new Error(`image ${HELLO} is missing; run \`bash scripts/setup.sh\` first`);
  // The dispatcher on every address, as on a compute host of several: what a tenant's container
  // can reach at the bridge's gateway is then the signature check alone.
  t = await startTestStack({ env: { FC_DISPATCHER_LISTEN: '0.0.0.0' } });
  proxySigner = new HopAuth(await t.stack.store.clusterSecret('never-used-candidate-0123456789'), 30_000);
  expect((await t.api('POST', '/v1/apps', { name: 'victim', hostnames: ['victim.test'], image: HELLO })).status).toBe(201);
  const res = await t.get('victim.test');
  expect(res.status).toBe(200);
  victimEntry = (await t.api('GET', '/v1/apps/victim/containers')).body.containers[0].id;
});

afterAll(async () => {
  await t?.cleanup();
});

async function toDispatcher(path: string, headers: Record<string, string>, method: 'GET' | 'POST' | 'DELETE' = 'GET') {
  const res = await request(`${t.dispatcherUrl}${path}`, { method, headers });
  return { status: res.statusCode, body: await res.body.text() };
}

async function metric(line: RegExp): Promise<number> {
  const text = await (await request(`${t.adminUrl}/metrics`)).body.text();
  const m = line.exec(text);
  return m === null ? 0 : Number(m[1]);
}

const victimRequests = () => metric(/^fc_dispatcher_requests_total\{app="victim",status="200",role="dispatcher"\} (\d+)$/m);

describe('the dispatcher port', () => {
  it('refuses 403 a request naming another tenant\'s running container, and serves it nothing', async () => {
    const before = await victimRequests();
    expect(before).toBeGreaterThanOrEqual(1);
    const forgedOnes: Record<string, string>[] = [
      { 'x-fc-container': victimEntry },
      { 'x-fc-container': victimEntry, 'x-fc-auth': `v1.${Date.now()}.${'A'.repeat(43)}` },
      { 'x-fc-container': victimEntry, 'x-fc-auth': new HopAuth('a-guessed-secret-0123456789abcdef', 30_000).sign({ method: 'GET', target: '/', entryId: victimEntry }, Date.now()) },
      // A real signature, but for another target, another entry, or too old.
      { 'x-fc-container': victimEntry, 'x-fc-auth': proxySigner.sign({ method: 'GET', target: '/other', entryId: victimEntry }, Date.now()) },
      { 'x-fc-container': victimEntry, 'x-fc-auth': proxySigner.sign({ method: 'GET', target: '/', entryId: 'some-other-entry' }, Date.now()) },
      { 'x-fc-container': victimEntry, 'x-fc-auth': proxySigner.sign({ method: 'GET', target: '/', entryId: victimEntry }, Date.now() - 60_000) },
    ];
    for (const headers of forgedOnes) {
      const res = await toDispatcher('/', headers);
      expect(res.status, JSON.stringify(headers)).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'FC_ERR_HOP_FORBIDDEN' });
      expect(res.body).not.toContain('Hello from FastContainer');
      expect(res.body).not.toContain(victimEntry);
    }
    expect(await victimRequests()).toBe(before);
    expect(await metric(/^fc_dispatcher_refused_total\{reason="forged",role="dispatcher"\} (\d+)$/m)).toBeGreaterThanOrEqual(4);
    // The proxy's own request, signed, still goes through.
    const res = await toDispatcher('/', { 'x-fc-container': victimEntry, 'x-fc-auth': proxySigner.sign({ method: 'GET', target: '/', entryId: victimEntry }, Date.now()) });
    expect(res.status).toBe(200);
    expect(res.body).toContain('Hello from FastContainer');
  });

  it('starts nothing for an unsigned request naming an entry that is not running', async () => {
    expect((await t.api('POST', '/v1/apps', { name: 'sleeper', hostnames: ['sleeper.test'], image: HELLO })).status).toBe(201);
    // Held back from the dispatcher's warm start by a back-off, as after a failed start: only a
    // request admitted to the dispatcher's request path would try it, and answer the failure.
    const now = Date.now();
    const { entry } = await t.stack.store.registerContainer(newContainer('sleeper', { host: t.hostId, retryAt: now + 120_000, lastError: 'held back by the test', lastErrorCode: 'FC_ERR_START_FAILED' }));
    await eventually(() => t.stack.cache?.container(entry.id));
    for (const method of ['GET', 'POST', 'DELETE'] as const) {
      const res = await toDispatcher('/', { 'x-fc-container': entry.id }, method);
      expect(res.status).toBe(403);
      expect(res.body).not.toContain('held back');
    }
    // Signed, the same request reaches the request path, which answers the back-off: so the 403
    // above came before it.
    const signed = await toDispatcher('/', { 'x-fc-container': entry.id, 'x-fc-auth': proxySigner.sign({ method: 'GET', target: '/', entryId: entry.id }, Date.now()) });
    expect(signed.status).toBe(503);
    expect(JSON.parse(signed.body).code).toBe('FC_ERR_START_FAILED');
    const sleepers = (await containersOfHost(t.hostId)).filter((c) => c.Labels[labelKeys.app] === 'sleeper');
    expect(sleepers).toEqual([]);
    expect((await t.stack.store.getContainer(entry.id))?.state).toBe('registered');
  });

  it('serves none of the dispatcher\'s own endpoints there', async () => {
    for (const path of ['/healthz', '/metrics', '/v1/containers']) {
      const res = await toDispatcher(path, {});
      expect(res.status).toBe(403);
      expect(res.body).not.toContain('victim');
    }
  });

  it('refuses a header flood that would cut the proxy\'s headers, signed or not', async () => {
    const auth = proxySigner.sign({ method: 'GET', target: '/', entryId: victimEntry }, Date.now());
    const flood = 'a:\r\n'.repeat(2100);
    // The internal headers after the flood (cut by Node's 2,000-header limit), then before it.
    const cut = await rawRequest(t.dispatcherUrl, `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${flood}x-fc-container: ${victimEntry}\r\nx-fc-auth: ${auth}\r\n\r\n`);
    const kept = await rawRequest(t.dispatcherUrl, `GET / HTTP/1.1\r\nHost: x\r\nx-fc-container: ${victimEntry}\r\nx-fc-auth: ${auth}\r\nConnection: close\r\n${flood}\r\n`);
    for (const answer of [cut, kept]) {
      expect(answer).toMatch(/^HTTP\/1\.1 431 /);
      expect(answer).not.toContain('Hello from FastContainer');
    }
  });

  it('refuses the same flood at the proxy with 431, before the hop', async () => {
    const before = await victimRequests();
    const answer = await rawRequest(t.proxyUrl, `GET /healthz HTTP/1.1\r\nHost: victim.test\r\nConnection: close\r\n${'a:\r\n'.repeat(2100)}\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(answer).not.toMatch(/"role"|fc_dispatcher|containers/);
    expect(await victimRequests()).toBe(before);
  });
});

describe('a tenant\'s container calling the dispatcher at the host\'s bridge address', () => {
  it('gets no other tenant\'s page: refused by the signature check (or blocked before it)', async () => {
    const network = await docker.getNetwork('bridge').inspect() as { IPAM: { Config: { Gateway?: string }[] } };
    const gateway = network.IPAM.Config.find((c) => c.Gateway !== undefined)?.Gateway;
    expect(gateway).toBeDefined();
    const port = new URL(t.dispatcherUrl).port;
    const before = await metric(/^fc_dispatcher_refused_total\{reason="missing",role="dispatcher"\} (\d+)$/m);
    // Labelled as the project's, under a host id of its own (the dispatcher would reconcile away
    // a container under its own), and removed below.
    const probe = await docker.createContainer({
      Image: HELLO,
      Entrypoint: ['/bin/busybox', 'timeout', '10', '/bin/busybox', 'wget', '-S', '-O', '-', '--header', `x-fc-container: ${victimEntry}`, `http://${gateway}:${port}/`],
      Labels: { [labelKeys.managed]: 'true', [labelKeys.host]: uniqueName('fctest-probe') },
      HostConfig: { NetworkMode: 'bridge', CapDrop: ['ALL'] },
    });
    try {
      await probe.start();
      await probe.wait();
      const output = (await probe.logs({ stdout: true, stderr: true })).toString('latin1');
      expect(output).not.toContain('Hello from FastContainer');
      // Without network isolation the request reaches the dispatcher, which refuses it; with it,
      // the connection fails first. Either way, never a page.
      const refused = /403 Forbidden/.test(output);
      const blocked = /refused|timed out|can't connect|unreachable/i.test(output) || output.trim() === '';
      expect(refused || blocked, output).toBe(true);
      if (refused) expect(await metric(/^fc_dispatcher_refused_total\{reason="missing",role="dispatcher"\} (\d+)$/m)).toBe(before + 1);
    } finally {
      await probe.remove({ force: true });
    }
  });
});

describe('the admin listener', () => {
  it('serves the health of every role of the process', async () => {
    const res = await request(`${t.adminUrl}/healthz`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({
      status: 'ok',
      roles: { proxy: { status: 'ok' }, dispatcher: { status: 'ok', host: t.hostId }, coreapi: { status: 'ok', store: 'redis' } },
    });
  });

  it('serves every role\'s metrics and the process\'s once, and the dispatcher\'s containers', async () => {
    const text = await (await request(`${t.adminUrl}/metrics`)).body.text();
    for (const name of ['fc_proxy_requests_total', 'fc_dispatcher_requests_total', 'fc_coreapi_requests_total']) expect(text).toContain(`# TYPE ${name} counter`);
    expect(text.match(/^# TYPE fc_process_cpu_user_seconds_total /gm)).toHaveLength(1);
    const containers = (await (await request(`${t.adminUrl}/v1/containers`)).body.json()) as { host: string; containers: { id: string; app: string }[] };
    expect(containers.host).toBe(t.hostId);
    expect(containers.containers.map((c) => c.id)).toContain(victimEntry);
  });

  it('listens on loopback, on a port of its own', () => {
    const admin = new URL(t.adminUrl);
    expect(admin.hostname).toBe('127.0.0.1');
    expect(new Set([admin.port, new URL(t.proxyUrl).port, new URL(t.dispatcherUrl).port, new URL(t.apiUrl).port]).size).toBe(4);
  });
});
