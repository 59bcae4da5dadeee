// The web dashboard, served by the CoreAPI at /: a login form that trades a CoreAPI token for a
// session cookie (session.ts), the page's files (assets.ts, public/), live updates over
// Server-Sent Events (stream.ts) and the per-app rate/latency history for its charts (series.ts).
// The page itself only calls the CoreAPI's /v1 routes, authenticated by the cookie; a read-token
// session sees everything and changes nothing, as the read token does.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Store } from '../../cmdb/types.js';
import type { Clock, Timer } from '../../shared/clock.js';
import { FcError, invalidFields } from '../../shared/errors.js';
import { readJsonBody, sendJson } from '../../shared/http.js';
import type { Logger } from '../../shared/logger.js';
import { publicApp } from '../app-spec.js';
import { HostAdmin } from '../hosts.js';
import { Assets, SECURITY_HEADERS } from './assets.js';
import { AppSeries, SAMPLE_MS, sampleApps } from './series.js';
import { checkSameOrigin, sessionCookie, Sessions, type Access } from './session.js';
import { StreamHub } from './stream.js';

export { PAGE_FILES } from './assets.js';
export { CSRF_HEADER, SESSION_COOKIE } from './session.js';

export interface DashboardSettings {
  token: string;
  readToken: string;
  hostTimeout: number;
  /** FC_API_STREAMS. */
  maxStreams: number;
}

export interface DashboardRoute {
  method: string;
  path: string;
  /** Open routes check what they need themselves (the login takes no session, the page is static). */
  open: boolean;
  write: boolean;
  handler: (ctx: { req: IncomingMessage; res: ServerResponse; params: Record<string, string> }) => Promise<void>;
}

export class Dashboard {
  readonly assets = new Assets();
  private readonly sessions: Sessions;
  private readonly hub: StreamHub;
  private readonly series = new AppSeries();
  private readonly hosts: HostAdmin;
  private sampler: Timer | undefined;
  private sampling = false;

  constructor(private readonly deps: { store: Store; clock: Clock; logger: Logger }, private readonly s: DashboardSettings) {
    this.sessions = new Sessions({ token: s.token, readToken: s.readToken });
    this.hub = new StreamHub({ ...deps, maxStreams: s.maxStreams });
    this.hosts = new HostAdmin(deps, s);
  }

  /** How many live-update streams are open. */
  get streams(): number {
    return this.hub.size;
  }

  /**
   * The access the request's session cookie gives, or null. A write must also pass the same-origin
   * check (FC_ERR_CSRF otherwise): the cookie rides along on any request the browser makes.
   */
  sessionAccess(req: IncomingMessage, write: boolean): Access | null {
    const session = this.sessions.fromRequest(req, this.deps.clock.now());
    if (session === null) return null;
    if (write) checkSameOrigin(req);
    return session.access;
  }

  routes(): DashboardRoute[] {
    const page = (name: string) => async ({ req, res }: { req: IncomingMessage; res: ServerResponse }) => this.assets.serve(req, res, name);
    return [
      { method: 'GET', path: '/', open: true, write: false, handler: page('index.html') },
      { method: 'GET', path: '/dashboard/assets/:file', open: true, write: false, handler: async ({ req, res, params }) => this.assets.serve(req, res, params.file as string) },
      { method: 'GET', path: '/dashboard/session', open: true, write: false, handler: async ({ req, res }) => this.session(req, res) },
      { method: 'POST', path: '/dashboard/login', open: true, write: false, handler: async ({ req, res }) => this.login(req, res) },
      { method: 'POST', path: '/dashboard/logout', open: true, write: false, handler: async ({ req, res }) => this.logout(req, res) },
      // Authenticated by the CoreAPI like any read: the bearer token or the session cookie.
      { method: 'GET', path: '/v1/events/stream', open: false, write: false, handler: async ({ req, res }) => this.hub.open(res, () => this.snapshot(this.accessOf(req))) },
    ];
  }

