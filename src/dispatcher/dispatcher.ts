// The dispatcher of one compute host. The proxies send it each request with the id of the
// container entry it is for (header x-fc-container). If that container runs here, the request is
// forwarded at once over pooled keep-alive connections; if not, the container is started (once,
// however many requests ask) and the requests are held, within a cap and a deadline, until it
// accepts connections. Containers are drained and removed at the end of their lifespan. At start
// and every so often, the engine's containers are reconciled with the CMDB.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { CmdbCache } from '../cmdb/cache.js';
import { newContainerEntry, newContainerId } from '../cmdb/placement.js';
import { liveStates, type App, type Change, type ContainerEntry, type ContainerPatch, type ContainerState, type Store } from '../cmdb/types.js';
import type { Clock, Timer } from '../shared/clock.js';
import { FcError, toFcError, type ErrorCode, errorCatalog } from '../shared/errors.js';
import { forward, upstreamRequestHeaders } from '../shared/forward.js';
import { sendJson, sendProblem } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { serveMetrics } from '../shared/metrics.js';
import { CONTAINER_HEADER } from '../shared/protocol.js';
import { SingleFlight } from '../shared/single-flight.js';
import { labelKeys, type ContainerRuntime, type ContainerSpec, type RuntimeEvent } from './container-runtime.js';
import { HeldRequests } from './held-requests.js';
import { drainDecision, dueForDrain, expiryOf } from './lifespan.js';
import { LocalContainer, type LocalPhase } from './local-container.js';
import { DispatcherMetrics } from './metrics.js';
import { deadHosts, planReconcile, type ReconcileAction } from './reconcile.js';
import { waitReady } from './wait-ready.js';

export interface DispatcherSettings {
  hostId: string;
  dispatcherUrl: string;
  hostCapacity: number;
  heartbeatInterval: number;
  startTimeout: number;
  readyPollInterval: number;
  startBackoff: number;
  queueLimit: number;
  queueTimeout: number;
  drainTimeout: number;
  drainGrace: number;
  stopTimeout: number;
  reconcileInterval: number;
  hostTimeout: number;
  pidsLimit: number;
  containerConnections: number;
}

export interface DispatcherDeps {
  store: Store;
  cache: CmdbCache;
  runtime: ContainerRuntime;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

/** How often lifespans are checked. */
const LIFESPAN_TICK_MS = 250;

function gone(entryId: string, why: string): FcError {
  return new FcError('FC_ERR_CONTAINER_GONE', `container ${entryId} ${why}`, { container: entryId }, { retryAfter: 1 });
}

export class Dispatcher {
  readonly metrics: DispatcherMetrics;
  private readonly locals = new Map<string, LocalContainer>();
  private readonly starts = new SingleFlight<string, LocalContainer>();
  private readonly drains = new SingleFlight<string, void>();
  private readonly reconciling = new SingleFlight<string, void>();
  private readonly held = new Map<string, HeldRequests>();
  private timers: Timer[] = [];
  private unwatch: (() => void) | undefined;
  private startedAt = 0;
  private url: string;
  private closed = false;
  private readonly onChange = (change: Change) => this.react(change);

