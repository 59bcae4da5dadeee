// The WebSocket tunnel's frame tracking (pure) and its close at a frame boundary, over real
// loopback socket pairs: the close frame (1001) never lands inside one of the app's frames.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeFrame, FrameBoundary, Tunnel } from '../../src/shared/tunnel.js';
import { eventually } from '../helpers/wait.js';

/** A server frame (unmasked) with a payload of n bytes. */
function frame(n: number, opcode = 0x2): Buffer {
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127, 0, 0, 0, 0]), Buffer.from([(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff])]);
  return Buffer.concat([head, Buffer.alloc(n, 0x61)]);
}

/** A client frame (masked) with a payload of n bytes. */
function maskedFrame(n: number): Buffer {
  return Buffer.concat([Buffer.from([0x81, 0x80 | n, 1, 2, 3, 4]), Buffer.alloc(n, 0x62)]);
}

describe('FrameBoundary', () => {
  it.each([
    { what: 'a small frame', bytes: frame(5) },
    { what: 'an empty frame', bytes: frame(0) },
    { what: 'a 16-bit length', bytes: frame(300) },
    { what: 'a 64-bit length', bytes: frame(70_000) },
    { what: 'a masked frame', bytes: maskedFrame(10) },
    { what: 'two frames', bytes: Buffer.concat([frame(3), frame(200)]), ends: [5, 5 + 204] },
  ])('is at a boundary after $what, fed whole or byte by byte, and nowhere else', ({ bytes, ends }) => {
    const boundaries = ends ?? [bytes.length];
    const whole = new FrameBoundary();
    expect(whole.feed(bytes)).toBe(bytes.length);
    expect(whole.atBoundary).toBe(true);
    const bytewise = new FrameBoundary();
    for (let i = 0; i < bytes.length; i++) {
      bytewise.feed(bytes.subarray(i, i + 1));
      expect(bytewise.atBoundary).toBe(boundaries.includes(i + 1));
    }
    expect(bytewise.atBoundary).toBe(true);
  });

  it('with stop, consumes only up to the end of the frame under way', () => {
    const b = new FrameBoundary();
    const first = frame(5);
    b.feed(first.subarray(0, 4));
    expect(b.atBoundary).toBe(false);
    const rest = Buffer.concat([first.subarray(4), frame(8)]);
    expect(b.feed(rest, true)).toBe(first.length - 4);
    expect(b.atBoundary).toBe(true);
    expect(b.feed(frame(2), true)).toBe(0);
  });
});

/** Two connected socket pairs: [client side seen by the tunnel, the far client], [upstream, the far upstream]. */
async function pair(): Promise<{ near: net.Socket; far: net.Socket; close(): void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const nearP = new Promise<net.Socket>((r) => server.once('connection', r));
  const far = net.connect(port, '127.0.0.1');
  const near = await nearP;
  return { near, far, close: () => { far.destroy(); near.destroy(); server.close(); } };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('Tunnel.goingAway', () => {
  it('lets the upstream finish its frame, then writes the close frame 1001 and closes', async () => {
    const client = await pair();
    const upstream = await pair();
    cleanups.push(client.close, upstream.close);
    const tunnel = new Tunnel(client.near, upstream.near, { idleMs: 60_000, frameWaitMs: 5_000 });
    const received: Buffer[] = [];
    client.far.on('data', (d: Buffer) => received.push(d));
    const ended = new Promise<void>((r) => client.far.once('end', () => r()));
    const big = frame(1000);
    // Half a frame, then the drain ends: the rest of that frame still goes through, the next does not.
    upstream.far.write(big.subarray(0, 500));
    await eventually(() => Buffer.concat(received).length === 500, { timeout: 5_000, what: 'the tunnel to forward the first half of the frame' });
    const closing = tunnel.goingAway();
    upstream.far.write(Buffer.concat([big.subarray(500), frame(4)]));
    await closing;
    await ended;
    const all = Buffer.concat(received);
    expect(all.subarray(0, big.length).equals(big)).toBe(true);
    expect(all.subarray(big.length).equals(closeFrame(1001))).toBe(true);
  });

  it('cuts both sides when the upstream never finishes its frame within frameWaitMs', async () => {
    const client = await pair();
    const upstream = await pair();
    cleanups.push(client.close, upstream.close);
    const tunnel = new Tunnel(client.near, upstream.near, { idleMs: 60_000, frameWaitMs: 100 });
    const received: Buffer[] = [];
    client.far.on('data', (d: Buffer) => received.push(d));
    upstream.far.write(frame(1000).subarray(0, 10));
    await eventually(() => Buffer.concat(received).length === 10, { timeout: 5_000, what: 'the tunnel to forward the first 10 bytes' });
    await tunnel.goingAway();
    // No close frame inside a frame: only the 10 bytes already sent.
    expect(Buffer.concat(received).length).toBe(10);
    expect(client.near.destroyed && upstream.near.destroyed).toBe(true);
  });

  it('pipes the client\'s bytes to the upstream with the same content', async () => {
    const client = await pair();
    const upstream = await pair();
    cleanups.push(client.close, upstream.close);
    new Tunnel(client.near, upstream.near, { idleMs: 60_000 });
    const data = Buffer.alloc(3_000_000, 9);
    const got: Buffer[] = [];
    let n = 0;
    const all = new Promise<void>((r) => upstream.far.on('data', (d: Buffer) => { got.push(d); n += d.length; if (n >= data.length) r(); }));
    client.far.write(data);
    await all;
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });
});
