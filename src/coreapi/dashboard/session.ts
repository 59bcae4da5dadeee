// The dashboard's login: the operator pastes a CoreAPI token once and gets a session cookie for
// it, so the page's scripts never hold the token (HttpOnly) and other sites cannot send it
// (SameSite=Strict). The cookie is signed, not stored: "v1.<access>.<expiry>.<nonce>.<mac>",
// the mac an HMAC-SHA256 keyed by the token it was made from. So any CoreAPI replica that has
// the same tokens accepts it, and changing a token ends every session made from it. Logging out
// clears the cookie and remembers its nonce until it would have expired (in this process only:
// another replica would still take a copy of the cookie until its expiry).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { FcError } from '../../shared/errors.js';

export type Access = 'write' | 'read';

export const SESSION_COOKIE = 'fc_session';
/** A session lasts 12 hours: a working day, after which the token is asked for again. */
export const SESSION_TTL_MS = 12 * 3600 * 1000;
/** The header every cookie-authenticated write must carry (see checkSameOrigin). */
export const CSRF_HEADER = 'x-fc-csrf';
/** Logged-out nonces kept at most; past it the oldest are forgotten (their cookies are cleared anyway). */
const MAX_REVOKED = 10_000;

export interface SessionTokens {
  /** The admin token: sessions made from it may write. */
  token: string;
  readToken: string;
}

export class Sessions {
  /** nonce -> expiry of logged-out sessions. */
  private readonly revoked = new Map<string, number>();

  constructor(private readonly tokens: SessionTokens) {}

  /** Which access a pasted token gives, compared in constant time; null when it is neither token. */
  accessOfToken(given: string): Access | null {
    if (same(given, this.tokens.token)) return 'write';
    return same(given, this.tokens.readToken) ? 'read' : null;
  }

  /** A new session's cookie value. */
  mint(access: Access, now: number): { value: string; expiresAt: number } {
    const expiresAt = now + SESSION_TTL_MS;
    const body = `v1.${access}.${expiresAt}.${randomBytes(12).toString('base64url')}`;
    return { value: `${body}.${this.mac(access, body)}`, expiresAt };
  }

  /** The access a cookie value gives at `now`, or null when it is forged, expired or logged out. */
  verify(value: string, now: number): { access: Access; nonce: string; expiresAt: number } | null {
    const parts = value.split('.');
    if (parts.length !== 5 || parts[0] !== 'v1') return null;
    const [, access, exp, nonce, mac] = parts as [string, string, string, string, string];
    if (access !== 'write' && access !== 'read') return null;
    const expiresAt = Number(exp);
    if (!/^\d{1,15}$/.test(exp) || expiresAt <= now) return null;
    if (!same(mac, this.mac(access, parts.slice(0, 4).join('.')))) return null;
    if (this.revoked.has(nonce)) return null;
    return { access, nonce, expiresAt };
  }

  /** Ends a session on this process (logout). */
  revoke(nonce: string, expiresAt: number, now: number): void {
    for (const [n, exp] of this.revoked) if (exp <= now) this.revoked.delete(n);
    while (this.revoked.size >= MAX_REVOKED) this.revoked.delete(this.revoked.keys().next().value as string);
    this.revoked.set(nonce, expiresAt);
  }

  /** The session the request's cookie carries, if any and valid. */
  fromRequest(req: IncomingMessage, now: number): { access: Access; nonce: string; expiresAt: number } | null {
    const value = cookieValue(req.headers.cookie, SESSION_COOKIE);
    return value === undefined ? null : this.verify(value, now);
  }

  private mac(access: Access, body: string): string {
    const key = access === 'write' ? this.tokens.token : this.tokens.readToken;
    return createHmac('sha256', key).update(`fc-dashboard-session.${body}`).digest('base64url');
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether the page was reached over HTTPS (directly, or through a TLS-terminating proxy that says so). */
export function isHttps(req: IncomingMessage): boolean {
  const socket = req.socket as { encrypted?: boolean };
  const proto = req.headers['x-forwarded-proto'];
  return socket.encrypted === true || (typeof proto === 'string' && proto.split(',')[0]?.trim().toLowerCase() === 'https');
}

/** The Set-Cookie value of a session; Secure when the page came over HTTPS. */
export function sessionCookie(req: IncomingMessage, value: string, maxAgeMs: number): string {
  return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}; HttpOnly; SameSite=Strict${isHttps(req) ? '; Secure' : ''}`;
}

/**
 * Refuses a cookie-authenticated write that another site could have made the browser send.
 * SameSite=Strict already keeps the cookie off cross-site requests; on top, the write must carry
 * a custom header (a cross-origin page can add one only after a CORS preflight, which the CoreAPI
 * never grants), and its Origin, when the browser sends one, must be this server's own.
 */
export function checkSameOrigin(req: IncomingMessage): void {
  if (req.headers[CSRF_HEADER] !== '1') {
    throw new FcError('FC_ERR_CSRF', `a write with the dashboard's session cookie needs the header "${CSRF_HEADER}: 1" (scripts: use "Authorization: Bearer <token>" instead)`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const own = `${isHttps(req) ? 'https' : 'http'}://${req.headers.host ?? ''}`;
    if (origin.toLowerCase() !== own.toLowerCase()) throw new FcError('FC_ERR_CSRF', `a write with the dashboard's session cookie must come from the dashboard's own origin (${own}), not ${origin.slice(0, 100)}`);
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new FcError('FC_ERR_CSRF', `a write with the dashboard's session cookie must come from the dashboard itself (Sec-Fetch-Site: ${String(site).slice(0, 40)})`);
  }
}
