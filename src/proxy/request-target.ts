// The request target and Host of a public request, as the proxy routes and forwards it: pure
// parsing, and routePublicRequest, which applies it to a request (plain or upgrade) before routing.
//
// RFC 9112 §3.2.2: a request in absolute form (`GET http://site/x HTTP/1.1`) is for the target's
// authority, whatever its Host header says, and §3.2: a request with more than one Host is
// invalid. The upstream always gets origin form (`/x`) and the Host that chose the route, so the
// tenant's code sees the host it is served as (password-reset links, caches), never another.
//
// Worked examples:
//   GET /a?b HTTP/1.1, Host: site          → route "site", upstream GET /a?b, Host: site
//   GET http://other/x HTTP/1.1, Host: site → route "other", upstream GET /x, Host: other
//   GET http://other?q HTTP/1.1            → route "other", upstream GET /?q, Host: other
//   OPTIONS * HTTP/1.1, Host: site          → route "site", upstream OPTIONS *
//   two Host headers, CONNECT site:443, http://u@site/, ftp://site/ → 400

import type { IncomingMessage } from 'node:http';
import { FcError } from '../shared/errors.js';
import { PUBLIC_MAX_HEADERS } from '../shared/protocol.js';
import { routingHost } from './routing.js';

export type RequestTarget =
  | { ok: true; /** origin form (or "*") */ path: string; /** the Host to route by and send on; undefined: none given */ authority: string | undefined }
  | { ok: false; detail: string };

/** A Host (authority) as RFC 9110 allows it here: a name or IPv4 address, or [IPv6], and a port. */
const AUTHORITY = /^(?:[A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?$/;
const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/;

/** How many Host fields a request carries (Node keeps only the first in req.headers). */
export function hostFieldCount(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') n++;
  }
  return n;
}

export function parseRequestTarget(method: string, target: string, hostFields: number, host: string | undefined): RequestTarget {
  if (hostFields > 1) return { ok: false, detail: 'the request has more than one Host header' };
  if (host !== undefined && host !== '' && !AUTHORITY.test(host)) return { ok: false, detail: 'the Host header is not a host name or address' };
  const given = host === undefined || host === '' ? undefined : host;
  if (target.startsWith('/')) return { ok: true, path: target, authority: given };
  if (target === '*') {
    return method === 'OPTIONS' ? { ok: true, path: '*', authority: given } : { ok: false, detail: 'the target * is for OPTIONS only' };
  }
  const m = ABSOLUTE.exec(target);
  if (m === null) return { ok: false, detail: 'the request target is neither a path nor an http(s) URL' };
  const scheme = (m[1] as string).toLowerCase();
  const authority = m[2] as string;
  const rest = m[3] as string;
  if (scheme !== 'http' && scheme !== 'https') return { ok: false, detail: 'the request target\'s scheme is not http or https' };
  if (authority.includes('@')) return { ok: false, detail: 'the request target carries user information' };
  if (authority === '' || !AUTHORITY.test(authority)) return { ok: false, detail: 'the request target has no usable host' };
  if (rest.startsWith('#')) return { ok: false, detail: 'the request target carries a fragment' };
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (path.includes('#')) return { ok: false, detail: 'the request target carries a fragment' };
  return { ok: true, path, authority };
}

/**
 * Where a public request goes: its authority (sent upstream as Host) and the host name it is routed
 * by; from here on req.url is in origin form, as it goes upstream and as the dispatcher's signature
 * says. Throws 431 for more header fields than the internal hop carries (Node parses one more than
 * PUBLIC_MAX_HEADERS, see startProxy), 400 for a target or Host it cannot route.
 */
export function routePublicRequest(req: IncomingMessage): { authority: string | undefined; host: string | undefined } {
  if (req.rawHeaders.length / 2 > PUBLIC_MAX_HEADERS) {
    throw new FcError('FC_ERR_TOO_MANY_HEADERS', `the request carries more than ${PUBLIC_MAX_HEADERS} header fields`, { limit: PUBLIC_MAX_HEADERS });
  }
  const target = parseRequestTarget(req.method ?? '', req.url ?? '/', hostFieldCount(req.rawHeaders), req.headers.host);
  if (!target.ok) throw new FcError('FC_ERR_BAD_REQUEST', target.detail);
  req.url = target.path;
  return { authority: target.authority, host: routingHost(target.authority) };
}