  constructor(private readonly deps: DispatcherDeps, private readonly s: DispatcherSettings) {
    this.url = s.dispatcherUrl;
    this.metrics = new DispatcherMetrics(deps.registry, {
      held: () => [...this.held.values()].reduce((n, q) => n + q.size, 0),
      containers: () => {
        const byPhase = new Map<string, number>([['starting', 0], ['ready', 0], ['draining', 0], ['stopping', 0]]);
        for (const l of this.locals.values()) byPhase.set(l.phase, (byPhase.get(l.phase) ?? 0) + 1);
        return byPhase;
      },
    });
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  /** Before the server listens: checks the engine and adopts or removes what it runs for this host. */
  async prepare(): Promise<void> {
    await this.deps.runtime.ping();
    this.startedAt = this.deps.clock.now();
    await this.reconcile();
  }

  /**
   * Once the server listens: registers the host under the URL the proxies should use, then keeps
   * the heartbeat, lifespans and reconciliation going.
   */
  async start(dispatcherUrl: string = this.s.dispatcherUrl): Promise<void> {
    const { runtime, clock, cache } = this.deps;
    this.url = dispatcherUrl;
    await this.heartbeat();
    this.timers.push(
      clock.setInterval(() => void this.heartbeat(), this.s.heartbeatInterval),
      clock.setInterval(() => void this.reconcile().catch((err: unknown) => this.log.error({ err }, 'reconcile failed')), this.s.reconcileInterval),
      clock.setInterval(() => this.checkLifespans(), LIFESPAN_TICK_MS),
    );
    cache.on('change', this.onChange);
    this.unwatch = runtime.watch({ [labelKeys.host]: this.s.hostId }, (e) => this.onRuntimeEvent(e));
    this.log.info({ host: this.s.hostId, url: this.url, runtime: runtime.name, adopted: this.locals.size }, 'dispatcher started');
  }

  /** The request handler for the dispatcher's HTTP server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const entryId = req.headers[CONTAINER_HEADER];
    if (typeof entryId === 'string') void this.serve(entryId, req, res);
    else void this.serveOwn(req, res);
  };

  private async serve(entryId: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const begin = performance.now();
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort(new Error('client went away'));
    };
    res.once('close', onClose);
    let app = this.deps.cache.container(entryId)?.app ?? '';
    let status: number;
    try {
      const local = await this.admit(entryId, abort.signal);
      app = local.app;
      status = await this.forwardTo(local, req, res);
    } catch (err) {
      if (abort.signal.aborted) {
        // The client went away while its request was held: nobody to answer, nothing wrong.
        status = 499;
      } else {
        const fc = toFcError(err);
        status = fc.status;
        sendProblem(res, fc);
        if (fc.code === 'FC_ERR_INTERNAL') this.log.error({ err, container: entryId }, 'request failed');
      }
    } finally {
      res.off('close', onClose);
    }
    this.metrics.requests.inc({ app, status: String(status) });
    this.metrics.requestSeconds.observe({ app }, (performance.now() - begin) / 1000);
  }

  /** Step 1 of the request path: a ready (or still draining) container, starting it if needed. */
  private async admit(entryId: string, signal: AbortSignal): Promise<LocalContainer> {
    const local = this.locals.get(entryId);
    if (local !== undefined) {
      if (local.phase === 'ready') return local;
      // A draining container still takes requests routed to it before the proxies heard, for the
      // grace period; later ones go elsewhere (the proxy retries them).
      if (local.phase === 'draining') {
        if (this.deps.clock.now() - (local.drainingSince ?? 0) <= this.s.drainGrace) return local;
        throw gone(entryId, 'is draining');
      }
      if (local.phase === 'stopping') throw gone(entryId, 'is being stopped');
    }
    const entry = this.deps.cache.container(entryId) ?? (await this.deps.store.getContainer(entryId));
    if (entry === null || entry === undefined) throw gone(entryId, 'no longer exists');
    if (entry.host !== this.s.hostId) throw gone(entryId, `belongs to host ${entry.host}, not ${this.s.hostId}`);
    if (entry.state === 'draining' || entry.state === 'gone') throw gone(entryId, `is ${entry.state}`);
    if (!this.starts.has(entryId)) this.failFastAfterFailedStart(entry);
    let queue = this.held.get(entryId);
    if (queue === undefined) {
      queue = new HeldRequests(`container ${entryId} of app ${entry.app}`, this.s.queueLimit, this.s.queueTimeout, this.deps.clock);
      this.held.set(entryId, queue);
    }
    try {
      return await queue.hold(this.ensureStarted(entryId), signal);
    } finally {
      if (queue.size === 0 && !this.starts.has(entryId)) this.held.delete(entryId);
    }
  }

  /** Within the back-off after a failed start, answer with that failure instead of trying again. */
  private failFastAfterFailedStart(entry: ContainerEntry): void {
    const now = this.deps.clock.now();
    if (entry.retryAt === null || entry.retryAt <= now || entry.lastError === null) return;
    const code = (entry.lastErrorCode ?? 'FC_ERR_START_FAILED') as ErrorCode;
    const known = code in errorCatalog ? code : 'FC_ERR_START_FAILED';
    throw new FcError(known, entry.lastError, { container: entry.id, image: entry.image }, { retryAfter: Math.max(1, Math.ceil((entry.retryAt - now) / 1000)) });
  }

  /** Step 2: forward to the container and stream its answer back. */
  private async forwardTo(local: LocalContainer, req: IncomingMessage, res: ServerResponse): Promise<number> {
    const pool = local.pool;
    if (pool === null) throw gone(local.id, 'has no connection pool');
    local.enter();
    try {
      const headers = upstreamRequestHeaders(req, (name) => name.startsWith('x-fc-'), []);
      const { status } = await forward({ pool, req, res, headers, upstream: `container ${local.id} (app ${local.app}) at ${local.address ?? '?'}` });
      return status;
    } finally {
      local.leave();
    }
  }

  ensureStarted(entryId: string): Promise<LocalContainer> {
    const local = this.locals.get(entryId);
    if (local?.phase === 'ready') return Promise.resolve(local);
    return this.starts.run(entryId, () => this.startContainer(entryId));
  }

  private async appOf(name: string): Promise<App | null> {
    return this.deps.cache.app(name) ?? (await this.deps.store.getApp(name));
  }

  private containerSpec(app: App, entryId: string): ContainerSpec {
    return {
      name: `fc-${entryId}`,
      image: app.image,
      command: app.command,
      env: app.env,
      port: app.port,
      volumes: app.volumes,
      cpus: app.cpus,
      memory: app.memory,
      pidsLimit: this.s.pidsLimit,
      labels: {
        [labelKeys.managed]: 'true',
        [labelKeys.app]: app.name,
        [labelKeys.container]: entryId,
        [labelKeys.host]: this.s.hostId,
      },
    };
  }

  private async startContainer(entryId: string): Promise<LocalContainer> {
    const { store, cache, runtime, clock } = this.deps;
    const t0 = clock.now();
    const entry = cache.container(entryId) ?? (await store.getContainer(entryId));
    if (entry === null || entry === undefined) throw gone(entryId, 'no longer exists');
    const app = await this.appOf(entry.app);
    if (app === null) {
      await store.transitionContainer(entryId, liveStates, 'gone');
      throw gone(entryId, `belongs to app ${entry.app}, which no longer exists`);
    }
    const local = new LocalContainer(entryId, app.name);
    this.locals.set(entryId, local);
    const what = `container ${entryId} of app ${app.name} (image ${app.image})`;
    try {
      // A starting or ready entry that this process is not running is a leftover of an earlier
      // dispatcher on this host: this process owns the host's entries, so it takes them over.
      const starting = await store.transitionContainer(entryId, liveStates, 'starting', {
        startedAt: t0, image: app.image, cpus: app.cpus, address: null, runtimeId: null, readyAt: null, expiresAt: null,
        lastError: null, lastErrorCode: null, retryAt: null,
      });
      if (starting === null) throw gone(entryId, 'was drained or removed before it could start');
      cache.observe(starting);
      const runtimeId = await runtime.create(this.containerSpec(app, entryId));
      local.runtimeId = runtimeId;
      const info = await runtime.start(runtimeId);
      if (info.ip === null) throw new FcError('FC_ERR_START_FAILED', `${what} has no address on its network`, { image: app.image }, { retryAfter: 5 });
      await waitReady({
        ip: info.ip, port: app.port, readinessPath: app.readinessPath, hostHeader: app.hostnames[0] ?? 'localhost',
        deadline: t0 + this.s.startTimeout, intervalMs: this.s.readyPollInterval, clock, what,
        check: async () => {
          const now = await runtime.inspect(runtimeId);
          if (now === null || !now.running) {
            const logs = await runtime.logs(runtimeId, 20);
            throw new FcError('FC_ERR_START_FAILED', `${what} exited${now?.exitCode == null ? '' : ` with code ${now.exitCode}`} before listening on port ${app.port}${logs === '' ? '' : `; its last output: ${logs}`}`, { image: app.image, exitCode: now?.exitCode ?? null }, { retryAfter: 5 });
          }
        },
      });
      const address = `${info.ip}:${app.port}`;
      const readyAt = clock.now();
      const expiresAt = expiryOf(readyAt, app.lifespan);
      const ready = await store.transitionContainer(entryId, ['starting'], 'ready', { address, runtimeId, readyAt, expiresAt });
      if (ready === null) throw gone(entryId, 'was drained or removed while it started');
      cache.observe(ready);
      local.markReady(address, expiresAt, this.s.containerConnections);
      this.metrics.coldStarts.inc({ app: app.name, result: 'ok' });
      this.metrics.coldStartSeconds.observe({ app: app.name }, (readyAt - t0) / 1000);
      this.log.info({ container: entryId, app: app.name, address, ms: readyAt - t0 }, 'container ready');
      return local;
    } catch (err) {
      const fc = toFcError(err);
      if (fc.code === 'FC_ERR_CONTAINER_GONE') {
        // Drained or deleted while starting: nothing to record but its end.
        await this.retire(local, { from: ['starting', 'draining'], to: 'gone' });
        throw fc;
      }
      // The entry stays, with the reason, for ps and for the requests within the back-off.
      await this.retire(local, {
        from: ['starting'], to: 'registered',
        patch: { lastError: fc.message, lastErrorCode: fc.code, retryAt: clock.now() + this.s.startBackoff, runtimeId: null, address: null },
      });
      this.metrics.coldStarts.inc({ app: app.name, result: fc.code });
      this.log.warn({ container: entryId, app: app.name, code: fc.code, err: fc.message }, 'container start failed');
      throw fc;
    }
  }

  /**
   * The one way a container leaves this dispatcher: no new requests, its connections closed, the
   * container stopped (if asked) and removed, the CMDB told, and only then forgotten here, so that
   * reconciliation never sees it half-gone. An entry found draining instead (drained meanwhile)
   * is marked gone: it has no container any more.
   */
  private async retire(
    local: LocalContainer,
    move: { from: readonly ContainerState[]; to: ContainerState; patch?: ContainerPatch; stop?: boolean },
  ): Promise<void> {
    const { store, cache, runtime } = this.deps;
    local.phase = 'stopping';
    const runtimeId = local.runtimeId;
    if (runtimeId !== null && move.stop === true) {
      await runtime.stop(runtimeId, this.s.stopTimeout).catch((err: unknown) => this.log.warn({ err, container: local.id }, 'stop failed'));
    }
    await local.closePool('close');
    if (runtimeId !== null) {
      await runtime.remove(runtimeId).catch((err: unknown) => this.log.error({ err, container: local.id }, 'could not remove container'));
    }
    try {
      const next =
        (await store.transitionContainer(local.id, move.from, move.to, move.patch)) ??
        (await store.transitionContainer(local.id, ['draining'], 'gone'));
      if (next !== null) cache.observe(next);
    } catch (err) {
      this.log.error({ err, container: local.id }, 'could not record the container\'s end in the CMDB; reconciliation will');
    }
    if (this.locals.get(local.id) === local) this.locals.delete(local.id);
  }

  /** Drains a container: no new requests, in-flight ones finish (within the timeout), then stop and remove. */
  drain(entryId: string, reason: string): Promise<void> {
    return this.drains.run(entryId, async () => {
      const { store, cache, clock } = this.deps;
      const local = this.locals.get(entryId);
      if (local === undefined) {
        // Not running here: a draining entry without a container is simply gone.
        const g = await store.transitionContainer(entryId, ['draining'], 'gone');
        if (g) cache.observe(g);
        return;
      }
      // Still starting: the start sees the entry draining at its end and retires it itself.
      if (local.phase !== 'ready' && local.phase !== 'draining') return;
      if (local.phase === 'ready') {
        local.phase = 'draining';
        local.drainingSince = clock.now();
      }
      const since = local.drainingSince ?? clock.now();
      const marked = await store.transitionContainer(entryId, ['ready'], 'draining').catch(() => null);
      if (marked) cache.observe(marked);
      this.log.info({ container: entryId, app: local.app, reason, inflight: local.inflight }, 'draining container');
      const policy = { graceMs: this.s.drainGrace, timeoutMs: this.s.drainTimeout };
      while (drainDecision({ inflight: local.inflight, drainingSince: since }, clock.now(), policy) === 'wait') {
        const now = clock.now();
        if (local.inflight > 0) await Promise.race([local.whenIdle(), clock.sleep(Math.max(1, since + policy.timeoutMs - now))]);
        else await clock.sleep(Math.max(1, since + policy.graceMs - now));
      }
      await this.retire(local, { from: ['draining', 'ready'], to: 'gone', stop: true });
      this.metrics.drains.inc({ app: local.app, reason });
      this.log.info({ container: entryId, app: local.app, reason, ms: clock.now() - since }, 'container removed');
    });
  }

  private checkLifespans(): void {
    if (this.closed) return;
    const aging = [...this.locals.values()].map((l) => ({ id: l.id, phase: l.phase, expiresAt: l.expiresAt }));
    for (const id of dueForDrain(aging, this.deps.clock.now())) {
      void this.drain(id, 'lifespan').catch((err: unknown) => this.log.error({ err, container: id }, 'drain failed'));
    }
  }

  /** Reacts to CMDB changes made elsewhere: drains asked for through the API, app deletions, warm starts. */
  private react(change: Change): void {
    if (this.closed || change.kind !== 'container' || change.value.host !== this.s.hostId) return;
    const id = change.value.id;
    const local = this.locals.get(id);
    if (local !== undefined && (change.op === 'delete' || change.value.state === 'draining') && local.phase === 'ready') {
      void this.drain(id, change.op === 'delete' ? 'removed' : 'requested').catch((err: unknown) => this.log.error({ err, container: id }, 'drain failed'));
    } else if (change.op === 'put' && change.value.state === 'registered') {
      this.warmStart(change.value);
    }
  }

  /**
   * Registered entries of this host are started as soon as the dispatcher hears of them, not only
   * on their first request: the proxy sends nothing to an entry that is not ready while the app has
   * a ready one, so an entry added to scale out, or to keep minContainers, would otherwise never
   * start. Not within the back-off after a failed start.
   */
  private warmStart(entry: ContainerEntry): void {
    if (this.closed || this.locals.has(entry.id) || this.starts.has(entry.id) || this.deps.cache.app(entry.app) === undefined) return;
    if (entry.retryAt !== null && entry.retryAt > this.deps.clock.now()) return;
    void this.ensureStarted(entry.id).catch(() => undefined);
  }

  private async ensureMinimum(): Promise<void> {
    const { cache, store, clock } = this.deps;
    const mine = cache.allContainers().filter((c) => c.host === this.s.hostId && c.state !== 'gone').length;
    for (const app of cache.allApps()) {
      if (app.minContainers === 0) continue;
      const live = [...cache.containersOf(app.name)].filter((c) => liveStates.includes(c.state)).length;
      if (live < app.minContainers && mine < this.s.hostCapacity) {
        const fresh = newContainerEntry(app, this.s.hostId, clock.now(), newContainerId(app.name));
        const { entry, created } = await store.registerContainer(fresh, { ifFewerThan: app.minContainers });
        if (created) cache.observe(entry);
      }
    }
    for (const c of cache.allContainers()) if (c.host === this.s.hostId && c.state === 'registered') this.warmStart(c);
  }

  /**
   * Entries on hosts silent for six host timeouts go: those dispatchers are gone for good, and
   * their entries would hold places under maxContainers forever. Any dispatcher may do this; the
   * transitions are compare-and-set, so doing it twice is harmless.
   */
  private async sweepDeadHosts(): Promise<void> {
    const { cache, store, clock } = this.deps;
    for (const hostId of deadHosts(cache.allHosts(), clock.now(), this.s.hostTimeout * 6, this.s.hostId)) {
      for (const c of cache.allContainers().filter((e) => e.host === hostId)) {
        const g = await store.transitionContainer(c.id, ['registered', 'starting', 'ready', 'draining'], 'gone', { lastError: `host ${hostId} went silent` });
        if (g) cache.observe(g);
      }
      await store.removeHost(hostId);
      this.log.warn({ host: hostId }, 'removed a host silent for too long, and its container entries');
    }
  }

  /**
   * A container that dies on its own takes its entry with it. The next request registers a fresh
   * one (and the dispatchers keeping minContainers do so at their next reconciliation), so a
   * container that keeps crashing is restarted on demand, not in a loop.
   */
  private onRuntimeEvent(e: RuntimeEvent): void {
    const entryId = e.labels[labelKeys.container];
    const local = entryId === undefined ? undefined : this.locals.get(entryId);
    if (local === undefined || local.runtimeId !== e.id || local.phase !== 'ready') return;
    this.log.warn({ container: entryId, app: local.app, exitCode: e.exitCode, event: e.type }, 'container died');
    void this.retireDead(local, `the container exited${e.exitCode === null ? '' : ` with code ${e.exitCode}`}`);
  }

  private async retireDead(local: LocalContainer, why: string): Promise<void> {
    await this.retire(local, { from: ['ready', 'draining'], to: 'gone', patch: { lastError: why, lastErrorCode: 'FC_ERR_START_FAILED' } });
    this.metrics.drains.inc({ app: local.app, reason: 'died' });
  }

  private async heartbeat(): Promise<void> {
    const now = this.deps.clock.now();
    try {
      await this.deps.store.heartbeatHost({
        id: this.s.hostId, dispatcherUrl: this.url, capacity: this.s.hostCapacity, startedAt: this.startedAt, heartbeatAt: now,
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
  }

  /** Makes the engine and the CMDB agree for this host: adopt, remove orphans, reset or forget entries. */
  reconcile(): Promise<void> {
    return this.reconciling.run('host', async () => {
      const { runtime, store } = this.deps;
      const [containers, entries] = await Promise.all([runtime.list({ [labelKeys.host]: this.s.hostId }), store.listContainers({ host: this.s.hostId })]);
      // Containers being started or retired are in flux: reconciliation leaves them alone.
      const tracked = new Map([...this.locals].map(([id, l]) => [id, l.phase === 'ready' || l.phase === 'draining' ? l.runtimeId : null]));
      for (const action of planReconcile({ runtime: containers, entries, tracked })) {
        this.metrics.reconcileActions.inc({ action: action.kind });
        try {
          await this.applyReconcile(action);
        } catch (err) {
          this.log.error({ err, action: action.kind }, 'a reconcile action failed; the next pass tries again');
        }
      }
      await this.sweepDeadHosts();
      await this.ensureMinimum();
    });
  }

  private async applyReconcile(action: ReconcileAction): Promise<void> {
    const { runtime, store, cache, clock } = this.deps;
    switch (action.kind) {
      case 'adopt': {
        const app = await this.appOf(action.entry.app);
        const ip = action.container.ip ?? (await runtime.inspect(action.container.id))?.ip ?? null;
        if (app === null || ip === null) {
          await runtime.remove(action.container.id);
          const g = await store.transitionContainer(action.entry.id, ['ready', 'draining'], 'gone');
          if (g) cache.observe(g);
          return;
        }
        const local = new LocalContainer(action.entry.id, app.name);
        local.runtimeId = action.container.id;
        local.markReady(`${ip}:${app.port}`, action.entry.expiresAt ?? expiryOf(clock.now(), app.lifespan), this.s.containerConnections);
        this.locals.set(action.entry.id, local);
        this.log.info({ container: action.entry.id, app: app.name, address: local.address }, 'adopted running container');
        if (action.entry.state === 'draining') void this.drain(action.entry.id, 'requested').catch(() => undefined);
        return;
      }
      case 'remove':
        this.log.info({ runtimeId: action.container.id.slice(0, 12), name: action.container.name, reason: action.reason }, 'removing orphan container');
        await runtime.remove(action.container.id);
        return;
      case 'reset': {
        const reset = await store.transitionContainer(action.entry.id, [action.entry.state], 'registered', {
          address: null, runtimeId: null, startedAt: null, readyAt: null, expiresAt: null,
        });
        if (reset) cache.observe(reset);
        return;
      }
      case 'forget': {
        const g = await store.transitionContainer(action.entry.id, ['draining'], 'gone');
        if (g) cache.observe(g);
        return;
      }
      case 'lost': {
        const local = this.locals.get(action.entryId);
        if (local !== undefined && (local.phase === 'ready' || local.phase === 'draining')) {
          this.log.warn({ container: local.id, app: local.app }, 'container is no longer running');
          await this.retireDead(local, 'the container stopped running');
        }
        return;
      }
    }
  }

  private async serveOwn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method === 'GET' && path === '/healthz') {
        await this.deps.store.ping();
        return sendJson(res, 200, { status: 'ok', role: 'dispatcher', host: this.s.hostId, containers: this.locals.size });
      }
      if (req.method === 'GET' && path === '/metrics') return await serveMetrics(this.deps.registry, res);
      if (req.method === 'GET' && path === '/v1/containers') return sendJson(res, 200, { host: this.s.hostId, containers: this.localView() });
      throw new FcError('FC_ERR_NOT_FOUND', `the dispatcher has no ${req.method ?? ''} ${path ?? ''}; proxied requests carry the ${CONTAINER_HEADER} header`);
    } catch (err) {
      sendProblem(res, err);
    }
  }

  localView(): { id: string; app: string; phase: LocalPhase; address: string | null; inflight: number; held: number; expiresAt: number | null }[] {
    return [...this.locals.values()].map((l) => ({
      id: l.id, app: l.app, phase: l.phase, address: l.address, inflight: l.inflight, held: this.held.get(l.id)?.size ?? 0, expiresAt: l.expiresAt,
    }));
  }

  /**
   * Stops and removes every container this dispatcher runs, after their in-flight requests (the
   * servers are closed first). For the embedded CMDB, whose entries die with the process: nothing
   * could adopt the containers later.
   */
  async removeAll(): Promise<void> {
    this.closed = true;
    // Starts under way finish (or fail) first, so that none leaves a container behind.
    await Promise.allSettled([...this.locals.keys()].map((id) => this.starts.has(id) ? this.ensureStarted(id) : Promise.resolve()));
    await Promise.all(
      [...this.locals.values()].map(async (local) => {
        await Promise.race([local.whenIdle(), this.deps.clock.sleep(this.s.drainTimeout)]);
        await this.retire(local, { from: ['ready', 'draining', 'starting'], to: 'gone', stop: true });
      }),
    );
  }

  private stopLoops(): void {
    this.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.unwatch?.();
    this.deps.cache.off('change', this.onChange);
  }

  /**
   * Stops the loops and closes the connections to the containers once their requests are done;
   * the containers keep running and are adopted at the next start.
   */
  async close(): Promise<void> {
    this.stopLoops();
    await Promise.all([...this.locals.values()].map((l) => l.closePool('close')));
  }

  /** Stops the loops and cuts the connections to the containers at once. */
  async destroy(): Promise<void> {
    this.stopLoops();
    await Promise.all([...this.locals.values()].map((l) => l.closePool('destroy')));
  }
}
