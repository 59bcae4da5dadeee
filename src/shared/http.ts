// Small HTTP helpers every role's server uses: JSON and problem+json answers, bounded JSON
// bodies, listening with close() that drains and destroy() that aborts.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { FcError, invalidFields, toFcError } from './errors.js';
import { GracefulClose } from './graceful-close.js';
import { ERROR_HEADER } from './protocol.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Answers an error as RFC 7807 problem+json; retryable errors carry Retry-After. */
export function sendProblem(res: ServerResponse, err: unknown, instance?: string): void {
  const fc = toFcError(err);
  if (res.headersSent) {
    res.destroy(fc);
    return;
  }
  const text = JSON.stringify(fc.toProblem(instance));
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(text),
    [ERROR_HEADER]: fc.code,
    'cache-control': 'no-store',
  };
  if (fc.retryAfter !== undefined) headers['retry-after'] = String(fc.retryAfter);
  res.writeHead(fc.status, headers);
  res.end(text);
}

/** Deepest nesting a JSON body may have: an app spec needs 3; far deeper only breaks recursive code. */
export const MAX_JSON_DEPTH = 32;

/**
 * Where `value` nests deeper than `max` levels, as a field path ("env.A.0"); undefined if it
 * does not. Walks with a stack of its own: a body nested 100,000 deep must not overflow Node's.
 */
export function tooDeep(value: unknown, max = MAX_JSON_DEPTH): string | undefined {
  // A body that is not an object has no field names: its path starts at "(body)".
  const stack: { v: unknown; depth: number; path: string[] }[] = [{ v: value, depth: 0, path: Array.isArray(value) ? ['(body)'] : [] }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop() as { v: unknown; depth: number; path: string[] };
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return path.length === 0 ? '(body)' : path.join('.');
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
    // Only the first levels of the path are kept: they name the field.
    for (const [k, x] of entries) if (x !== null && typeof x === 'object') stack.push({ v: x, depth: depth + 1, path: path.length < 4 ? [...path, k] : path });
  }
  return undefined;
}

export async function readJsonBody(req: IncomingMessage, limitBytes = 1 << 20): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limitBytes) {
      throw new FcError('FC_ERR_BODY_TOO_LARGE', `request body is larger than ${limitBytes} bytes`, { limit: limitBytes });
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    throw new FcError('FC_ERR_INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
  const deep = tooDeep(value);
  if (deep !== undefined) {
    throw invalidFields([{ field: deep, value: `(nested more than ${MAX_JSON_DEPTH} levels deep)`, allowed: `JSON nested at most ${MAX_JSON_DEPTH} levels deep` }]);
  }
  return value;
}

export interface Listening {
  readonly server: http.Server;
  readonly port: number;
  readonly url: string;
  /**
   * Stops accepting, answers in-flight requests (and any that still arrive on open connections)
   * with `Connection: close`, closes idle keep-alive connections; past the drain timeout given to
   * listen(), cuts the rest.
   */
  close(): Promise<void>;
  /** Stops at once, cutting every connection. */
  destroy(): Promise<void>;
}

export interface ListenOptions {
  /**
   * Headers Node parses per request (default 2000); beyond it they are dropped without a word. A
   * server that must notice too many (to refuse them) sets it one above what it accepts.
   */
  maxHeadersCount?: number;
  /** How long close() lets in-flight requests finish before it cuts them (FC_DRAIN_TIMEOUT). */
  drainTimeout?: number;
  /** HTTP Upgrade requests (WebSockets); without it, Node serves them as plain requests. */
  onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** At the drain timeout, before the rest is cut: closes what can be closed politely (WebSockets: 1001). */
  beforeCut?: () => Promise<void>;
}

export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  port: number,
  host: string,
  options: ListenOptions = {},
): Promise<Listening> {
  let graceful: GracefulClose | undefined;
  const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
    graceful?.track(res);
    handler(req, res);
  });
  // Always set: Node's HTTP parsers are pooled per process, and a server that leaves it unset parses
  // with the limit of whichever server used the parser last (the proxy's 1001, in `up`).
  server.maxHeadersCount = options.maxHeadersCount ?? 2000;
  if (options.onUpgrade !== undefined) server.on('upgrade', options.onUpgrade);
  graceful = new GracefulClose(server);
  const drain = graceful;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    server,
    port: address.port,
    url: `http://${shownHost}:${address.port}`,
    close: () => drain.close(options.drainTimeout, options.beforeCut),
    destroy: () => drain.destroy(),
  };
}

/** Hop-by-hop headers (RFC 9110 section 7.6.1) are never forwarded, nor any header named in Connection. */
const hopByHop = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization',
]);

export function isHopByHop(name: string, connectionTokens: ReadonlySet<string>): boolean {
  return hopByHop.has(name) || connectionTokens.has(name);
}

/** Shared by every message without a Connection header (most): never written to. */
const noTokens: ReadonlySet<string> = new Set();

export function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return noTokens;
  const tokens = new Set<string>();
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const t of v.split(',')) {
      const token = t.trim().toLowerCase();
      if (token !== '') tokens.add(token);
    }
  }
  return tokens;
}
