// A WebSocket through the proxy and the dispatcher to a real container on the real Docker engine:
// the stock fastcontainer/php image running a WebSocket echo server written in plain PHP
// (test/fixtures/ws-echo.php, run with `php -r`), with a real client (`ws`). The upgrade waits
// for the cold start like a request; the container's drain waits for the WebSocket up to
// FC_DRAIN_TIMEOUT and then closes it with 1001.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { containersOfHost, imageExists } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const PHP = 'fastcontainer/php';
const code = readFileSync(new URL('../fixtures/ws-echo.php', import.meta.url), 'utf8').replace(/^<\?php\n/, '');
let t: TestStack;

beforeAll(async () => {
  if (!(await imageExists(PHP))) throw new Error(`image ${PHP} is missing; run \`bash scripts/setup.sh\` first`);
  t = await startTestStack({ env: { FC_DRAIN_TIMEOUT: '2s', FC_DRAIN_GRACE: '0' } });
  const created = await t.api('POST', '/v1/apps', { name: 'wsphp', hostnames: ['wsphp.test'], image: PHP, port: 8080, command: ['php', '-r', code] });
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await t?.cleanup();
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
});
