// The UserProxy: the front door. For each request it finds the app for the Host header in its
// cache of the CMDB, chooses one of the app's container entries (registering one on a live host
// when the app has none) and forwards the request to the dispatcher of that entry's host, which
// starts the container if needed. The request path is a chain of small steps: own endpoints,
// route lookup, body (read whole when small: body-buffer.ts), the app's slot (app-gate.ts), entry
// choice, forward (elsewhere only when the request provably never reached the app), metrics.
// Plain requests for an app with httpsRedirect are sent to the HTTPS listener (tls.ts) instead;
// WebSockets take the same route through upgrade.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { Pool } from 'undici';
import type { CmdbCache } from '../cmdb/cache.js';
import { cmdbErrors } from '../cmdb/errors.js';
import { placeContainer } from '../cmdb/placement.js';
import { liveStates, type App, type ContainerEntry, type Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { options } from '../shared/config.js';
import { FcError, toFcError } from '../shared/errors.js';
import { forward, hasBody, upstreamRequestHeaders } from '../shared/forward.js';
import { newRequestId, REQUEST_ID_HEADER, sendPublicProblem } from '../shared/public-problem.js';
import type { Logger } from '../shared/logger.js';
import type { HopAuth } from '../shared/hop-auth.js';
import { AUTH_HEADER, CONTAINER_HEADER, ERROR_HEADER, type LocalDispatch } from '../shared/protocol.js';
import { SingleFlight } from '../shared/single-flight.js';
import { HostHealth } from './host-health.js';
import { neverSent } from '../shared/upstream-errors.js';
import { AppGate, type Closable } from './app-gate.js';
import { answerBuffering, type AnswerBuffering } from '../shared/answer-buffer.js';
import { BufferBudget } from '../shared/buffer-budget.js';
import { ClientGone, readBody, type RequestBody } from './body-buffer.js';
import { ProxyMetrics } from './metrics.js';
import { routePublicRequest } from './request-target.js';
import { chooseEntry } from './routing.js';
import { httpsLocation } from './tls.js';
import { ProxyUpgrades, upgradeSettings } from './upgrade.js';

export interface ProxySettings {
  hostTimeout: number;
  upstreamConnections: number;
  /** The front door's limits (body-buffer.ts, app-gate.ts); each defaults to its option's default in config.ts. */
  bufferBody?: number;
  bufferTotal?: number;
  /** Answers held for slow readers (answer-buffer.ts); each defaults to its option's default. */
  bufferAnswer?: number;
  bufferAnswerTotal?: number;
  sendTimeout?: number;
  bodyMinRate?: number;
  bodyTimeout?: number;
  requestTimeout?: number;
  upstreamTimeout?: number;
  queueTimeout?: number;
  appConcurrency?: number;
  appQueue?: number;
  appQueueTimeout?: number;
  /** WebSockets (upgrade.ts): FC_UPGRADE_IDLE_TIMEOUT, FC_UPGRADE_MAX_PER_APP. */
  upgradeIdleTimeout?: number;
  upgradeMaxPerApp?: number;
  /** Tests only: RATE_GRACE_MS and DISPATCHER_MARGIN_MS, shorter. */
  rateGrace?: number;
  dispatcherMargin?: number;
}

/** The dispatcher has this long beyond the app's own upstream timeout and its hold of a cold start to answer. */
const DISPATCHER_MARGIN_MS = 5_000;

export interface ProxyDeps {
  store: Store;
  cache: CmdbCache;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  random?: () => number;
  /** The dispatcher of this process, if any: requests for its host skip the HTTP hop. */
  local?: LocalDispatch;
  /** Signs each request to a dispatcher over HTTP (its port serves nothing unsigned). */
  hopAuth: HopAuth;
}

/** Headers a client may not set: the proxy sets them itself, or they are internal. */
const untrusted = (name: string) =>
  name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip' || name.startsWith('x-fc-') || name === REQUEST_ID_HEADER;

const untrustedOrHost = (name: string) => name === 'host' || untrusted(name);

/** Sends to at most this many containers before giving up on a request. */
const MAX_ATTEMPTS = 3;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const NO_BODY: RequestBody = { kind: 'none' };

/** Past this many pools to dispatchers (one per app and dispatcher), those of idle apps are closed. */
const MAX_POOLS = 4096;

/** How long a host name the CMDB did not know is answered 404 without asking it again. */
const UNKNOWN_HOST_TTL_MS = 1000;

export class UserProxy {
  readonly metrics: ProxyMetrics;
  /** Connections to the dispatchers, one pool per dispatcher and app: one app's slow requests hold only its own. */
  private readonly pools = new Map<string, { pool: Pool; connections: number }>();
  private readonly gate: AppGate;
  private readonly budget: BufferBudget;
  /** Answers for slow readers, on the HTTP hop from a dispatcher (in process, the dispatcher's own does it). */
  private readonly answers: AnswerBuffering;
  private readonly registering = new SingleFlight<string, ContainerEntry>();
  private readonly lookups = new SingleFlight<string, App | null>();
  /** Host names the CMDB itself did not know, and until when that answer stands. */
  private readonly unknownHosts = new Map<string, number>();
  /** For upgrade.ts, as the other internals it uses below. */
  readonly random: () => number;
  /** The port of this proxy's HTTPS listener (tls.ts), once it listens: apps with httpsRedirect go there. */
  httpsPort: number | undefined;
  /** WebSockets: the server's 'upgrade' handler (upgrade.ts). */
  readonly upgrades: ProxyUpgrades;
  /** Dispatchers that just refused a connection: passed over for a few seconds (host-health.ts). */
  private readonly hostHealth = new HostHealth();

  constructor(readonly deps: ProxyDeps, private readonly s: ProxySettings) {
    this.metrics = new ProxyMetrics(deps.registry);
    this.random = deps.random ?? Math.random;
    this.gate = new AppGate(deps.clock, (app, outcome) => this.metrics.limited.inc({ app, outcome }));
    this.budget = new BufferBudget(s.bufferTotal ?? options.bufferTotal.default);
    this.answers = answerBuffering(s, () => this.metrics.slowReaders.inc());
    this.upgrades = new ProxyUpgrades(this, upgradeSettings(s, (app) => this.headersTimeoutOf(app)));
  }

  get log(): Logger {
    return this.deps.logger;
  }

  /** The app for a routing host: the cache, else the CMDB (undefined: no app has it). */
  async appForHost(host: string): Promise<App | undefined> {
    return this.deps.cache.appForHostname(host) ?? (await this.appFor(host));
  }

  /** The app's slot at this proxy (app-gate.ts); a client gone while it waits is ClientGone. */
  enterGate(app: App, client: Closable): (() => void) | Promise<() => void> {
    const limits = { concurrency: this.concurrencyOf(app), queue: this.s.appQueue ?? options.appQueue.default, queueTimeout: this.s.appQueueTimeout ?? options.appQueueTimeout.default };
    const entered = this.gate.enter(app.name, limits, client);
    // Most requests enter at once: no promise for them.
    return typeof entered === 'function' ? entered : entered.catch((err: unknown) => {
      throw err instanceof FcError ? err : new ClientGone(err);
    });
  }

  registerFor(app: App, tried: ReadonlySet<string>): Promise<ContainerEntry> {
    return this.register(app, tried);
  }

  readonly untrusted = untrusted;

  /** What the proxy tells the app of the request: the client's address and scheme, the host, the request id. */
  forwardedHeaders(req: IncomingMessage, authority: string, requestId: string): string[] {
    return [
      'X-Forwarded-For', clientAddress(req),
      'X-Forwarded-Proto', (req.socket as TLSSocket | undefined)?.encrypted === true ? 'https' : 'http',
      'X-Forwarded-Host', authority,
      'X-Request-Id', requestId,
    ];
  }

  /** How long the dispatcher may take to answer: the app's upstream timeout, a cold start's hold, a margin. */
  private headersTimeoutOf(app: App): number {
    const appTimeout = app.upstreamTimeout != null ? app.upstreamTimeout * 1000 : (this.s.upstreamTimeout ?? options.upstreamTimeout.default);
    return appTimeout + (this.s.queueTimeout ?? options.queueTimeout.default) + (this.s.dispatcherMargin ?? DISPATCHER_MARGIN_MS);
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    void this.serve(req, res);
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const begin = performance.now();
    // Carried to the dispatcher and the app, and in any error answer: the log has the details under it.
    const requestId = newRequestId();
    let host: string | undefined;
    let app: App | undefined;
    let status: number;
    try {
      // The target's authority (absolute form) or the one Host decides the route.
      const route = routePublicRequest(req);
      host = route.host;
      // The cache answers almost always; only a miss waits on the CMDB.
      app = host === undefined ? undefined : (this.deps.cache.appForHostname(host) ?? (await this.appFor(host)));
      // The proxy serves nothing of its own here: health and metrics are on the admin listener.
      if (app === undefined) {
        throw new FcError(
          'FC_ERR_UNKNOWN_HOST',
          host === undefined ? 'the request has no Host header, so no app can be chosen' : `no app serves the host "${host}"`,
          { host: host ?? null },
        );
      }
      if (app.httpsRedirect === true && this.httpsPort !== undefined && (req.socket as TLSSocket | undefined)?.encrypted !== true) {
        // Permanent and method-keeping (308): a form posted to http:// is posted again to https://.
        res.writeHead(308, { location: httpsLocation(host as string, req.url ?? '/', this.httpsPort), 'content-length': 0, [REQUEST_ID_HEADER]: requestId });
        res.end();
        status = 308;
      } else {
        status = await this.forwardToApp(app, req, res, requestId, route.authority as string);
      }
    } catch (err) {
      if (err instanceof ClientGone) {
        this.metrics.recorder.record(app?.name ?? '', 499, (performance.now() - begin) / 1000);
        return;
      }
      const fc = toFcError(err);
      status = fc.status;
      // A body not read to its end (a client too slow, a request refused before it was forwarded)
      // is not waited for: the connection closes after the answer.
      if (hasBody(req) && !req.readableEnded && !res.headersSent) res.setHeader('connection', 'close');
      if (fc.status === 408) this.metrics.slowClients.inc({ app: app?.name ?? '', code: fc.code });
      sendPublicProblem(res, fc, requestId, this.deps.logger, { host, app: app?.name });
    }
    this.metrics.recorder.record(app?.name ?? '', status, (performance.now() - begin) / 1000);
  }

  /**
   * The app for a host name the cache does not know: from the CMDB itself, since an app created a
   * moment ago may not have reached the cache yet. What the CMDB does not know either is
   * remembered for a second, so unknown names cost it little.
   */
  private async appFor(host: string): Promise<App | undefined> {
    const now = this.deps.clock.now();
    if ((this.unknownHosts.get(host) ?? 0) > now) return undefined;
    // Whether the app exists cannot be known now: a 503 to try again, not a 404, and no wait.
    if (!this.deps.cache.cmdbHealthy) throw cmdbErrors.unavailable(new Error('it is unreachable; only apps this proxy already knows are served'));
    const app = await this.lookups.run(host, () => this.deps.store.appForHostname(host));
    if (app !== null) return app;
    if (this.unknownHosts.size >= 10_000) this.unknownHosts.clear();
    this.unknownHosts.set(host, now + UNKNOWN_HOST_TTL_MS);
    return undefined;
  }

  /**
   * For the admin listener's /healthz: "degraded" while the CMDB is away, yet no error: the proxy
   * still serves every app it knows (a load balancer must not take every proxy out because the
   * CMDB they share is away); monitoring reads `status`.
   */
  health(): Record<string, unknown> {
    const { cache } = this.deps;
    return { status: cache.cmdbHealthy ? 'ok' : 'degraded', apps: cache.appCount, cmdbRev: cache.snapshotRev, cmdb: { healthy: cache.cmdbHealthy, since: cache.health.since } };
  }

  private async forwardToApp(app: App, req: IncomingMessage, res: ServerResponse, requestId: string, authority: string): Promise<number> {
    const { clock } = this.deps;
    const s = this.s;
    // The body first: a small one is read whole before the request takes any slot upstream. (Most
    // requests have none: no promise for them.)
    const body = !hasBody(req) ? NO_BODY : await readBody(req, {
      bufferBytes: s.bufferBody ?? options.bufferBody.default, minRate: s.bodyMinRate ?? options.bodyMinRate.default,
      bodyTimeout: s.bodyTimeout ?? options.bodyTimeout.default, requestTimeout: s.requestTimeout ?? options.requestTimeout.default,
      ...(s.rateGrace === undefined ? {} : { rateGrace: s.rateGrace }),
    }, clock, this.budget, clock.now());
    try {
      const gate = this.enterGate(app, res);
      const release = typeof gate === 'function' ? gate : await gate;
      try {
        return await this.forwardWithRetries(app, req, res, body, requestId, authority);
      } finally {
        release();
      }
    } finally {
      if (body.kind !== 'none') body.release();
    }
  }

  private concurrencyOf(app: App): number {
    return app.maxConcurrency ?? this.s.appConcurrency ?? options.appConcurrency.default;
  }

  /**
   * Sends the request to one of the app's containers. It goes to another container (never the same
   * entry again) only when it provably did not reach the app: the dispatcher said the container was
   * gone before anything was forwarded (any method whose body can be sent again), or the connection
   * to the dispatcher failed before the request was written (safe methods). Anything else, a 504
   * above all, is answered as it is.
   */
  private async forwardWithRetries(app: App, req: IncomingMessage, res: ServerResponse, body: RequestBody, requestId: string, authority: string): Promise<number> {
    const { cache, clock } = this.deps;
    // A container gone before the dispatcher forwarded: a request whose body we hold may go elsewhere.
    const retryable = body.kind !== 'stream';
    const safe = retryable && SAFE_METHODS.has(req.method ?? '');
    const sendBody = body.kind === 'none' ? null : body.body;
    const tried = new Set<string>();
    const now = clock.now();
    const usable = (e: ContainerEntry) => {
      if (tried.has(e.id)) return false;
      return this.hostUsable(e.host, now);
    };
    const forwarded = this.forwardedHeaders(req, authority, requestId);
    // Host first and set here, never the client's copy: a header the client names in Connection
    // (`Connection: host`) must not take it away, and absolute form brings its own.
    const headers = () => ['Host', authority, ...upstreamRequestHeaders(req, untrustedOrHost, forwarded)];
    const headersTimeout = this.headersTimeoutOf(app);
    let lastError: unknown;
    for (let attempt = 1; ; attempt++) {
      const decision = chooseEntry(cache.containersOf(app.name), this.random, usable);
      const entry = decision.kind === 'forward' ? decision.entry : await this.register(app, tried);
      // Registration may hand back an entry already tried (the app is at its maximum): the request
      // is not sent to the same container twice.
      if (tried.has(entry.id)) throw lastError;
      tried.add(entry.id);
      const host = cache.host(entry.host);
      if (host === undefined) throw new FcError('FC_ERR_NO_COMPUTE_HOST', `host "${entry.host}" of container ${entry.id} is unknown`, { host: entry.host });
      const last = !retryable || attempt >= MAX_ATTEMPTS;
      const local = this.deps.local;
      if (local !== undefined && local.hostId === entry.host) {
        // The dispatcher is in this process: called directly, one hop less.
        const result = await local.serve(entry.id, req, res, headers(), !last, sendBody);
        if (!result.retry) return result.status;
        lastError = new FcError('FC_ERR_CONTAINER_GONE', `container ${entry.id} went away`, { container: entry.id });
        this.metrics.retries.inc({ reason: 'container-gone' });
        continue;
      }
      try {
        const result = await forward({
          pool: this.poolFor(host.dispatcherUrl, app),
          req,
          res,
          // The proxy's own headers first: whatever the dispatcher's server cuts, it is not these.
          headers: [
            CONTAINER_HEADER, entry.id,
            AUTH_HEADER, this.deps.hopAuth.sign({ method: req.method ?? '', target: req.url ?? '/', entryId: entry.id }, clock.now()),
            ...headers(),
          ],
          upstream: `the dispatcher of host ${host.id} (${host.dispatcherUrl})`,
          retryIf: last ? undefined : (status, headers) => status === 503 && headers[ERROR_HEADER] === 'FC_ERR_CONTAINER_GONE',
          body: sendBody,
          headersTimeout,
          buffering: this.answers,
        });
        if (!result.retry) return result.status;
        lastError = new FcError('FC_ERR_CONTAINER_GONE', `container ${entry.id} went away`, { container: entry.id });
        this.metrics.retries.inc({ reason: 'container-gone' });
      } catch (err) {
        this.dispatcherFailed(host.id, err);
        if (last || !safe || !(err instanceof FcError) || err.code !== 'FC_ERR_UPSTREAM' || !neverSent(err.cause)) throw err;
        lastError = err;
        this.metrics.retries.inc({ reason: 'not-sent' });
        this.deps.logger.warn({ err: err.message, container: entry.id }, 'dispatcher unreachable; trying another container');
      }
    }
  }

  /**
   * Registers a container entry for an app that has no usable one, on the live host with the most
   * room. Concurrent requests of this proxy share one registration, and the store's fewer-than
   * check makes concurrent proxies share one entry too.
   */
  private register(app: App, tried: ReadonlySet<string>): Promise<ContainerEntry> {
    return this.registering.run(app.name, async () => {
      const { cache, store, clock } = this.deps;
      const now = clock.now();
      // A new container needs the CMDB: with it known away, answer at once rather than wait out its deadline.
      if (!cache.cmdbHealthy) throw cmdbErrors.unavailable(new Error(`it is unreachable, so no container can be added for app "${app.name}"; its running containers keep serving`));
      // Entries on hosts not live (or just seen refusing connections) neither count nor get the
      // new container: placeContainer leaves their hosts out of the count (uncountedHosts).
      const live = [...cache.containersOf(app.name)].filter((c) => liveStates.includes(c.state) && !tried.has(c.id) && this.hostUsable(c.host, now)).length;
      const hosts = cache.allHosts().filter((h) => !this.hostHealth.suspect(h.id, now));
      let registered;
      try {
        registered = await placeContainer(store, app, hosts, cache.allContainers(), now, this.s.hostTimeout, { ifFewerThan: live + 1 }, cache.health.outages);
      } catch (err) {
        if (!(err instanceof FcError) || err.code !== 'FC_ERR_MAX_CONTAINERS') throw err;
        // To the tenant's visitor this is the system's trouble, not a conflict of theirs.
        throw new FcError('FC_ERR_APP_AT_CAPACITY', `none of app "${app.name}"'s containers can take the request and it already has maxContainers (${app.maxContainers}) entries`, { app: app.name }, { retryAfter: 5 });
      }
      const { entry, created } = registered;
      cache.observe(entry);
      if (created) {
        this.metrics.registrations.inc({ app: app.name });
        this.deps.logger.info({ app: app.name, container: entry.id, host: entry.host }, 'registered a container entry');
      }
      return entry;
    });
  }

  /** A forward (or upgrade: upgrade.ts) to a host's dispatcher failed: a refused connection makes the host suspect. */
  dispatcherFailed(hostId: string, err: unknown): void {
    if (this.hostHealth.failed(hostId, err, this.deps.clock.now())) {
      this.deps.logger.warn({ host: hostId, err: (err as Error).message }, 'dispatcher refused the connection; its host is passed over for a few seconds');
    }
  }

  /** Whether requests may go to a host: live by its heartbeat, and not just seen refusing connections. */
  hostUsable(hostId: string, now: number): boolean {
    const host = this.deps.cache.host(hostId);
    return host !== undefined && this.deps.cache.isHostLive(host, now, this.s.hostTimeout) && !this.hostHealth.suspect(hostId, now);
  }

  /**
   * The pool for an app's requests to a dispatcher, as many connections as the app may have
   * requests in flight (at most FC_UPSTREAM_CONNECTIONS). Idle connections close after 30 s; pools
   * of apps with nothing in flight are dropped when there are many.
   */
  private poolFor(url: string, app: App): Pool {
    const key = `${app.name} ${url}`;
    const connections = Math.min(this.concurrencyOf(app), this.s.upstreamConnections);
    const known = this.pools.get(key);
    if (known !== undefined && known.connections === connections) return known.pool;
    if (known !== undefined) void known.pool.close().catch(() => undefined);
    else if (this.pools.size >= MAX_POOLS) this.dropIdlePools();
    const pool = new Pool(url, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
    this.pools.set(key, { pool, connections });
    return pool;
  }

  private dropIdlePools(): void {
    for (const [key, { pool }] of this.pools) {
      const app = key.slice(0, key.indexOf(' '));
      if (this.gate.load(app).inflight > 0) continue;
      this.pools.delete(key);
      void pool.close().catch(() => undefined);
    }
  }

  /** Waits for forwarded requests to finish, then closes the connections to the dispatchers. */
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.pool.close()));
    this.pools.clear();
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.pool.destroy()));
    this.pools.clear();
  }
}

function clientAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
