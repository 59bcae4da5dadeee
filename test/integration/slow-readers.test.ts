// Clients that read their answers slowly, or not at all (answer-buffer.ts through forward.ts, as
// the proxy and the dispatcher use them): an answer a slow reader cannot take at once is held in
// memory within its budgets, so the few connections to the app are free for everyone else; a
// client that takes nothing for FC_SEND_TIMEOUT is cut, one that keeps reading slowly is not.
// A real upstream server and real sockets on loopback; the forwarding server is a plain Node one.

import net from 'node:net';
import { Pool, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { answerBuffering, type AnswerBuffering } from '../../src/shared/answer-buffer.js';
import { forward } from '../../src/shared/forward.js';
import { listen, type Listening } from '../../src/shared/http.js';
import { eventually } from '../helpers/wait.js';

/** Larger than what loopback's socket buffers take from a client that does not read (about 4 MB sent, 128 KB received). */
const BIG = 8 * 1_048_576;
/** Bytes that show any chunk lost, repeated or out of order. */
const big = Buffer.from(Array.from({ length: BIG }, (_, i) => (i * 7 + (i >> 16)) % 251));
const MEDIUM = 1_048_576;

let upstream: Listening;
/** Answers the upstream has sent to their end, and the ones it is sending now. */
let finished = 0;
let sending = 0;
const servers: Listening[] = [];
const pools: Pool[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  upstream = await listen((req, res) => {
    if (req.url === '/small') {
      res.end('small');
      return;
    }
    if (req.url === '/bursts') {
      // A long answer with a pause: a burst the client cannot take at once, 2.5 s of nothing, another.
      sending += 1;
      res.writeHead(200, { 'content-length': 2 * BIG });
      res.write(big);
      setTimeout(() => res.end(big, () => {
        sending -= 1;
        finished += 1;
      }), 2_500);
      return;
    }
    const body = req.url === '/medium' ? big.subarray(0, MEDIUM) : big;
    sending += 1;
    res.writeHead(200, { 'content-length': body.length });
    res.end(body, () => {
      sending -= 1;
      finished += 1;
    });
  }, 0, '127.0.0.1');
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.destroy()));
  await Promise.all(pools.splice(0).map((p) => p.destroy()));
  await eventually(() => sending === 0, { what: 'the upstream to be done sending' });
  finished = 0;
});

afterAll(async () => {
  await upstream.destroy();
});

/** A forwarding server with `connections` to the upstream, as the dispatcher has to a container. */
async function front(buffering: AnswerBuffering | undefined, connections = 2): Promise<string> {
  const pool = new Pool(upstream.url, { connections, pipelining: 1 });
  pools.push(pool);
  const server = await listen((req, res) => {
    void forward({ pool, req, res, headers: ['host', 'upstream'], upstream: 'the test upstream', ...(buffering === undefined ? {} : { buffering }) })
      .catch((err: Error) => res.destroy(err));
  }, 0, '127.0.0.1');
  servers.push(server);
  return server.url;
}

