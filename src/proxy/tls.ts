// HTTPS at the proxy: a second listener (FC_TLS_PORT) beside the plain one, serving the same
// handler, HTTP/1.1 and HTTP/2 by ALPN. Certificates come from a directory (FC_TLS_DIR), one pair
// per host name (`<host>.crt` with the chain and `<host>.key`, PEM), chosen by the name the client
// gives in SNI: the exact name, else the wildcard of its parent (`*.example.com.crt` serves
// `a.example.com`, not `a.b.example.com` nor `example.com`, as RFC 6125 says), else `_default`.
// Without `_default`, a client naming no known host (or none: an IP address) has its handshake
// refused: the proxy does not show one tenant's certificate for another's name.
//
// The directory is read again every FC_TLS_RELOAD: a pair whose files changed (modification time
// or size) is loaded anew, a removed pair is dropped, and a pair that does not load (bad PEM, a
// key that is not the certificate's) keeps the one loaded before and is logged: a certificate
// renewal half-written at the moment of the scan never takes a host off the air. New connections
// get the new certificate; open ones keep theirs.
//
// HTTP/2 requests reach the proxy's handler through Node's compatibility objects, with what they
// lack for it added here (h2Request): the Host from :authority, no pseudo-headers among the raw
// headers, and no connection-specific header on the answer (HTTP/2 forbids them).

import { readdir, readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2, { type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import tls, { type SecureContext } from 'node:tls';
import type { Clock, Timer } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';
import type { Listening } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { PUBLIC_MAX_HEADERS } from '../shared/protocol.js';

const DEFAULT_NAME = '_default';
/** An HTTP/2 session without a frame for this long is closed gracefully (as the plain port's keep-alive). */
const H2_IDLE_MS = 65_000;
/** Host names as certificate files name them: letters, digits, dots, hyphens, a leading "*." */
const NAME_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

interface Loaded {
  stamp: string;
  context: SecureContext;
  cert: Buffer;
  key: Buffer;
}

/** The certificates of FC_TLS_DIR by host name, kept in step with the directory by reload(). */
export class CertStore {
  private readonly pairs = new Map<string, Loaded>();

  constructor(readonly dir: string, private readonly logger: Logger) {}

  /**
   * The context for a name given in SNI: exact, then the wildcard one label up, then the default.
   * Worked example with a.example.com.crt, *.example.com.crt and no _default: "a.example.com" gets
   * the first, "b.example.com" the wildcard, "x.b.example.com" and "example.com" nothing.
   */
  lookup(servername: string | undefined): SecureContext | undefined {
    const name = (servername ?? '').toLowerCase().replace(/\.$/, '');
    if (name !== '') {
      const exact = this.pairs.get(name);
      if (exact !== undefined) return exact.context;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wildcard = this.pairs.get(`*${name.slice(dot)}`);
        if (wildcard !== undefined) return wildcard.context;
      }
    }
    return this.pairs.get(DEFAULT_NAME)?.context;
  }

  /** The default pair's PEM (for clients without SNI), if there is one. */
  get defaultPair(): { cert: Buffer; key: Buffer } | undefined {
    const d = this.pairs.get(DEFAULT_NAME);
    return d === undefined ? undefined : { cert: d.cert, key: d.key };
  }

  /** Each pair's certificate expiry (ms since the epoch), for the expiry gauge. */
  expiries(): Map<string, number> {
    return new Map([...this.pairs].map(([name, p]) => [name, Date.parse(new X509Certificate(p.cert).validTo)]));
  }

  get names(): string[] {
    return [...this.pairs.keys()].sort();
  }

  /** Reads the directory again; returns what changed. */
  async reload(): Promise<{ loaded: string[]; removed: string[]; failed: string[] }> {
    const loaded: string[] = [];
    const failed: string[] = [];
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      // An unreadable directory changes nothing: what was loaded keeps serving.
      this.logger.warn({ dir: this.dir, err: (err as Error).message }, 'cannot read the certificate directory; certificates unchanged');
      return { loaded, removed: [], failed: [this.dir] };
    }
    const present = new Set(files);
    const names = files.filter((f) => f.endsWith('.crt')).map((f) => f.slice(0, -4).toLowerCase())
      .filter((n) => (n === DEFAULT_NAME || NAME_PATTERN.test(n)) && present.has(`${n}.key`));
    for (const name of names) {
      const certPath = path.join(this.dir, `${name}.crt`);
      const keyPath = path.join(this.dir, `${name}.key`);
      try {
        const [c, k] = await Promise.all([stat(certPath), stat(keyPath)]);
        const stamp = `${c.mtimeMs}:${c.size}:${k.mtimeMs}:${k.size}`;
        if (this.pairs.get(name)?.stamp === stamp) continue;
        const [cert, key] = await Promise.all([readFile(certPath), readFile(keyPath)]);
        // Throws on bad PEM and on a key that does not match the certificate.
        const context = tls.createSecureContext({ cert, key });
        this.pairs.set(name, { stamp, context, cert, key });
        loaded.push(name);
      } catch (err) {
        failed.push(name);
        this.logger.warn({ name, err: (err as Error).message, kept: this.pairs.has(name) }, 'a certificate pair did not load; the one loaded before (if any) keeps serving');
      }
    }
    const removed: string[] = [];
    const listed = new Set(names);
    for (const name of [...this.pairs.keys()]) {
      if (!listed.has(name)) {
        this.pairs.delete(name);
        removed.push(name);
      }
    }
    if (loaded.length > 0 || removed.length > 0) this.logger.info({ loaded, removed, names: this.names.length }, 'certificates reloaded');
    return { loaded, removed, failed };
  }
}

