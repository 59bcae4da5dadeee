// Proof that a request reaching a dispatcher's port was sent by a proxy of this installation.
// Tenants' code runs on the same machines as the dispatchers: without this, anything that can
// open a connection to a dispatcher could name another tenant's container entry (x-fc-container)
// and be served its pages. Each proxied request carries `x-fc-auth: v1.<ms>.<mac>`, an HMAC-SHA256
// with the cluster secret over what decides what the dispatcher does with it:
//
//   v1 \n <method> \n <request target> \n <entry id> \n <ms since the epoch>
//
// so a signature taken from one request cannot serve another method, path or container, and
// expires after the window (both ways, for clocks that differ between hosts).
//
// Replay of the same signed request within the window is not prevented (it would need a shared
// record of seen nonces on the hot path). Who could replay it must first have seen it: the header
// never reaches a tenant (the dispatcher strips every x-fc-* header before the container), so only
// someone on the wire between a proxy and a dispatcher, who can read and send the plain HTTP of
// that hop anyway. Against them the hop needs a private network (or TLS), not a nonce. The body is
// not signed for the same reason (and because it is streamed, never held).
//
// Worked example: secret "s", GET /a of entry e1 at 1700000000000 signs
// "v1\nGET\n/a\ne1\n1700000000000"; at the dispatcher, with a 30 s window, a header with that
// timestamp verifies until 1700000030000; the same header on POST /a, GET /b or entry e2: forged.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const VERSION = 'v1';
/** Timestamps are integer milliseconds (at most 15 digits); the MAC is 32 bytes in base64url (43). */
const HEADER_PATTERN = /^v1\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;

export interface HopClaim {
  method: string;
  /** The request target as sent on the request line (origin form). */
  target: string;
  entryId: string;
}

export type HopVerdict =
  | { ok: true }
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'forged'; detail: string };

/** A new random cluster secret: 32 bytes, base64url. */
export function newClusterSecret(): string {
  return randomBytes(32).toString('base64url');
}

export class HopAuth {
  private readonly key: Buffer;

  /**
   * @param secret the cluster secret (every proxy and dispatcher of one installation has the same)
   * @param windowMs how far a signature's time may be from the verifier's clock, either way
   */
  constructor(secret: string, readonly windowMs: number) {
    if (secret.length < 16) throw new Error('the cluster secret must have at least 16 characters');
    this.key = Buffer.from(secret, 'utf8');
  }

  /** The x-fc-auth value for a request sent at `now`. */
  sign(claim: HopClaim, now: number): string {
    const ts = String(Math.floor(now));
    return `${VERSION}.${ts}.${this.mac(claim, ts).toString('base64url')}`;
  }

  verify(header: string | string[] | undefined, claim: HopClaim, now: number): HopVerdict {
    if (header === undefined || header === '') return { ok: false, reason: 'missing', detail: 'no x-fc-auth header' };
    if (typeof header !== 'string') return { ok: false, reason: 'malformed', detail: 'more than one x-fc-auth header' };
    const m = HEADER_PATTERN.exec(header);
    if (m === null) return { ok: false, reason: 'malformed', detail: 'x-fc-auth is not v1.<ms>.<mac>' };
    const ts = m[1] as string;
    const given = Buffer.from(m[2] as string, 'base64url');
    const expected = this.mac(claim, ts);
    // Compared before the time so a forger learns nothing from which check failed first.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return { ok: false, reason: 'forged', detail: 'the signature does not match this request' };
    }
    const skew = now - Number(ts);
    if (Math.abs(skew) > this.windowMs) {
      return { ok: false, reason: 'stale', detail: `signed ${skew} ms ${skew >= 0 ? 'ago' : 'ahead'}, outside the window of ${this.windowMs} ms` };
    }
    return { ok: true };
  }

  private mac(claim: HopClaim, ts: string): Buffer {
    return createHmac('sha256', this.key)
      .update(`${VERSION}\n${claim.method}\n${claim.target}\n${claim.entryId}\n${ts}`)
      .digest();
  }
}
