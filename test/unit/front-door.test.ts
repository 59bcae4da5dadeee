// The front door's pure pieces: how a body is taken, when a body in flight is too slow, who gets
// an app's slot, and which upstream failures allow sending a request again.

import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { admit, AppGate } from '../../src/proxy/app-gate.js';
import { judgeBody, planBody, readBody, type BodyLimits, type BodyProgress } from '../../src/proxy/body-buffer.js';
import { BufferBudget } from '../../src/shared/buffer-budget.js';
import { ManualClock } from '../../src/shared/clock.js';
import { FcError } from '../../src/shared/errors.js';
import { neverSent, upstreamFailure } from '../../src/shared/upstream-errors.js';

describe('planBody', () => {
  it.each([
    [undefined, undefined, 1024, 'none'],
    ['0', undefined, 1024, 'none'],
    ['1024', undefined, 1024, 'buffer'],
    ['1025', undefined, 1024, 'buffer-or-stream'],
    [undefined, 'chunked', 1024, 'buffer-or-stream'],
    [undefined, 'chunked', 0, 'stream'],
    ['10', undefined, 0, 'stream'],
  ] as const)('content-length %s, transfer-encoding %s, buffer %i: %s', (cl, te, buffer, plan) => {
    expect(planBody(cl, te, buffer)).toBe(plan);
  });
});

describe('judgeBody', () => {
  const limits: BodyLimits = { bufferBytes: 1 << 20, minRate: 10_240, bodyTimeout: 30_000, requestTimeout: 300_000 };
  const at = (p: Partial<BodyProgress>): BodyProgress => ({ requestStart: 0, bytes: 0, waitedMs: 0, waitingSince: null, streaming: false, ...p });

  it.each([
    ['a buffered body waiting 10 s', at({ waitingSince: 0 }), 10_000, { ok: true, checkAt: 30_000 }],
    ['a buffered body silent for the body timeout', at({ waitingSince: 5_000 }), 35_000, { ok: false, code: 'FC_ERR_BODY_TIMEOUT' }],
    ['a buffered body at 700 B/s, never judged by rate', at({ waitingSince: 99_000, waitedMs: 99_000, bytes: 69_300 }), 100_000, { ok: true, checkAt: 129_000 }],
    ['any body past the request timeout', at({ waitingSince: 299_000 }), 300_000, { ok: false, code: 'FC_ERR_REQUEST_TIMEOUT' }],
    ['a streamed body within the grace', at({ streaming: true, waitingSince: 0 }), 4_000, { ok: true, checkAt: 5_000 }],
    ['a streamed body at 700 B/s after the grace', at({ streaming: true, waitingSince: 4_900, waitedMs: 4_900, bytes: 3_430 }), 5_000, { ok: false, code: 'FC_ERR_BODY_TOO_SLOW' }],
    ['a streamed body at 1 MB/s', at({ streaming: true, waitingSince: 5_000, waitedMs: 5_000, bytes: 5_000_000 }), 5_000, { ok: true, checkAt: 35_000 }],
    ['a streamed body the proxy is not waiting on (upstream back-pressure)', at({ streaming: true, waitedMs: 60_000, bytes: 10 }), 100_000, { ok: true, checkAt: 300_000 }],
  ] as const)('%s', (_, progress, now, verdict) => {
    expect(judgeBody(progress, now, limits)).toEqual(verdict);
  });

  it('with no minimum rate, a streamed body is judged only by its timeouts', () => {
    expect(judgeBody(at({ streaming: true, waitingSince: 0, waitedMs: 100_000, bytes: 1 }), 10_000, { ...limits, minRate: 0 })).toEqual({ ok: true, checkAt: 30_000 });
  });
});

describe('BufferBudget', () => {
  it('lends bytes up to its limit and takes them back', () => {
    const b = new BufferBudget(100);
    expect(b.take(60)).toBe(true);
    expect(b.take(41)).toBe(false);
    expect(b.take(40)).toBe(true);
    b.give(60);
    expect(b.inUse).toBe(40);
    expect(b.take(60)).toBe(true);
  });
});