/** HTTP/2 forbids these on a message (RFC 9113 section 8.2.2): the compat response would throw. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * An HTTP/2 request and response as the proxy's handler expects an HTTP/1.1 pair: the Host header
 * from :authority, raw headers without pseudo-headers (and a Host), a body announced as chunked
 * when the client sent DATA without content-length, and connection-specific headers left out
 * of the answer instead of thrown on.
 */
export function h2Request(req: Http2ServerRequest, res: Http2ServerResponse): { req: IncomingMessage; res: ServerResponse } {
  const authority = req.headers[':authority'] ?? req.headers.host;
  const raw: string[] = [];
  const source = req.rawHeaders;
  let hasHost = false;
  // HTTP/2 may split Cookie into several fields; HTTP/1.1 has one, joined with "; " (RFC 9113
  // section 8.2.3): an app server would otherwise join them with ", " and lose cookies.
  const cookies: string[] = [];
  for (let i = 0; i < source.length; i += 2) {
    const name = source[i] as string;
    if (name.startsWith(':')) continue;
    const lower = name.toLowerCase();
    if (lower === 'host') hasHost = true;
    if (lower === 'cookie') {
      cookies.push(source[i + 1] as string);
      continue;
    }
    raw.push(name, source[i + 1] as string);
  }
  if (cookies.length > 0) raw.push('cookie', cookies.join('; '));
  if (!hasHost && typeof authority === 'string') {
    raw.unshift('host', authority);
    req.headers.host = authority;
  }
  // A body without content-length comes as DATA frames until END_STREAM: to the proxy it is chunked.
  if (!req.stream.endAfterHeaders && req.headers['content-length'] === undefined) {
    raw.push('transfer-encoding', 'chunked');
    req.headers['transfer-encoding'] = 'chunked';
  }
  Object.defineProperty(req, 'rawHeaders', { value: raw });
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name: string, value: number | string | readonly string[]) => (CONNECTION_SPECIFIC.has(name.toLowerCase()) ? res : setHeader(name, value));
  const writeHead = res.writeHead.bind(res) as (status: number, headers?: unknown) => Http2ServerResponse;
  (res as unknown as { writeHead: (status: number, headers?: unknown) => Http2ServerResponse }).writeHead = (status, headers) => {
    if (Array.isArray(headers)) {
      const kept: Record<string, string | string[]> = {};
      for (let i = 0; i < headers.length; i += 2) {
        const name = String(headers[i]).toLowerCase();
        if (CONNECTION_SPECIFIC.has(name)) continue;
        const value = String(headers[i + 1]);
        const prior = kept[name];
        kept[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
      }
      return writeHead(status, kept);
    }
    if (headers !== null && typeof headers === 'object') {
      const kept = Object.fromEntries(Object.entries(headers as Record<string, unknown>).filter(([k]) => !CONNECTION_SPECIFIC.has(k.toLowerCase())));
      return writeHead(status, kept);
    }
    return writeHead(status);
  };
  return { req: req as unknown as IncomingMessage, res: res as unknown as ServerResponse };
}