/** A client that asks for the big answer and then reads none of it (its socket paused). */
async function stalledReader(url: string): Promise<net.Socket> {
  const { port } = new URL(url);
  const socket = net.connect(Number(port), '127.0.0.1');
  sockets.push(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write('GET /big HTTP/1.1\r\nHost: site\r\n\r\n');
  socket.pause();
  return socket;
}

/** Whether a request for the small answer is served within ms. */
async function smallServedWithin(url: string, ms: number): Promise<boolean> {
  try {
    const res = await request(`${url}/small`, { signal: AbortSignal.timeout(ms) });
    return (await res.body.text()) === 'small';
  } catch {
    return false;
  }
}

describe('slow readers', () => {
  it('free the connections to the app once their answers are held: the next request is served at once', async () => {
    const buffering = answerBuffering({ bufferAnswer: 16 * 1_048_576, bufferAnswerTotal: 64 * 1_048_576, sendTimeout: 60_000 });
    const url = await front(buffering);
    for (let i = 0; i < 4; i++) await stalledReader(url);
    // Twice the connections there are: all four answers came in whole, held for clients reading none.
    await eventually(() => finished === 4, { timeout: 10_000, what: 'the upstream to finish all four answers' });
    expect(buffering.budget.inUse).toBe(4 * 16 * 1_048_576);
    expect(await smallServedWithin(url, 2_000)).toBe(true);
  });

  it('hand a held answer over whole and in order once they read', async () => {
    const buffering = answerBuffering({ bufferAnswer: 16 * 1_048_576, sendTimeout: 60_000 });
    const url = await front(buffering);
    const reader = await stalledReader(url);
    await eventually(() => finished === 1, { timeout: 10_000, what: 'the answer held whole' });
    const chunks: Buffer[] = [];
    reader.on('data', (d: Buffer) => chunks.push(d));
    reader.resume();
    await eventually(() => chunks.reduce((n, c) => n + c.length, 0) >= BIG, { what: 'the whole answer' });
    const all = Buffer.concat(chunks);
    const body = all.subarray(all.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBe(BIG);
    expect(body.equals(big)).toBe(true);
    await eventually(() => buffering.budget.inUse === 0, { what: 'the budget to come back' });
  });

  it('without holding (FC_BUFFER_ANSWER 0), two of them take both connections and the next request waits', async () => {
    const url = await front(answerBuffering({ bufferAnswer: 0, sendTimeout: 60_000 }));
    for (let i = 0; i < 2; i++) await stalledReader(url);
    await eventually(() => sending === 2, { what: 'both answers under way' });
    expect(await smallServedWithin(url, 1_500)).toBe(false);
    expect(finished).toBe(0);
  });

  it('hold no more than the process budget: past it an answer waits for its client, and the budget comes back when they go', async () => {
    const buffering = answerBuffering({ bufferAnswer: 16 * 1_048_576, bufferAnswerTotal: 16 * 1_048_576, sendTimeout: 60_000 });
    const url = await front(buffering);
    const readers = [await stalledReader(url), await stalledReader(url)];
    await eventually(() => finished === 1 && sending === 1, { timeout: 10_000, what: 'one answer held whole, the other waiting for its client' });
    expect(buffering.budget.inUse).toBe(16 * 1_048_576);
    for (const r of readers) r.destroy();
    await eventually(() => buffering.budget.inUse === 0, { what: 'the budget to come back' });
  });
});

describe('the send timeout', () => {
  it('cuts a client that takes none of its answer for FC_SEND_TIMEOUT, and gives its memory back', async () => {
    let cut = 0;
    const buffering = answerBuffering({ bufferAnswer: 16 * 1_048_576, sendTimeout: 1_000 }, () => (cut += 1));
    const url = await front(buffering);
    const began = Date.now();
    const reader = await stalledReader(url);
    await eventually(() => cut === 1, { what: 'the cut' });
    expect(Date.now() - began).toBeGreaterThanOrEqual(900);
    await eventually(() => buffering.budget.inUse === 0, { what: 'the budget to come back' });
    // The client, reading again, finds its answer cut short.
    let received = 0;
    const closed = new Promise((resolve) => reader.once('close', resolve));
    reader.on('data', (d: Buffer) => (received += d.length));
    reader.resume();
    await closed;
    expect(received).toBeLessThan(BIG);
  });

  it('leaves a client that keeps up alone through a long pause in its answer, and holds nothing while it is caught up', async () => {
    let cut = 0;
    const buffering = answerBuffering({ bufferAnswer: 16 * 1_048_576, sendTimeout: 1_000 }, () => (cut += 1));
    const url = await front(buffering);
    const res = await request(`${url}/bursts`);
    let received = 0;
    let inUseInPause = -1;
    res.body.on('data', (d: Buffer) => {
      received += d.length;
      // Caught up with the first burst, in the pause: the reservation is back.
      if (received === BIG) setTimeout(() => (inUseInPause = buffering.budget.inUse), 200);
    });
    await new Promise((resolve, reject) => res.body.once('end', resolve).once('error', reject));
    expect(received).toBe(2 * BIG);
    expect(cut).toBe(0);
    expect(inUseInPause).toBe(0);
  });

  it('leaves a slow reader that keeps reading alone, however long its answer takes', async () => {
    let cut = 0;
    // No holding: the whole answer (1 MiB) waits on the client, which reads a piece every 400 ms.
    const url = await front(answerBuffering({ bufferAnswer: 0, sendTimeout: 1_000 }, () => (cut += 1)));
    const { port } = new URL(url);
    const socket = net.connect(Number(port), '127.0.0.1');
    sockets.push(socket);
    let received = 0;
    socket.on('data', (d: Buffer) => {
      received += d.length;
      socket.pause();
    });
    socket.write('GET /medium HTTP/1.1\r\nHost: site\r\n\r\n');
    const began = Date.now();
    const sips = setInterval(() => socket.resume(), 400);
    try {
      await eventually(() => received > MEDIUM, { timeout: 40_000, interval: 100, what: 'the whole answer, slowly' });
    } finally {
      clearInterval(sips);
    }
    expect(Date.now() - began).toBeGreaterThan(1_000);
    expect(cut).toBe(0);
    expect(socket.destroyed).toBe(false);
  });
});
