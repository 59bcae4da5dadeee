// The door of the dispatcher's port: only requests a proxy of this installation signed get in.
// Everything else (a tenant's code calling the host's address, a scanner, a request that lost its
// proxy's headers on the way) is answered 403 here, before any container entry is looked up,
// started or forwarded to. The port serves nothing else: the dispatcher's own endpoints are on
// the process's admin listener.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Counter } from 'prom-client';
import type { Clock } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';
import type { HopAuth } from '../shared/hop-auth.js';
import { sendProblem } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { responseOn } from '../shared/tunnel.js';
import { AUTH_HEADER, CONTAINER_HEADER, DISPATCHER_MAX_HEADERS } from '../shared/protocol.js';

export interface HopGateDeps {
  auth: HopAuth;
  clock: Clock;
  logger: Logger;
  /** Counts refusals by reason. */
  rejected: Counter<'reason'>;
  /** Headers the server parses at most (its maxHeadersCount). */
  maxHeaders?: number;
}

/** Refusals are logged at most this often (with how many there were): a flood must not flood the log. */
const LOG_EVERY_MS = 1000;

/** The dispatcher port's handler: `serve` gets only signed requests, with their entry id. */
export function hopGate(d: HopGateDeps, serve: (entryId: string, req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  const check = hopCheck(d);
  return (req, res) => {
    const entryId = check(req, () => res);
    if (entryId !== undefined) serve(entryId, req, res);
  };
}

/**
 * The same gate for upgrades (WebSockets): the signature covers GET, the target and the entry as
 * for any request; a refusal is answered on the raw socket, which then closes.
 */
export function hopGateUpgrade(d: HopGateDeps, serve: (entryId: string, req: IncomingMessage, socket: Duplex, head: Buffer) => void): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const check = hopCheck(d);
  return (req, socket, head) => {
    socket.on('error', () => undefined);
    const entryId = check(req, () => responseOn(req, socket));
    if (entryId !== undefined) serve(entryId, req, socket, head);
  };
}

/** The entry id of a signed request; undefined once an unsigned one has been answered 403. */
function hopCheck(d: HopGateDeps): (req: IncomingMessage, res: () => ServerResponse) => string | undefined {
  const maxHeaders = d.maxHeaders ?? DISPATCHER_MAX_HEADERS;
  let lastLog = -Infinity;
  let unlogged = 0;
  const refuse = (req: IncomingMessage, answer: () => ServerResponse, reason: string, detail: string, err: FcError) => {
    const res = answer();
    d.rejected.inc({ reason });
    const now = d.clock.now();
    unlogged++;
    if (now - lastLog >= LOG_EVERY_MS) {
      d.logger.warn({ reason, detail, from: req.socket.remoteAddress, method: req.method, refusedSinceLastLog: unlogged }, 'refused a request on the dispatcher port');
      lastLog = now;
      unlogged = 0;
    }
    // The body (if any) is not read: the connection goes with the answer.
    res.setHeader('connection', 'close');
    sendProblem(res, err);
  };
  return (req, res): string | undefined => {
    // Node drops headers past maxHeadersCount without a word: a request that reaches the limit
    // may have lost the proxy's, and is never taken for anything.
    if (req.rawHeaders.length / 2 >= maxHeaders) {
      refuse(req, res, 'too-many-headers', `${req.rawHeaders.length / 2} headers`, new FcError('FC_ERR_TOO_MANY_HEADERS', 'the request carries too many header fields'));
      return undefined;
    }
    const entryId = req.headers[CONTAINER_HEADER];
    const forbidden = new FcError('FC_ERR_HOP_FORBIDDEN', 'this port serves only requests signed by a proxy of this installation');
    if (typeof entryId !== 'string' || entryId === '') {
      refuse(req, res, 'missing', `no ${CONTAINER_HEADER}`, forbidden);
      return undefined;
    }
    const verdict = d.auth.verify(req.headers[AUTH_HEADER], { method: req.method ?? '', target: req.url ?? '', entryId }, d.clock.now());
    if (!verdict.ok) {
      refuse(req, res, verdict.reason, verdict.detail, forbidden);
      return undefined;
    }
    return entryId;
  };
}
