// The contract between the UserProxy and the dispatchers: over HTTP between processes, or, for
// the dispatcher in the proxy's own process (`fastcontainer up`), a direct call (LocalDispatch).

import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request body the proxy has taken from the client: read whole, or streamed under its watch; null: none. */
export type ForwardBody = Buffer | AsyncIterable<Buffer> | null;

/** Request header naming the container entry a proxied request is for. */
export const CONTAINER_HEADER = 'x-fc-container';

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
}