export interface TlsListenOptions {
  /** How long close() lets requests finish before it cuts them (FC_DRAIN_TIMEOUT). */
  drainTimeout: number;
  /** FC_TLS_RELOAD. */
  reloadMs: number;
  onUpgrade: (req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => void;
  /** At the drain timeout, before the rest is cut (WebSockets: 1001). */
  beforeCut: () => Promise<void>;
}

export interface TlsListening extends Listening {
  readonly certs: CertStore;
  /** Reads the certificate directory now (tests; the timer does it every FC_TLS_RELOAD). */
  reload(): Promise<void>;
}

/** Opens the HTTPS listener; its certificates are read before it accepts a connection. */
export async function listenTls(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  dir: string,
  port: number,
  host: string,
  o: TlsListenOptions,
  deps: { clock: Clock; logger: Logger; registry?: Registry },
): Promise<TlsListening> {
  const certs = new CertStore(dir, deps.logger);
  // A directory that cannot be read at start is a mistake in the setup, said at once; later, a
  // passing failure leaves the certificates loaded.
  try {
    await readdir(dir);
  } catch (err) {
    throw new FcError('FC_ERR_CONFIG', `FC_TLS_DIR "${dir}" cannot be read (${(err as Error).message}); it must be a directory of <host>.crt and <host>.key files`);
  }
  await certs.reload();
  if (deps.registry !== undefined) {
    // For an alert well before a certificate runs out (a renewal that did not happen).
    new Gauge({
      name: 'fc_proxy_tls_certificate_expiry_seconds', help: 'When each loaded certificate (by its file name in FC_TLS_DIR) expires, in seconds since the epoch', labelNames: ['name'], registers: [deps.registry],
      collect() {
        this.reset();
        for (const [name, at] of certs.expiries()) this.set({ name }, Math.floor(at / 1000));
      },
    });
  }
  let defaultStamp: Buffer | undefined;
  const applyDefault = () => {
    const d = certs.defaultPair;
    if (d !== undefined && d.cert !== defaultStamp) {
      server.setSecureContext({ cert: d.cert, key: d.key });
      defaultStamp = d.cert;
    }
  };
  const server: Http2SecureServer = http2.createSecureServer({
    allowHTTP1: true,
    SNICallback: (servername, cb) => {
      const context = certs.lookup(servername);
      if (context !== undefined) cb(null, context);
      else cb(new Error(`no certificate for "${servername}"`));
    },
  });
  // The HTTP/1.1 side as the plain listener's (src/shared/http.ts listen): Node's parsers are
  // pooled, so the header limit is set, not inherited; the request's own deadlines are the proxy's.
  Object.assign(server, { maxHeadersCount: PUBLIC_MAX_HEADERS + 1, keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000 });
  applyDefault();
  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  let draining = false;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    // An idle session is told to go (GOAWAY; its streams, if any, finish): browsers keep them
    // open otherwise, and each holds a connection.
    session.setTimeout(H2_IDLE_MS, () => session.close());
    if (draining) session.close();
  });
  server.on('request', (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    if (req.httpVersionMajor === 2) {
      const pair = h2Request(req as Http2ServerRequest, res as Http2ServerResponse);
      handler(pair.req, pair.res);
      return;
    }
    if (draining) (res as ServerResponse).setHeader('connection', 'close');
    handler(req as IncomingMessage, res as ServerResponse);
  });
  server.on('upgrade', o.onUpgrade);
  // A failed handshake (unknown name, a scanner) is the client's affair: nothing to log per connection.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const reload = async () => {
    await certs.reload();
    applyDefault();
  };
  const timer: Timer = deps.clock.setInterval(() => void reload().catch(() => undefined), o.reloadMs);
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  const destroy = async () => {
    timer.cancel();
    draining = true;
    server.close();
    for (const s of sockets) s.destroy();
    await closed;
  };
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    server: server as unknown as Listening['server'],
    port: address.port,
    url: `https://${shownHost}:${address.port}`,
    certs,
    reload,
    async close() {
      timer.cancel();
      draining = true;
      server.close();
      // HTTP/2: GOAWAY, open streams finish. HTTP/1.1: Node's close() ends idle keep-alive
      // connections (with allowHTTP1 as for http.Server); busy ones end after their answer
      // (Connection: close); WebSockets stay until the drain timeout (beforeCut: 1001).
      for (const session of sessions) session.close();

      const cut = setTimeout(() => void o.beforeCut().catch(() => undefined).then(destroy), o.drainTimeout);
      cut.unref();
      try {
        await closed;
      } finally {
        clearTimeout(cut);
      }
    },
    destroy,
  };
}

/**
 * Where a plain request for an app with `httpsRedirect` goes: the same host (its port dropped) on
 * the HTTPS port, the same target. Worked example: Host "Shop.Example:8080", target "/a?b", HTTPS
 * on 8443: "https://shop.example:8443/a?b"; on 443, "https://shop.example/a?b".
 */
export function httpsLocation(host: string, target: string, tlsPort: number): string {
  const name = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `https://${name}${tlsPort === 443 ? '' : `:${tlsPort}`}${target.startsWith('/') ? target : '/'}`;
}