describe('admit', () => {
  const l = { concurrency: 2, queue: 1, queueTimeout: 1000 };
  it.each([
    [0, 0, l, 'enter'],
    [1, 0, l, 'enter'],
    [2, 0, l, 'queue'],
    [2, 1, l, 'reject'],
    [2, 0, { ...l, queue: 0 }, 'reject'],
    [2, 0, { ...l, queueTimeout: 0 }, 'reject'],
    // A slot that just came free goes to the waiting ones first, not to a newcomer.
    [1, 1, { ...l, queue: 5 }, 'queue'],
  ] as const)('%i in flight, %i waiting: %s', (inflight, waiting, limits, decision) => {
    expect(admit(inflight, waiting, limits)).toBe(decision);
  });
});

async function outcome(p: Promise<unknown> | unknown): Promise<string> {
  try {
    await p;
    return 'entered';
  } catch (err) {
    return err instanceof FcError ? err.code : (err as Error).message;
  }
}

describe('AppGate', () => {
  const l = { concurrency: 2, queue: 2, queueTimeout: 1000 };

  it('lets an app\'s requests in up to its limit, queues the next ones in order, refuses beyond the queue', async () => {
    const limited: string[] = [];
    const gate = new AppGate(new ManualClock(), (app, o) => limited.push(`${app}:${o}`));
    const client = new EventEmitter();
    const a = gate.enter('a', l, client) as () => void;
    const b = gate.enter('a', l, client) as () => void;
    expect(typeof a).toBe('function');
    const order: string[] = [];
    const c = (gate.enter('a', l, client) as Promise<() => void>).then((r) => (order.push('c'), r));
    const d = (gate.enter('a', l, client) as Promise<() => void>).then((r) => (order.push('d'), r));
    expect(() => gate.enter('a', l, client)).toThrow(/queue is full/);
    // Another app is not affected.
    expect(typeof gate.enter('b', l, client)).toBe('function');
    expect(gate.load('a')).toEqual({ inflight: 2, waiting: 2 });
    a();
    a(); // twice is once
    (await c)();
    b();
    await d;
    expect(order).toEqual(['c', 'd']);
    expect(gate.load('a')).toEqual({ inflight: 1, waiting: 0 });
    expect(limited).toEqual(['a:queued', 'a:queued', 'a:rejected']);
  });

  it('gives up on a request that waited past the queue timeout, and on one whose client went away', async () => {
    const clock = new ManualClock();
    const gate = new AppGate(clock);
    const client = new EventEmitter();
    const gone = new EventEmitter();
    const hold = gate.enter('a', l, client) as () => void;
    gate.enter('a', l, client);
    const late = outcome(gate.enter('a', l, client));
    const leaving = outcome(gate.enter('a', l, gone));
    gone.emit('close');
    expect(await leaving).toBe('client went away');
    await clock.advance(1000);
    expect(await late).toBe('FC_ERR_APP_BUSY');
    expect(gate.load('a')).toEqual({ inflight: 2, waiting: 0 });
    hold();
    expect(gate.load('a')).toEqual({ inflight: 1, waiting: 0 });
  });

  it('forgets an app with nothing in flight', () => {
    const gate = new AppGate(new ManualClock());
    const release = gate.enter('a', l, new EventEmitter()) as () => void;
    release();
    expect(gate.load('a')).toEqual({ inflight: 0, waiting: 0 });
    expect((gate as unknown as { lines: Map<string, unknown> }).lines.size).toBe(0);
  });
});

describe('upstream failures', () => {
  const err = (code: string, message = code) => Object.assign(new Error(message), { code });

  it.each([
    ['ECONNREFUSED', true],
    ['UND_ERR_CONNECT_TIMEOUT', true],
    ['EHOSTUNREACH', true],
    ['ECONNRESET', false],
    ['UND_ERR_SOCKET', false],
    ['UND_ERR_HEADERS_TIMEOUT', false],
    ['EPIPE', false],
  ])('%s: never sent %s', (code, expected) => {
    expect(neverSent(err(code))).toBe(expected);
    // Also when wrapped, as the proxy sees it.
    expect(neverSent(upstreamFailure(err(code), 'the dispatcher').cause)).toBe(expected);
  });

  it('makes no answer in time a 504, keeps the request path\'s own errors, and calls the rest 502', () => {
    expect(upstreamFailure(err('UND_ERR_HEADERS_TIMEOUT'), 'x').code).toBe('FC_ERR_UPSTREAM_TIMEOUT');
    expect(upstreamFailure(err('UND_ERR_HEADERS_TIMEOUT'), 'x').status).toBe(504);
    const own = new FcError('FC_ERR_BODY_TOO_SLOW', 'slow');
    expect(upstreamFailure(own, 'x')).toBe(own);
    expect(upstreamFailure(err('ECONNRESET'), 'x').code).toBe('FC_ERR_UPSTREAM');
  });
});

