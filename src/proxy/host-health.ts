// Which dispatchers the proxy has just seen refuse a connection. A dispatcher killed with
// `kill -9` keeps its heartbeat in the CMDB fresh for up to the host timeout (10 s by default),
// during which every request routed to it would fail the same way; once one connection is refused,
// the host is held suspect for a short while: its containers get no new requests and are not
// counted for the app (a replacement is placed on another host at once). Only a failure to connect
// counts: the request provably never reached the dispatcher, and a dispatcher that answers, even
// with errors, is alive.

/** How long a host stays suspect after its dispatcher refused a connection. */
export const SUSPECT_MS = 3_000;

/** Bound on the hosts remembered; a cluster has far fewer. */
const MAX_SUSPECTS = 1_000;

/** Error codes (of the error or any of its causes) that mean no connection was made. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

/** Whether an error from forwarding says the connection to the upstream was never made. */
export function isConnectFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECT_FAILURES.has(code)) return true;
    // AggregateError (happy eyeballs tried several addresses): all of them failed to connect.
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0 && errors.every(isConnectFailure)) return true;
  }
  return false;
}

export class HostHealth {
  /** Host id to the time until which it is suspect. */
  private readonly suspects = new Map<string, number>();

  constructor(private readonly suspectMs = SUSPECT_MS) {}

  /** Records a failed forward to a host; true when it made the host suspect. */
  failed(hostId: string, err: unknown, now: number): boolean {
    if (!isConnectFailure(err)) return false;
    if (this.suspects.size >= MAX_SUSPECTS && !this.suspects.has(hostId)) this.suspects.clear();
    this.suspects.set(hostId, now + this.suspectMs);
    return true;
  }

  suspect(hostId: string, now: number): boolean {
    const until = this.suspects.get(hostId);
    if (until === undefined) return false;
    if (until > now) return true;
    this.suspects.delete(hostId);
    return false;
  }
}
