// Request bodies at the front door. A small body is read whole before the request takes any
// upstream slot (nginx's `proxy_request_buffering`): a client that uploads at 700 B/s then holds
// only its own socket and a buffer here, never one of the few connections to the app's container.
// Of a large body the first FC_BUFFER_BODY bytes are read the same way, so only a client that has
// shown it can send gets a slot; the rest is streamed, while the client keeps a minimum rate.
// Either way the wait for the next piece (FC_BODY_TIMEOUT) and for the whole body
// (FC_REQUEST_TIMEOUT) are bounded: 408.
//
// Only the time the proxy spends waiting on the client counts against its rate and its idle time:
// while the upstream is slow to take a streamed body (back-pressure), the client is not to blame.

import type { IncomingMessage } from 'node:http';
import type { Clock, Timer } from '../shared/clock.js';
import type { BufferBudget } from '../shared/buffer-budget.js';
import { FcError } from '../shared/errors.js';

export interface BodyLimits {
  /** FC_BUFFER_BODY: bodies up to this many bytes are read whole first. */
  bufferBytes: number;
  /** FC_BODY_MIN_RATE, bytes per second a streamed body must keep; 0: none. */
  minRate: number;
  /** FC_BODY_TIMEOUT, ms: longest wait for the next piece. */
  bodyTimeout: number;
  /** FC_REQUEST_TIMEOUT, ms: longest time for the whole body, from the request's start. */
  requestTimeout: number;
  /** Waiting time before a streamed body's rate is first judged; RATE_GRACE_MS unless a test says otherwise. */
  rateGrace?: number;
}

/** A streamed body's rate is first judged after this much time waiting on its client. */
export const RATE_GRACE_MS = 5_000;

export type BodyPlan = 'none' | 'buffer' | 'stream' | 'buffer-or-stream';

/**
 * How a request's body is taken, from its framing: none; a Content-Length within the buffer is
 * read whole; a larger one, or a chunked body (length unknown), is read up to the buffer's size
 * first and streamed from there on. With no buffer, every body is streamed.
 */
export function planBody(contentLength: string | undefined, transferEncoding: string | undefined, bufferBytes: number): BodyPlan {
  if (transferEncoding === undefined) {
    if (contentLength === undefined) return 'none';
    const length = Number(contentLength);
    if (length === 0) return 'none';
    if (length <= bufferBytes) return 'buffer';
  }
  return bufferBytes > 0 ? 'buffer-or-stream' : 'stream';
}

export interface BodyProgress {
  /** When the request reached the proxy (ms). */
  requestStart: number;
  /** Body bytes received so far. */
  bytes: number;
  /** Time spent waiting on the client, in waits that have ended (ms). */
  waitedMs: number;
  /** Start of the current wait on the client, or null while the proxy is not waiting on it. */
  waitingSince: number | null;
  /** The body is being streamed upstream (the minimum rate applies). */
  streaming: boolean;
}

export type BodyTimeoutCode = 'FC_ERR_REQUEST_TIMEOUT' | 'FC_ERR_BODY_TIMEOUT' | 'FC_ERR_BODY_TOO_SLOW';
export type BodyVerdict = { ok: true; checkAt: number } | { ok: false; code: BodyTimeoutCode };

/**
 * Whether a body still in flight may go on, and when to look again. Pure.
 *
 * Worked example, minRate 10 KiB/s, bodyTimeout 30 s, requestTimeout 300 s: a 5 MiB upload at
 * 700 B/s is judged after 5 s of waiting on it (RATE_GRACE_MS); it has sent 3.5 KB where 50 KiB
 * were due: FC_ERR_BODY_TOO_SLOW. The same upload at 1 MB/s has 5 MB after 5 s, enough until
 * 500 s of waiting, so it is next looked at when its idle or total time would run out.
 */
export function judgeBody(p: BodyProgress, now: number, l: BodyLimits): BodyVerdict {
  const totalEnd = p.requestStart + l.requestTimeout;
  if (now >= totalEnd) return { ok: false, code: 'FC_ERR_REQUEST_TIMEOUT' };
  let checkAt = totalEnd;
  if (p.waitingSince !== null) {
    const idleEnd = p.waitingSince + l.bodyTimeout;
    if (now >= idleEnd) return { ok: false, code: 'FC_ERR_BODY_TIMEOUT' };
    checkAt = Math.min(checkAt, idleEnd);
    if (p.streaming && l.minRate > 0) {
      const waited = p.waitedMs + (now - p.waitingSince);
      // The bytes so far pay for this much waiting at the minimum rate, never less than the grace.
      const paidFor = Math.max(l.rateGrace ?? RATE_GRACE_MS, (p.bytes / l.minRate) * 1000);
      if (waited >= paidFor) return { ok: false, code: 'FC_ERR_BODY_TOO_SLOW' };
      checkAt = Math.min(checkAt, now + (paidFor - waited));
    }
  }
  return { ok: true, checkAt };
}

function bodyTimeoutError(code: BodyTimeoutCode, l: BodyLimits): FcError {
  const message =
    code === 'FC_ERR_REQUEST_TIMEOUT' ? `the request body did not arrive within ${l.requestTimeout} ms`
    : code === 'FC_ERR_BODY_TIMEOUT' ? `no part of the request body arrived for ${l.bodyTimeout} ms`
    : `the request body arrived slower than ${l.minRate} bytes per second`;
  return new FcError(code, message);
}

