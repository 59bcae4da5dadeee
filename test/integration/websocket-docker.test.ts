// A WebSocket through the proxy and the dispatcher to a real container on the real Docker engine:
// the stock fastcontainer/php image running a WebSocket echo server written in plain PHP
// (test/fixtures/ws-echo.php, run with `php -r`), with a real client (`ws`). The upgrade waits
// for the cold start like a request; the container's drain waits for the WebSocket up to
// FC_DRAIN_TIMEOUT and then closes it with 1001. The same container over HTTPS (a certificate made
// with openssl): an HTTP/2 request and a wss:// WebSocket.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { containersOfHost, imageExists } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const PHP = 'fastcontainer/php';
const code = readFileSync(new URL('../fixtures/ws-echo.php', import.meta.url), 'utf8').replace(/^<\?php\n/, '');
let t: TestStack;
let certDir: string;
let cert: string;

beforeAll(async () => {
  if (!(await imageExists(PHP))) throw new Error(`image ${PHP} is missing; run \`bash scripts/setup.sh\` first`);
  certDir = mkdtempSync(path.join(os.tmpdir(), 'fctest-tls-'));
  execFileSync('openssl', ['req', '-x509', '-days', '2', '-subj', '/CN=wsphp.test', '-addext', 'subjectAltName=DNS:wsphp.test', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', path.join(certDir, 'wsphp.test.key'), '-out', path.join(certDir, 'wsphp.test.crt')], { stdio: 'pipe' });
  cert = readFileSync(path.join(certDir, 'wsphp.test.crt'), 'utf8');
  t = await startTestStack({ env: { FC_DRAIN_TIMEOUT: '2s', FC_DRAIN_GRACE: '0', FC_TLS_DIR: certDir, FC_TLS_PORT: '0' } });
  const created = await t.api('POST', '/v1/apps', { name: 'wsphp', hostnames: ['wsphp.test'], image: PHP, port: 8080, command: ['php', '-r', code] });
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await t?.cleanup();
  rmSync(certDir, { recursive: true, force: true });
});

describe('WebSocket to a container on Docker', () => {
  it('cold-starts the container for the upgrade, echoes, and closes with 1001 when the container drains', async () => {
    expect(await containersOfHost(t.hostId)).toHaveLength(0);
    const messages: string[] = [];
    const ws = new WebSocket(`${t.proxyUrl.replace('http:', 'ws:')}/chat`, { headers: { host: 'wsphp.test' } });
    ws.on('message', (d) => messages.push(String(d)));
    const closedWith = new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    // The container's first message: the client's address as the proxy forwarded it.
    await eventually(() => messages.length >= 1, { what: 'the greeting' });
    expect(messages[0]).toBe('php:127.0.0.1');
    ws.send('hello from the test');
    await eventually(() => messages.length >= 2, { what: 'the echo' });
    expect(messages[1]).toBe('hello from the test');
    expect(await containersOfHost(t.hostId)).toHaveLength(1);

    const entry = (await t.api('GET', '/v1/apps/wsphp/containers')).body.containers[0].id as string;
    expect((await t.api('DELETE', `/v1/containers/${entry}`)).status).toBeLessThan(300);
    await eventually(async () => (await t.api('GET', `/v1/containers/${entry}`)).body?.state === 'draining', { what: 'the drain' });
    ws.send('while draining');
    await eventually(() => messages.length >= 3, { what: 'the echo during the drain' });
    expect(messages[2]).toBe('while draining');
    expect(await closedWith).toBe(1001);
    await eventually(async () => (await containersOfHost(t.hostId)).length === 0, { timeout: 20_000, what: 'the container removed' });
  });

  it('serves the same container over HTTPS: HTTP/2 requests and wss://', async () => {
    const port = t.stack.proxy?.secure?.port ?? 0;
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: 'wsphp.test', ca: cert });
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ':path': '/', ':authority': 'wsphp.test' });
        let status = 0;
        let body = '';
        stream.setEncoding('utf8');
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (d: string) => (body += d));
        stream.on('end', () => resolve({ status, body }));
        stream.on('error', reject);
        stream.end();
      });
      expect(session.alpnProtocol).toBe('h2');
      expect(answer).toEqual({ status: 200, body: 'ok\n' });
    } finally {
      session.close();
    }
    const messages: string[] = [];
    const ws = new WebSocket(`wss://127.0.0.1:${port}/chat`, { headers: { host: 'wsphp.test' }, servername: 'wsphp.test', ca: cert } as WebSocket.ClientOptions);
    ws.on('message', (d) => messages.push(String(d)));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await eventually(() => messages.length >= 1, { what: 'the greeting' });
    ws.send('over tls');
    await eventually(() => messages.length >= 2, { what: 'the echo' });
    expect(messages).toEqual(['php:127.0.0.1', 'over tls']);
    ws.close();
  });
});
