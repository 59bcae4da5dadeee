// Forwarding one HTTP request upstream and streaming the answer back, over an undici pool of
// keep-alive connections. Used by the proxy (to a dispatcher) and the dispatcher (to a container).
// Undici's stream() writes the upstream body straight into the client's response: no extra
// stream.pipeline() layer, which on Node 20 costs a large share of a proxy's throughput.

import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { HeldAnswer, type AnswerBuffering } from './answer-buffer.js';
import { connectionTokens, isHopByHop } from './http.js';
import { upstreamFailure } from './upstream-errors.js';

/** True when the request carries a body to stream upstream. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * The request's headers as a flat [name, value, ...] list for upstream: hop-by-hop headers and
 * those `drop` refuses are left out, `add` is appended. Names keep the client's spelling.
 * `Expect: 100-continue` stops here: Node's server has already told the client to go on, and
 * undici refuses to send it.
 */
export function upstreamRequestHeaders(req: IncomingMessage, drop: (lowerName: string) => boolean, add: readonly string[]): string[] {
  const raw = req.rawHeaders;
  const tokens = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower, tokens) || lower === 'expect' || drop(lower)) continue;
    out.push(name, raw[i + 1] as string);
  }
  for (const h of add) out.push(h);
  return out;
}

export interface ForwardRequest {
  pool: Dispatcher;
  req: IncomingMessage;
  res: ServerResponse;
  headers: string[];
  /** Says where the request was going, for error messages. */
  upstream: string;
  /**
   * Looks at the upstream's status and headers before anything reaches the client; true discards
   * the answer so the caller can send the request elsewhere (only for requests whose body can be
   * sent again: none, or one read whole).
   */
  retryIf?: (status: number, headers: Record<string, string | string[] | undefined>) => boolean;
  /** The body to send instead of req's own stream: read whole already, or streamed under watch. */
  body?: Buffer | AsyncIterable<Buffer> | null;
  /** Longest wait (ms) for the upstream's status and headers after the request was sent: past it, 504. */
  headersTimeout?: number;
  /** Holding answers for slow readers, and cutting those that stop (answer-buffer.ts); absent: backpressure only. */
  buffering?: AnswerBuffering;
}

export interface Forwarded {
  status: number;
  /** The answer was discarded because retryIf said so; res is untouched. */
  retry: boolean;
  /** performance.now() when the upstream's status line and headers arrived (0 if they never did). */
  headersAt: number;
  /** Bytes of the answer's body passed on to the client (usage for billing: a counter, no copy). */
  bytesOut: number;
}

/**
 * The upstream's answer, straight from undici's dispatcher into res: no AbortController, stream
 * wrapper or header object per request (the stream() API has all three, a tenth of the proxy's
 * time under load). The raw headers go to writeHead as a flat list, minus hop-by-hop ones.
 */
class ForwardHandler implements Dispatcher.DispatchHandlers {
  private abortUpstream: ((err: Error) => void) | null = null;
  private status = 0;
  private headersAt = 0;
  private retry = false;
  private bytesOut = 0;
  private settled = false;
  private resume: (() => void) | null = null;
  /** Made at the first write the client's socket could not take at once: the answer's way from then on. */
  private held: HeldAnswer | undefined;
  private readonly onClientClose = (): void => {
    if (this.f.res.writableFinished || this.settled) return;
    this.clientGone = true;
    this.abortUpstream?.(new Error('client went away'));
  };
  private clientGone = false;

