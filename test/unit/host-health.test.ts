import net from 'node:net';
import { Pool } from 'undici';
import { describe, expect, it } from 'vitest';
import { HostHealth, isConnectFailure } from '../../src/proxy/host-health.js';
import { FcError } from '../../src/shared/errors.js';

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('isConnectFailure', () => {
  it('is true for a real refused connection, also wrapped as the proxy wraps it', async () => {
    const pool = new Pool(`http://127.0.0.1:${await closedPort()}`);
    const err = await pool.request({ path: '/', method: 'GET' }).then(() => null, (e: unknown) => e);
    await pool.destroy();
    expect(isConnectFailure(err)).toBe(true);
    expect(isConnectFailure(new FcError('FC_ERR_UPSTREAM', 'the dispatcher failed', {}, { cause: err }))).toBe(true);
  });

  it('is false for a connection cut after it was made (the request may have reached the app)', async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = new Pool(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    const err = await pool.request({ path: '/', method: 'GET' }).then(() => null, (e: unknown) => e);
    await pool.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    expect(err).not.toBeNull();
    expect(isConnectFailure(err)).toBe(false);
  });

  it.each([
    ['no error', undefined, false],
    ['a plain error', new Error('boom'), false],
    ['a reset', Object.assign(new Error('reset'), { code: 'ECONNRESET' }), false],
    ['a connect timeout', Object.assign(new Error('t'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), true],
    ['every address of a name refused', new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' }), Object.assign(new Error('b'), { code: 'EHOSTUNREACH' })]), true],
    ['one address refused, another reset', new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' }), Object.assign(new Error('b'), { code: 'ECONNRESET' })]), false],
  ])('%s: %s', (_name, err, want) => {
    expect(isConnectFailure(err)).toBe(want);
  });
});

describe('HostHealth', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

  it('holds a host suspect for a while after a refused connection, and not after other failures', () => {
    const h = new HostHealth(3_000);
    expect(h.failed('h1', new Error('answered 500'), 1_000)).toBe(false);
    expect(h.suspect('h1', 1_000)).toBe(false);
    expect(h.failed('h1', refused, 1_000)).toBe(true);
    expect(h.suspect('h1', 3_999)).toBe(true);
    expect(h.suspect('h2', 3_999)).toBe(false);
    expect(h.suspect('h1', 4_000)).toBe(false);
    // Refused again: suspect again, from then.
    h.failed('h1', refused, 5_000);
    expect(h.suspect('h1', 7_999)).toBe(true);
  });
});
