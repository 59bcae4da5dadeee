// The UserProxy: the front door. For each request it finds the app for the Host header in its
// cache of the CMDB, chooses one of the app's container entries (registering one on a live host
// when the app has none) and forwards the request to the dispatcher of that entry's host, which
// starts the container if needed. The request path is a chain of small steps: own endpoints,
// route lookup, entry choice, forward (with a retry elsewhere when a container went away), metrics.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { Pool } from 'undici';
import type { CmdbCache } from '../cmdb/cache.js';
import { isHostLive, placeContainer } from '../cmdb/placement.js';
import { liveStates, type App, type ContainerEntry, type Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { FcError, toFcError } from '../shared/errors.js';
import { forward, hasBody, upstreamRequestHeaders } from '../shared/forward.js';
import { sendJson, sendProblem } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { serveMetrics } from '../shared/metrics.js';
import { CONTAINER_HEADER, ERROR_HEADER, type LocalDispatch } from '../shared/protocol.js';
import { SingleFlight } from '../shared/single-flight.js';
import { HostHealth } from './host-health.js';
import { ProxyMetrics } from './metrics.js';
import { chooseEntry, routingHost } from './routing.js';

export interface ProxySettings {
  hostTimeout: number;
  upstreamConnections: number;
}

export interface ProxyDeps {
  store: Store;
  cache: CmdbCache;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  random?: () => number;
  /** The dispatcher of this process, if any: requests for its host skip the HTTP hop. */
  local?: LocalDispatch;
}

/** Headers a client may not set: the proxy sets them itself, or they are internal. */
const untrusted = (name: string) =>
  name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip' || name.startsWith('x-fc-');

/** Sends to at most this many containers before giving up on a request. */
const MAX_ATTEMPTS = 3;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** How long a host name the CMDB did not know is answered 404 without asking it again. */
const UNKNOWN_HOST_TTL_MS = 1000;

export class UserProxy {
  readonly metrics: ProxyMetrics;
  private readonly pools = new Map<string, Pool>();
  private readonly registering = new SingleFlight<string, ContainerEntry>();
  private readonly lookups = new SingleFlight<string, App | null>();
  /** Host names the CMDB itself did not know, and until when that answer stands. */
  private readonly unknownHosts = new Map<string, number>();
  private readonly random: () => number;
  /** Dispatchers that just refused a connection: passed over for a few seconds (host-health.ts). */
  private readonly health = new HostHealth();

  constructor(private readonly deps: ProxyDeps, private readonly s: ProxySettings) {
    this.metrics = new ProxyMetrics(deps.registry);
    this.random = deps.random ?? Math.random;
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    void this.serve(req, res);
  };

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const begin = performance.now();
    const host = routingHost(req.headers.host);
    let app: App | undefined;
    let status: number;
    try {
      // The cache answers almost always; only a miss waits on the CMDB.
      app = host === undefined ? undefined : (this.deps.cache.appForHostname(host) ?? (await this.appFor(host)));
      if (app === undefined) {
        if (await this.serveOwn(req, res)) return;
        throw new FcError(
          'FC_ERR_UNKNOWN_HOST',
          host === undefined ? 'the request has no Host header, so no app can be chosen' : `no app serves the host "${host}"`,
          { host: host ?? null },
        );
      }
      status = await this.forwardToApp(app, req, res);
    } catch (err) {
      const fc = toFcError(err);
      status = fc.status;
      sendProblem(res, fc);
      if (fc.code === 'FC_ERR_INTERNAL') this.deps.logger.error({ err, host }, 'request failed');
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
    const app = await this.lookups.run(host, () => this.deps.store.appForHostname(host));
    if (app !== null) return app;
    if (this.unknownHosts.size >= 10_000) this.unknownHosts.clear();
    this.unknownHosts.set(host, now + UNKNOWN_HOST_TTL_MS);
    return undefined;
  }

  /** The proxy's own endpoints, for hosts no app serves. */
  private async serveOwn(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (req.method !== 'GET') return false;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok', role: 'proxy', apps: this.deps.cache.appCount, cmdbRev: this.deps.cache.snapshotRev });
      return true;
    }
    if (path === '/metrics') {
      await serveMetrics(this.deps.registry, res);
      return true;
    }
    return false;
  }

  private async forwardToApp(app: App, req: IncomingMessage, res: ServerResponse): Promise<number> {
    const { cache, clock } = this.deps;
    // A container gone before the dispatcher forwarded: any request without a body may go elsewhere.
    const retryable = !hasBody(req);
    // A failed connection may have failed after the request reached the app: only safe methods.
    const safe = retryable && SAFE_METHODS.has(req.method ?? '');
    const tried = new Set<string>();
    const now = clock.now();
    const usable = (e: ContainerEntry) => {
      if (tried.has(e.id)) return false;
      return this.hostUsable(e.host, now);
    };
    const forwarded = [
      'X-Forwarded-For', clientAddress(req),
      'X-Forwarded-Proto', 'http',
      'X-Forwarded-Host', req.headers.host ?? '',
    ];
    for (let attempt = 1; ; attempt++) {
      const decision = chooseEntry(cache.containersOf(app.name), this.random, usable);
      const entry = decision.kind === 'forward' ? decision.entry : await this.register(app, tried);
      tried.add(entry.id);
      const host = cache.host(entry.host);
      if (host === undefined) throw new FcError('FC_ERR_NO_COMPUTE_HOST', `host "${entry.host}" of container ${entry.id} is unknown`, { host: entry.host });
      const last = !retryable || attempt >= MAX_ATTEMPTS;
      const local = this.deps.local;
      if (local !== undefined && local.hostId === entry.host) {
        // The dispatcher is in this process: called directly, one hop less.
        const result = await local.serve(entry.id, req, res, upstreamRequestHeaders(req, untrusted, forwarded), !last);
        if (!result.retry) return result.status;
        this.metrics.retries.inc({ reason: 'container-gone' });
        continue;
      }
      try {
        const result = await forward({
          pool: this.poolFor(host.dispatcherUrl),
          req,
          res,
          headers: upstreamRequestHeaders(req, untrusted, [...forwarded, CONTAINER_HEADER, entry.id]),
          upstream: `the dispatcher of host ${host.id} (${host.dispatcherUrl})`,
          retryIf: last ? undefined : (status, headers) => status === 503 && headers[ERROR_HEADER] === 'FC_ERR_CONTAINER_GONE',
        });
        if (!result.retry) return result.status;
        this.metrics.retries.inc({ reason: 'container-gone' });
      } catch (err) {
        if (this.health.failed(host.id, err, clock.now())) {
          this.deps.logger.warn({ host: host.id, err: (err as Error).message }, 'dispatcher refused the connection; its host is passed over for a few seconds');
        }
        if (last || !safe || !(err instanceof FcError) || err.code !== 'FC_ERR_UPSTREAM') throw err;
        this.metrics.retries.inc({ reason: 'upstream-failed' });
        this.deps.logger.warn({ err: err.message, container: entry.id }, 'dispatcher failed; trying another container');
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
      // Entries on hosts not live (or just seen refusing connections) neither count nor get the
      // new container: placeContainer leaves their hosts out of the count (uncountedHosts).
      const live = [...cache.containersOf(app.name)].filter((c) => liveStates.includes(c.state) && !tried.has(c.id) && this.hostUsable(c.host, now)).length;
      const hosts = cache.allHosts().filter((h) => !this.health.suspect(h.id, now));
      let registered;
      try {
        registered = await placeContainer(store, app, hosts, cache.allContainers(), now, this.s.hostTimeout, { ifFewerThan: live + 1 });
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

  /** Whether requests may go to a host: live by its heartbeat, and not just seen refusing connections. */
  private hostUsable(hostId: string, now: number): boolean {
    const host = this.deps.cache.host(hostId);
    return host !== undefined && isHostLive(host, now, this.s.hostTimeout) && !this.health.suspect(hostId, now);
  }

  private poolFor(url: string): Pool {
    let pool = this.pools.get(url);
    if (pool === undefined) {
      pool = new Pool(url, { connections: this.s.upstreamConnections, pipelining: 1, keepAliveTimeout: 30_000 });
      this.pools.set(url, pool);
    }
    return pool;
  }

  /** Waits for forwarded requests to finish, then closes the connections to the dispatchers. */
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
    this.pools.clear();
  }
}

function clientAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