  constructor(
    private readonly f: ForwardRequest,
    private readonly resolve: (r: Forwarded) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    // on/off rather than once: settle() always takes it off, and once() allocates a wrapper per request.
    f.res.on('close', this.onClientClose);
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) abort(new Error('client went away'));
    else this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, raw: Buffer[] | string[] | null, resume: () => void): boolean {
    // 1xx: Node's server has answered Expect itself; others are not passed on.
    if (statusCode < 200) return true;
    const { res } = this.f;
    this.status = statusCode;
    this.headersAt = performance.now();
    const flat: string[] = [];
    let connection: string | undefined;
    const list = raw ?? [];
    for (let i = 0; i < list.length; i += 2) {
      // latin1: byte for byte what came, as Node writes header strings back out.
      const name = text(list[i]);
      const value = text(list[i + 1]);
      if (name.length === 10 && name.toLowerCase() === 'connection') connection = connection === undefined ? value : `${connection}, ${value}`;
      flat.push(name, value);
    }
    if (this.f.retryIf !== undefined && this.f.retryIf(statusCode, headerObject(flat))) {
      this.retry = true;
      return true;
    }
    const tokens = connectionTokens(connection);
    const out: string[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i] as string;
      if (!isHopByHop(name.toLowerCase(), tokens)) out.push(name, flat[i + 1] as string);
    }
    res.writeHead(statusCode, out);
    this.resume = resume;
    res.on('drain', resume);
    return !res.writableNeedDrain;
  }

  onData(chunk: Buffer): boolean {
    if (this.retry) return true;
    this.bytesOut += chunk.length;
    const { res, buffering } = this.f;
    if (this.held?.active === true) return this.held.push(chunk);
    if (res.write(chunk)) return true;
    // HTTP/2 clients (the TLS listener's compatibility responses) get backpressure only: their
    // streams have flow control of their own, and none of the counts HeldAnswer reads.
    // A pipelined answer still queued behind another has no socket (nor a 'close' when its client
    // goes): it waits as before, holding nothing.
    if (buffering === undefined || this.resume === null || !(res instanceof ServerResponse) || res.socket === null) return false;
    if (this.held === undefined) {
      // It watches 'drain' from now on, and resumes the upstream itself.
      res.off('drain', this.resume);
      this.held = new HeldAnswer(res, buffering, this.resume);
    }
    return this.held.blocked();
  }

  onComplete(): void {
    // A held answer ends after its last held chunk; a discarded one (retry) has nothing to end.
    if (this.held !== undefined) this.held.end();
    else if (!this.retry) this.f.res.end();
    this.settle();
    this.resolve({ status: this.status, retry: this.retry, headersAt: this.headersAt, bytesOut: this.bytesOut });
  }

  onError(err: Error): void {
    if (this.settled) return;
    this.settle();
    const { res } = this.f;
    if (this.retry) return this.resolve({ status: this.status, retry: true, headersAt: this.headersAt, bytesOut: this.bytesOut });
    if (res.headersSent) {
      // Cut mid-answer: the client must not take a short body for a whole one.
      res.destroy(err);
      return this.resolve({ status: this.status, retry: false, headersAt: this.headersAt, bytesOut: this.bytesOut });
    }
    if (this.clientGone) return this.resolve({ status: 499, retry: false, headersAt: this.headersAt, bytesOut: this.bytesOut });
    this.reject(upstreamFailure(err, this.f.upstream));
  }

  private settle(): void {
    this.settled = true;
    this.f.res.off('close', this.onClientClose);
    if (this.resume !== null) this.f.res.off('drain', this.resume);
  }
}

const text = (v: Buffer | string | undefined): string => (typeof v === 'string' ? v : v === undefined ? '' : v.toString('latin1'));

/** Headers as an object with lower-case names, for retryIf. */
function headerObject(flat: readonly string[]): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = (flat[i] as string).toLowerCase();
    const value = flat[i + 1] as string;
    const had = out[name];
    out[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  return out;
}

/**
 * Sends the request through the pool and streams the answer into res. Resolves with the upstream
 * status. Rejects when the upstream failed before answering (upstreamFailure: 502, 504 past
 * headersTimeout, or the body's own 408; nothing has been written to res then, so the caller may
 * answer, or retry when neverSent() says so); a failure mid-answer cuts res. A client
 * gone before the answer ends aborts the upstream request (499).
 */
export function forward(f: ForwardRequest): Promise<Forwarded> {
  const { req } = f;
  return new Promise<Forwarded>((resolve, reject) => {
    const handler = new ForwardHandler(f, resolve, reject);
    const body = f.body !== undefined ? f.body : hasBody(req) ? req : null;
    // A client that breaks off its upload fails the request (undici sees the stream end early).
    if (body === req) req.once('error', (err) => handler.onError(err));
    try {
      f.pool.dispatch({
        // undici takes async iterables as bodies too (its types say only Readable).
        path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers: f.headers, body: body as Dispatcher.DispatchOptions['body'],
        ...(f.headersTimeout === undefined ? {} : { headersTimeout: f.headersTimeout }),
      }, handler);
    } catch (err) {
      handler.onError(err as Error);
    }
  });
}
