// Forwarding one HTTP request upstream and streaming the answer back, over an undici pool of
// keep-alive connections. Used by the proxy (to a dispatcher) and the dispatcher (to a container).
// Undici's stream() writes the upstream body straight into the client's response: no extra
// stream.pipeline() layer, which on Node 20 costs a large share of a proxy's throughput.

import type { IncomingMessage, ServerResponse, OutgoingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { FcError } from './errors.js';
import { connectionTokens, isHopByHop } from './http.js';

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

function responseHeaders(headers: Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const tokens = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (!isHopByHop(name, tokens)) out[name] = headers[name];
  }
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
   * the answer so the caller can send the request elsewhere (only for requests without a body).
   */
  retryIf?: (status: number, headers: Record<string, string | string[] | undefined>) => boolean;
}

export interface Forwarded {
  status: number;
  /** The answer was discarded because retryIf said so; res is untouched. */
  retry: boolean;
  /** performance.now() when the upstream's status line and headers arrived (0 if they never did). */
  headersAt: number;
}

/** Swallows an answer the caller decided not to pass on. */
const discard = () => new Writable({ write: (_chunk, _enc, cb) => cb() });

/**
 * Sends the request through the pool and streams the answer into res. Resolves with the upstream
 * status. Rejects with FC_ERR_UPSTREAM when the upstream failed before answering (nothing has been
 * written to res then, so the caller may answer or retry); a failure mid-answer cuts res.
 */
export function forward(f: ForwardRequest): Promise<Forwarded> {
  const { req, res } = f;
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);
  let status = 0;
  let retry = false;
  let headersAt = 0;
  return new Promise<Forwarded>((resolve, reject) => {
    f.pool.stream(
      {
        path: req.url ?? '/',
        method: req.method as Dispatcher.HttpMethod,
        headers: f.headers,
        body: hasBody(req) ? req : null,
        signal: abort.signal,
        opaque: res,
      },
      ({ statusCode, headers }) => {
        status = statusCode;
        headersAt = performance.now();
        if (f.retryIf?.(statusCode, headers) === true) {
          retry = true;
          return discard();
        }
        res.writeHead(statusCode, responseHeaders(headers));
        return res;
      },
      (err) => {
        res.off('close', onClose);
        if (err === null || retry) return resolve({ status, retry, headersAt });
        if (res.headersSent) {
          res.destroy(err);
          return resolve({ status, retry, headersAt });
        }
        if (abort.signal.aborted) return resolve({ status: 499, retry: false, headersAt });
        reject(new FcError('FC_ERR_UPSTREAM', `${f.upstream} failed: ${err.message}`, { upstream: f.upstream }, { cause: err }));
      },
    );
  });
}
