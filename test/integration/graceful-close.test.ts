// GracefulClose on a real server: an answer under way when the drain begins ends its connection
// (Connection: close), and its connection closes once the answer is through.

import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, type Listening } from '../../src/shared/http.js';
import { eventually } from '../helpers/wait.js';

let server: Listening | undefined;

afterEach(async () => {
  await server?.destroy();
  server = undefined;
});

describe('GracefulClose', () => {
  it('marks an answer under way at the drain Connection: close, and closes its connection after it', async () => {
    let answer: http.ServerResponse | undefined;
    server = await listen((_req, res) => {
      answer = res;
    }, 0, '127.0.0.1');
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    let closed = false;
    socket.once('close', () => (closed = true));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => answer !== undefined, { what: 'the request' });
    const draining = server.close();
    (answer as http.ServerResponse).end('done');
    await eventually(() => closed, { timeout: 5_000, what: 'the connection to close after its answer' });
    await draining;
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(received.toLowerCase()).toContain('connection: close');
    expect(received.endsWith('done')).toBe(true);
  });

  it('closes an idle keep-alive connection at once, and leaves none open', async () => {
    server = await listen((_req, res) => res.end('ok'), 0, '127.0.0.1');
    const socket = net.connect(server.port, '127.0.0.1');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await eventually(() => received.endsWith('ok'), { what: 'the answer' });
    expect(received.toLowerCase()).toContain('connection: keep-alive');
    await server.close();
    await closed;
  });
});
