// Errors as the public sees them: whoever sent a request through the proxy learns what went wrong
// (the code, a title, Retry-After) and a request id, never where: no container or host id, no
// internal address, image or runtime message. Those go to the log under the same request id, and,
// for a failed start, into the container entry's lastError, which the operator reads with `ps`.
// The CoreAPI (operator-facing, token holders) keeps answering with details (http.ts sendProblem).

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorCatalog, toFcError, type FcError } from './errors.js';
import type { Logger } from './logger.js';
import { ERROR_HEADER } from './protocol.js';

/** Request header the proxy sets on every request it forwards, and error answers carry back. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** A request id: random, so a client can neither guess another's nor choose its own. */
export function newRequestId(): string {
  return randomUUID();
}

/**
 * The request id the proxy gave a request: from the headers it forwards (in process) or the
 * request's own (over the signed hop, where the proxy has replaced any the client sent).
 */
export function requestIdOf(req: IncomingMessage, forwarded?: readonly string[]): string {
  if (forwarded !== undefined) {
    for (let i = 0; i < forwarded.length; i += 2) {
      if ((forwarded[i] as string).toLowerCase() === REQUEST_ID_HEADER) return forwarded[i + 1] as string;
    }
  }
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && given !== '' ? given : newRequestId();
}

/** The problem+json body a public client gets: what, not where. */
export function publicProblem(err: FcError, requestId: string): Record<string, unknown> {
  const kind = errorCatalog[err.code];
  return {
    type: `urn:fastcontainer:error:${err.code}`,
    title: kind.title,
    status: err.status,
    detail: err.status >= 500 ? `${kind.title} (request ${requestId}; the platform's log has the details)` : kind.title,
    code: err.code,
    requestId,
  };
}

/** Codes a busy system, or a scanner, causes often: their details are logged at debug, not warn. */
const routine = new Set<string>(['FC_ERR_QUEUE_FULL', 'FC_ERR_CONTAINER_GONE', 'FC_ERR_UNKNOWN_HOST', 'FC_ERR_TOO_MANY_HEADERS', 'FC_ERR_BAD_REQUEST']);

/**
 * Answers an error to a public client (or cuts the answer if it had begun) and logs the details
 * with the request id. `context` is logged too (app, container: the operator's to see).
 */
export function sendPublicProblem(res: ServerResponse, err: unknown, requestId: string, log: Logger, context: Record<string, unknown> = {}): void {
  const fc = toFcError(err);
  const entry = { requestId, code: fc.code, status: fc.status, detail: fc.message, ...fc.details, ...context };
  if (fc.code === 'FC_ERR_INTERNAL') log.error({ ...entry, err }, 'request failed');
  else if (routine.has(fc.code) || fc.status < 500) log.debug(entry, 'request answered with an error');
  else log.warn(entry, 'request failed');
  if (res.headersSent) {
    res.destroy(fc);
    return;
  }
  const text = JSON.stringify(publicProblem(fc, requestId));
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(text),
    [ERROR_HEADER]: fc.code,
    [REQUEST_ID_HEADER]: requestId,
    'cache-control': 'no-store',
  };
  if (fc.retryAfter !== undefined) headers['retry-after'] = String(fc.retryAfter);
  res.writeHead(fc.status, headers);
  res.end(text);
}
