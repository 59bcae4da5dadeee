// What a failed upstream request means for the client and for a retry. Pure: an error in, a
// classification out. The rule the proxy builds on: a request may go to another container only
// when it provably never reached the app, i.e. the connection failed before anything was written
// (undici writes a request only on a connected socket). A reset or close after that may have come
// after the app began work, so it is answered, never sent again.

import { FcError } from './errors.js';

/** Errors of establishing a connection: the request was never written. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN',
  'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL',
]);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True when err (or the error it wraps) says the connection failed before the request was written. */
export function neverSent(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = codeOf(e);
    if (code !== undefined && NOT_SENT_CODES.has(code)) return true;
  }
  return false;
}

/**
 * The FcError to answer for an upstream failure before any answer: one the request path raised
 * itself (a client too slow with its body: 408) stays as it is; no answer within the upstream
 * timeout is 504; anything else is 502, with the cause kept for neverSent().
 */
export function upstreamFailure(err: unknown, upstream: string): FcError {
  if (err instanceof FcError) return err;
  const code = codeOf(err);
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return new FcError('FC_ERR_UPSTREAM_TIMEOUT', `${upstream} did not start its answer in time`, { upstream }, { cause: err });
  }
  return new FcError('FC_ERR_UPSTREAM', `${upstream} failed: ${(err as Error | undefined)?.message ?? String(err)}`, { upstream }, { cause: err });
}