/** The client broke off its request while the proxy read the body: nobody is left to answer. */
export class ClientGone extends Error {
  constructor(cause: unknown) {
    super('the client went away while sending its request body', { cause });
    this.name = 'ClientGone';
  }
}

/**
 * Watches one body in flight: counts bytes and the time spent waiting on the client, and fails
 * the wait under way (or the next one) when judgeBody says so. One timer, re-armed only when the
 * next look is due earlier than the armed one or when it fires.
 */
class BodyWatch {
  readonly p: BodyProgress;
  private timer: Timer | undefined;
  private timerAt = Number.POSITIVE_INFINITY;
  private failure: FcError | undefined;
  private failWait: ((err: Error) => void) | undefined;
  private stopped = false;

  constructor(private readonly clock: Clock, private readonly limits: BodyLimits, requestStart: number, streaming: boolean) {
    this.p = { requestStart, bytes: 0, waitedMs: 0, waitingSince: null, streaming };
  }

  /** Waits on the client for `next`, within the limits. */
  wait<T>(next: Promise<T>): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.p.waitingSince = this.clock.now();
    this.look();
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.failWait = reject;
      next.then(
        (v) => {
          this.endWait();
          resolve(v);
        },
        (err: unknown) => {
          this.endWait();
          reject(err);
        },
      );
    });
  }

  received(bytes: number): void {
    this.p.bytes += bytes;
  }

  stream(): void {
    this.p.streaming = true;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private endWait(): void {
    this.failWait = undefined;
    if (this.p.waitingSince !== null) this.p.waitedMs += this.clock.now() - this.p.waitingSince;
    this.p.waitingSince = null;
  }

  private look(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    const v = judgeBody(this.p, now, this.limits);
    if (!v.ok) {
      this.failure = bodyTimeoutError(v.code, this.limits);
      this.stop();
      this.failWait?.(this.failure);
      return;
    }
    if (v.checkAt >= this.timerAt && this.timer !== undefined) return;
    this.timer?.cancel();
    this.timerAt = v.checkAt;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
      this.look();
    }, Math.max(1, v.checkAt - now));
  }
}

export type RequestBody =
  | { kind: 'none' }
  /** Read whole; release() gives its bytes back to the budget once the request is done. */
  | { kind: 'buffered'; body: Buffer; release(): void }
  /**
   * Streamed upstream as it arrives, within the minimum rate, after what was read first; release()
   * gives those first bytes back (done by the stream once it has sent them, or by the caller when
   * the request ends without it).
   */
  | { kind: 'stream'; body: AsyncIterable<Buffer>; release(): void };

const NONE: RequestBody = { kind: 'none' };

/**
 * Takes a request's body as planBody says. Rejects with a 408 FcError when the client is too slow
 * while it is read, and with ClientGone when it breaks off; a streamed body fails the same way
 * later, inside the upstream request. The budget counts the bytes held, as they arrive: a client
 * that only announces a large body holds none of it.
 */
export async function readBody(req: IncomingMessage, limits: BodyLimits, clock: Clock, budget: BufferBudget, requestStart: number): Promise<RequestBody> {
  const plan = planBody(req.headers['content-length'], req.headers['transfer-encoding'], limits.bufferBytes);
  if (plan === 'none') return NONE;
  let taken = 0;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    budget.give(taken);
  };
  const watch = new BodyWatch(clock, limits, requestStart, plan === 'stream');
  // Made only once the body is read: a stream never pulled (the request refused before it was
  // forwarded) is left as it is, so the server can drain or close the connection.
  if (plan === 'stream') return { kind: 'stream', body: streamed([], () => req[Symbol.asyncIterator]() as AsyncIterator<Buffer>, watch, release), release };
  const it = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  try {
    for (;;) {
      const r = await watch.wait(it.next()).catch((err: unknown) => {
        throw err instanceof FcError ? err : new ClientGone(err);
      });
      if (r.done) break;
      const chunk = r.value;
      watch.received(chunk.length);
      chunks.push(chunk);
      if (watch.p.bytes > limits.bufferBytes || !budget.take(chunk.length)) {
        // Longer than the buffer, or no room left in the budget: what came so far goes first, the
        // rest is streamed, at the minimum rate.
        watch.stream();
        return { kind: 'stream', body: streamed(chunks, () => it, watch, release), release };
      }
      taken += chunk.length;
    }
  } catch (err) {
    watch.stop();
    release();
    throw err;
  }
  watch.stop();
  return { kind: 'buffered', body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks), release };
}

/** The rest of a body, as undici pulls it: `first` then the client's stream, within the limits. */
async function* streamed(first: Buffer[], source: () => AsyncIterator<Buffer>, watch: BodyWatch, sentFirst: () => void): AsyncGenerator<Buffer> {
  try {
    for (const chunk of first) yield chunk;
    sentFirst();
    const it = source();
    for (;;) {
      const r = await watch.wait(it.next()).catch((err: unknown) => {
        throw err instanceof FcError ? err : new ClientGone(err);
      });
      if (r.done) return;
      watch.received(r.value.length);
      yield r.value;
    }
  } finally {
    watch.stop();
  }
}