describe('readBody', () => {
  const limits: BodyLimits = { bufferBytes: 100, minRate: 1000, bodyTimeout: 30_000, requestTimeout: 300_000 };
  /** A request body the test writes, with the headers that frame it. */
  const request = (headers: Record<string, string>) => Object.assign(new PassThrough(), { headers }) as PassThrough & IncomingMessage;
  const tick = () => new Promise((r) => setImmediate(r));

  async function drain(body: AsyncIterable<Buffer>): Promise<string> {
    let out = '';
    for await (const c of body) out += c.toString();
    return out;
  }

  it('reads a small body whole, counting in the budget only what arrived, until released', async () => {
    const clock = new ManualClock();
    const budget = new BufferBudget(1000);
    const req = request({ 'content-length': '100' });
    const reading = readBody(req, limits, clock, budget, clock.now());
    req.write('a'.repeat(30));
    await tick();
    // Announced 100, sent 30: 30 held.
    expect(budget.inUse).toBe(30);
    req.end('b'.repeat(70));
    const body = await reading;
    expect(body.kind).toBe('buffered');
    if (body.kind !== 'buffered') return;
    expect(body.body.toString()).toBe('a'.repeat(30) + 'b'.repeat(70));
    expect(budget.inUse).toBe(100);
    body.release();
    body.release();
    expect(budget.inUse).toBe(0);
  });

  it('streams a body past the buffer: what came first, then the rest, giving the first bytes back', async () => {
    const clock = new ManualClock();
    const budget = new BufferBudget(1000);
    const req = request({ 'transfer-encoding': 'chunked' });
    const reading = readBody(req, limits, clock, budget, clock.now());
    req.write('x'.repeat(60));
    await tick();
    req.write('y'.repeat(60));
    const body = await reading;
    expect(body.kind).toBe('stream');
    if (body.kind !== 'stream') return;
    const sent = drain(body.body);
    req.end('z');
    expect(await sent).toBe(`${'x'.repeat(60)}${'y'.repeat(60)}z`);
    expect(budget.inUse).toBe(0);
  });

  it('streams a small body too when the budget is used up', async () => {
    const clock = new ManualClock();
    const budget = new BufferBudget(10);
    const req = request({ 'content-length': '50' });
    const reading = readBody(req, limits, clock, budget, clock.now());
    req.end('q'.repeat(50));
    const body = await reading;
    expect(body.kind).toBe('stream');
    if (body.kind === 'stream') expect(await drain(body.body)).toBe('q'.repeat(50));
    expect(budget.inUse).toBe(0);
  });

  it('gives up on a body that stalls (408) and gives its bytes back', async () => {
    const clock = new ManualClock();
    const budget = new BufferBudget(1000);
    const req = request({ 'content-length': '100' });
    const reading = outcome(readBody(req, limits, clock, budget, clock.now()));
    req.write('a'.repeat(10));
    await tick();
    await clock.advance(29_999);
    await tick();
    await clock.advance(1);
    expect(await reading).toBe('FC_ERR_BODY_TIMEOUT');
    expect(budget.inUse).toBe(0);
  });

  it('cuts off a streamed body below the minimum rate once the grace is over, not before', async () => {
    const clock = new ManualClock();
    const budget = new BufferBudget(1000);
    const req = request({ 'content-length': '100000' });
    const body = await readBody(req, { ...limits, bufferBytes: 0 }, clock, budget, clock.now());
    expect(body.kind).toBe('stream');
    if (body.kind !== 'stream') return;
    const it = body.body[Symbol.asyncIterator]();
    req.write('a'.repeat(100));
    expect((await it.next()).value?.length).toBe(100);
    const next = outcome(it.next());
    // 100 bytes pay for 100 ms at 1000 B/s; the grace is 5 s of waiting.
    await clock.advance(4_999);
    await tick();
    let settled = false;
    void next.then(() => (settled = true));
    await tick();
    expect(settled).toBe(false);
    await clock.advance(1);
    expect(await next).toBe('FC_ERR_BODY_TOO_SLOW');
  });
});