  /** Starts sampling the containers' stats for the charts and the streams. */
  start(): void {
    this.sampler ??= this.deps.clock.setInterval(() => void this.sample(), SAMPLE_MS);
    void this.sample();
  }

  /** Ends every stream and stops sampling. */
  async close(): Promise<void> {
    this.sampler?.cancel();
    await this.hub.close();
  }

  private async sample(): Promise<void> {
    // A slow CMDB must not pile samples up.
    if (this.sampling) return;
    this.sampling = true;
    try {
      const now = this.deps.clock.now();
      const stats = await this.deps.store.listStats(now);
      this.series.add(sampleApps(stats, now), now);
      this.hub.broadcast('stats', { now, stats, series: this.series.latest() });
    } catch (err) {
      this.deps.logger.debug({ err: (err as Error).message }, 'dashboard: could not sample container stats');
    } finally {
      this.sampling = false;
    }
  }

  /** What a stream starts from; `access` tells the page whether to offer actions. */
  private async snapshot(access: Access): Promise<unknown> {
    const { store, clock } = this.deps;
    const [apps, containers, hosts] = await Promise.all([store.listApps(), store.listContainers(), this.hosts.list()]);
    const now = clock.now();
    return {
      now,
      access,
      hostTimeout: this.s.hostTimeout,
      apps: apps.sort((a, b) => a.name.localeCompare(b.name)).map(publicApp),
      containers,
      hosts: hosts.hosts,
      stats: await store.listStats(now),
      series: this.series.all(),
    };
  }

  /** The access of a request the CoreAPI already let through: its cookie's, else its bearer token's. */
  private accessOf(req: IncomingMessage): Access {
    const session = this.sessions.fromRequest(req, this.deps.clock.now());
    if (session !== null) return session.access;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return (m === null ? null : this.sessions.accessOfToken((m[1] as string).trim())) ?? 'read';
  }

  private async session(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const session = this.sessions.fromRequest(req, this.deps.clock.now());
    if (session === null) throw new FcError('FC_ERR_UNAUTHORIZED', 'no dashboard session: log in with a CoreAPI token');
    sendJson(res, 200, { access: session.access, expiresAt: session.expiresAt }, { ...SECURITY_HEADERS, 'cache-control': 'no-store' });
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Also here: another site must not log the browser in under a token of its choosing.
    checkSameOrigin(req);
    const body = await readJsonBody(req, 4096);
    const token = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).token : undefined;
    if (typeof token !== 'string' || token.trim() === '') throw invalidFields([{ field: 'token', value: '(not shown)', allowed: 'the CoreAPI admin token or read token, as a string' }]);
    const access = this.sessions.accessOfToken(token.trim());
    if (access === null) {
      this.deps.logger.warn({ remote: req.socket.remoteAddress }, 'dashboard login refused: wrong token');
      throw new FcError('FC_ERR_UNAUTHORIZED', 'that token is neither the CoreAPI admin token (FC_API_TOKEN, ~/.fastcontainer/api-token) nor its read token (FC_API_READ_TOKEN, ~/.fastcontainer/api-read-token)');
    }
    const now = this.deps.clock.now();
    const { value, expiresAt } = this.sessions.mint(access, now);
    this.deps.logger.info({ access, remote: req.socket.remoteAddress }, 'dashboard login');
    sendJson(res, 200, { access, expiresAt }, { ...SECURITY_HEADERS, 'cache-control': 'no-store', 'set-cookie': sessionCookie(req, value, expiresAt - now) });
  }

  private async logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    checkSameOrigin(req);
    const now = this.deps.clock.now();
    const session = this.sessions.fromRequest(req, now);
    if (session !== null) this.sessions.revoke(session.nonce, session.expiresAt, now);
    res.writeHead(204, { ...SECURITY_HEADERS, 'cache-control': 'no-store', 'set-cookie': sessionCookie(req, '', 0) });
    res.end();
  }
}
