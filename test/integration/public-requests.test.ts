// What the tenant's code sees of odd public requests, and what the public learns of failures, on
// the real Redis and Docker: raw requests through the proxy to a PHP container that echoes the
// Host, target and platform headers it got. Twice: through the proxy of the same process (the
// dispatcher called in process) and through a proxy of its own that reaches the dispatcher over
// the signed HTTP hop, with the cluster secret the first process kept in Redis.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageExists } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { rawExchange } from '../helpers/raw-http.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const PHP = 'fastcontainer/php';
const HELLO = 'fastcontainer/hello';
let t: TestStack;
let remote: TestStack;
let site: string;

const ECHO = `<?php
header('content-type: application/json');
$fc = array_values(array_filter(array_keys($_SERVER), fn ($k) => str_starts_with($k, 'HTTP_X_FC_')));
echo json_encode(['host' => $_SERVER['HTTP_HOST'] ?? null, 'uri' => $_SERVER['REQUEST_URI'], 'xfh' => $_SERVER['HTTP_X_FORWARDED_HOST'] ?? null, 'rid' => $_SERVER['HTTP_X_REQUEST_ID'] ?? null, 'fc' => $fc]);
`;

beforeAll(async () => {
  for (const image of [PHP, HELLO]) {
    if (!(await imageExists(image))) throw new Error(`image ${image} is missing; run \`bash scripts/setup.sh\` first`);
  }
  site = mkdtempSync(path.join(os.tmpdir(), 'fctest-echo-'));
  writeFileSync(path.join(site, 'index.php'), ECHO);
  chmodSync(site, 0o755);
  t = await startTestStack();
  remote = await startTestStack({ roles: ['proxy'], prefix: t.prefix, hostId: uniqueName('fctest-proxy') });
  const res = await t.api('POST', '/v1/apps', { name: 'echo', hostnames: ['echo.test', 'www.echo.test'], image: PHP, volumes: [`${site}:/var/www/html:ro`] });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
});

afterAll(async () => {
  await remote?.cleanup();
  await t?.cleanup();
  rmSync(site, { recursive: true, force: true });
});

/** Raw bytes to a proxy; each request says Connection: close, so the server ends the exchange. */
const raw = rawExchange;

interface Seen { host: string | null; uri: string; xfh: string | null; rid: string | null; fc: string[] }

const proxies = () => [['in process', t.proxyUrl], ['over the signed hop', remote.proxyUrl]] as const;

describe.each([0, 1])('what the tenant sees (%i: 0 in process, 1 over the signed hop)', (which) => {
  const proxy = () => proxies()[which]![1];

  it('gets the client\'s Host even when the client names Host in Connection', async () => {
    const res = await raw(proxy(), 'GET /index.php HTTP/1.1\r\nHost: echo.test\r\nConnection: close, host\r\n\r\n');
    expect(res.status, res.body).toBe(200);
    const seen = JSON.parse(res.body) as Seen;
    expect(seen).toMatchObject({ host: 'echo.test', uri: '/index.php', xfh: 'echo.test', fc: [] });
    expect(seen.rid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('routes an absolute-form request by its authority and forwards it in origin form with that Host', async () => {
    const res = await raw(proxy(), 'GET http://www.echo.test/index.php?a=1 HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n');
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ host: 'www.echo.test', uri: '/index.php?a=1', xfh: 'www.echo.test' });
  });

  it('does not serve a site for an absolute-form target of another host, whatever its Host says', async () => {
    const res = await raw(proxy(), 'GET http://evil.example/index.php HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body).code).toBe('FC_ERR_UNKNOWN_HOST');
  });

  it('refuses two Host headers with 400, at once', async () => {
    const res = await raw(proxy(), 'GET /index.php HTTP/1.1\r\nHost: echo.test\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'FC_ERR_BAD_REQUEST' });
  });
});

describe('what the public learns of a failure', () => {
  it('a request id, and nothing of the container, host or runtime; the operator gets the exit code and output', async () => {
    const res = await t.api('POST', '/v1/apps', {
      name: 'crash', hostnames: ['crash.test'], image: HELLO, command: ['/bin/sh', '-c', 'echo boom-at-start >&2; exit 7'],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const bodies: string[] = [];
    for (const [, url] of proxies()) {
      const answer = await raw(url, 'GET / HTTP/1.1\r\nHost: crash.test\r\nConnection: close\r\n\r\n');
      expect(answer.status).toBe(503);
      const problem = JSON.parse(answer.body);
      expect(problem).toMatchObject({ code: 'FC_ERR_START_FAILED', title: 'Container failed to start' });
      expect(answer.headers.toLowerCase()).toContain(`x-request-id: ${problem.requestId}`);
      bodies.push(answer.body);
    }
    const entries = (await t.api('GET', '/v1/apps/crash/containers')).body.containers as { id: string; lastError: string }[];
    for (const body of bodies) {
      for (const secret of ['boom', 'exit', 'code 7', HELLO, t.hostId, entries[0]!.id, '172.', '127.0.0.1']) expect(body).not.toContain(secret);
    }
    expect(entries[0]?.lastError).toContain('exited with code 7');
    expect(entries[0]?.lastError).toContain('boom-at-start');
  });
});
