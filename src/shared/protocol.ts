// The contract between the UserProxy and the dispatchers: over HTTP between processes, or, for
// the dispatcher in the proxy's own process (`fastcontainer up`), a direct call (LocalDispatch).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Tunnel } from './tunnel.js';

/** A request body the proxy has taken from the client: read whole, or streamed under its watch; null: none. */
export type ForwardBody = Buffer | AsyncIterable<Buffer> | null;

/** Request header naming the container entry a proxied request is for. */
export const CONTAINER_HEADER = 'x-fc-container';

/**
 * Request header proving a proxied request comes from a proxy of this installation: an HMAC over
 * method, target, entry id and time with the cluster secret (src/shared/hop-auth.ts).
 */
export const AUTH_HEADER = 'x-fc-auth';

/**
 * Most headers a public request may carry. The proxy adds its own (X-Forwarded-*, x-fc-*) for the
 * hop to the dispatcher, whose server parses at most DISPATCHER_MAX_HEADERS: a request near that
 * would lose the proxy's headers there, so the proxy refuses it (431) long before.
 */
export const PUBLIC_MAX_HEADERS = 1000;

/** Headers the dispatcher's server parses (Node's default); a request with this many may have lost some. */
export const DISPATCHER_MAX_HEADERS = 2000;

/** Response header carrying an FcError code, so the proxy can tell "container gone" from an app's 503. */
export const ERROR_HEADER = 'x-fc-error';

/**
 * The dispatcher of this process, called by the proxy without an HTTP hop. It does what the
 * dispatcher's HTTP handler does for a request with CONTAINER_HEADER: admit (start, hold), forward
 * to the container with `headers` (the proxy's, X-Forwarded-* included) and answer into `res`.
 */
export interface LocalDispatch {
  /** The compute host this dispatcher serves: entries placed there go through serve(). */
  readonly hostId: string;
  /**
   * With retryIfGone, a container gone before anything was sent (drained meanwhile) leaves `res`
   * untouched and resolves with retry: true, so the proxy may try another entry.
   */
  serve(entryId: string, req: IncomingMessage, res: ServerResponse, headers: string[], retryIfGone: boolean, body?: ForwardBody): Promise<{ status: number; retry: boolean }>;
  /**
   * A WebSocket upgrade (the dispatcher's upgrade.ts): admitted like a request, then tunnelled to
   * the container. Resolves once the client has its answer: with the tunnel after a 101; with
   * retryIfGone, a container gone before anything was sent leaves the socket untouched and
   * resolves with retry: true. Absent, upgrades go over HTTP like those for other hosts.
   */
  upgrade?(entryId: string, req: IncomingMessage, socket: Duplex, head: Buffer, headers: string[], retryIfGone: boolean): Promise<{ status: number; tunnel?: Tunnel; retry?: boolean }>;
}
