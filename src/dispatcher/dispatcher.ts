// The dispatcher of one compute host. The proxies send it each request with the id of the
// container entry it is for (header x-fc-container). This class only wires the concerns together,
// each a file of its own:
//   request-path.ts  admit (start if needed, hold within a cap and a deadline), forward, record
//   lifecycle.ts     start once, ready, drain, retire; reactions to CMDB changes and deaths, wiring
//                    renewal.ts (make-before-break metabolism), freezer.ts, quotas.ts
//   host-loops.ts    heartbeat, reconciliation with the engine, dead hosts, minContainers
//   autoscaler/      the signals' loop (autoscaler.ts) and the pure decision (decide.ts)
//   signals/         per-container windows of requests and cgroup CPU counters
// Its port (behind hop-gate.ts) serves only requests proxies signed; its own endpoints (health,
// its containers) are served by the process's admin listener (src/shared/admin.ts).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Change } from '../cmdb/types.js';
import { answerBuffering } from '../shared/answer-buffer.js';
import type { Timer } from '../shared/clock.js';
import type { LocalDispatch } from '../shared/protocol.js';
import { Autoscaler } from './autoscaler/autoscaler.js';
import { labelKeys } from './container-runtime.js';
import { StartTimes, type DispatcherContext, type DispatcherDeps, type DispatcherSettings } from './context.js';
import { HostLease } from './host-lease.js';
import { HostLoops } from './host-loops.js';
import { ContainerLifecycle } from './lifecycle.js';
import type { LocalPhase } from './local-container.js';
import { DispatcherMetrics } from './metrics.js';
import { RequestPath } from './request-path.js';
import { CgroupCpu } from './signals/cgroup.js';
import { UpgradePath } from './upgrade.js';
import { LogShipper } from './log-shipper.js';
import { UsageMeter } from './usage-meter.js';

export type { DispatcherDeps, DispatcherSettings } from './context.js';

/** How often lifespans are checked. */
const LIFESPAN_TICK_MS = 250;
/** How often every app's minContainers is checked (besides at reconciliation). */
const MINIMUM_TICK_MS = 1_000;
/** How often the autoscaler samples CPU and decides (and at once on a slow request). */
const AUTOSCALE_TICK_MS = 500;
/** How often each container's figures go to the CMDB for `ps`; they expire after three times that. */
const STATS_INTERVAL_MS = 2_000;

export class Dispatcher {
  readonly metrics: DispatcherMetrics;
  private readonly ctx: DispatcherContext;
  private readonly lifecycle: ContainerLifecycle;
  private readonly requests: RequestPath;
  private readonly upgrades: UpgradePath;
  private readonly loops: HostLoops;
  private readonly autoscaler: Autoscaler;
  private timers: Timer[] = [];
  private unwatch: (() => void) | undefined;
  private readonly onChange = (change: Change) => {
    this.lifecycle.react(change);
    // minContainers held within moments of an app's creation or change, and a drain acted on at once.
    if ((change.kind === 'app' && change.op === 'put') || (change.kind === 'host' && change.value.id === this.ctx.s.hostId)) this.loops.onChange();
  };
  /** The CMDB answers again, or lost its data (a new epoch): re-announce the host and reconcile at once. */
  private readonly onHealth = (healthy: boolean) => {
    if (healthy) this.loops.reannounce('the CMDB answers again');
  };
  private readonly onEpoch = () => this.loops.reannounce('the CMDB lost its data (new epoch)');

  constructor(private readonly deps: DispatcherDeps, s: DispatcherSettings) {
    const locals: DispatcherContext['locals'] = new Map();
    const held: DispatcherContext['held'] = new Map();
    this.metrics = new DispatcherMetrics(deps.registry, {
      held: () => [...held.values()].reduce((n, q) => n + q.size, 0),
      containers: () => {
        const byPhase = new Map<string, number>([['starting', 0], ['ready', 0], ['draining', 0], ['stopping', 0]]);
        for (const l of locals.values()) byPhase.set(l.phase, (byPhase.get(l.phase) ?? 0) + 1);
        return byPhase;
      },
      warm: () => deps.runtime.warmStats(),
      quotas: () => {
        const byApp = new Map<string, number>();
        for (const l of locals.values()) if (l.phase !== 'stopping') byApp.set(l.app, (byApp.get(l.app) ?? 0) + l.cpus);
        return byApp;
      },
    });
    this.ctx = { deps, s, metrics: this.metrics, log: deps.logger, locals, held, closed: false, url: s.dispatcherUrl, startedAt: 0, startTimes: new StartTimes(),
      cgroup: new CgroupCpu({ fallback: (id) => deps.runtime.cpuStats(id) }),
      lease: new HostLease(deps.store, s.hostId, s.heartbeatInterval, deps.clock, deps.logger),
      usage: undefined as unknown as UsageMeter,
      logs: undefined as unknown as LogShipper,
      answers: answerBuffering(s, () => this.metrics.slowReaders.inc()),
    };
    this.ctx.usage = new UsageMeter(this.ctx);
    this.ctx.logs = new LogShipper(this.ctx);
    this.lifecycle = new ContainerLifecycle(this.ctx);
    this.autoscaler = new Autoscaler(this.ctx, this.lifecycle);
    this.requests = new RequestPath(this.ctx, this.lifecycle, (app) => this.autoscaler.onSlowRequest(app));
    this.loops = new HostLoops(this.ctx, this.lifecycle);
    this.upgrades = new UpgradePath(this.ctx, this.requests, s.upgradeIdleTimeout);
  }

  /**
   * Before the server listens: claims the host id (FC_ERR_HOST_ID_TAKEN, having touched nothing,
   * while another dispatcher holds it), checks the engine and adopts or removes what it runs for
   * this host.
   */
  async prepare(): Promise<void> {
    await this.ctx.lease.acquire();
    try {
      await this.deps.runtime.ping();
      this.ctx.startedAt = this.deps.clock.now();
      // Adopted containers' usage continues from what the CMDB last heard of them.
      await this.ctx.usage.loadCursors();
      await this.loops.reconcile();
      await this.ctx.usage.dropStaleCursors();
      await this.deps.runtime.prepare();
    } catch (err) {
      await this.ctx.lease.release();
      throw err;
    }
  }

  /**
   * Once the server listens: registers the host under the URL the proxies should use, then keeps
   * the heartbeat, lifespans and reconciliation going.
   */
  async start(dispatcherUrl: string = this.ctx.s.dispatcherUrl): Promise<void> {
    const { runtime, clock, cache } = this.deps;
    const { ctx, loops, lifecycle, autoscaler } = this;
    ctx.url = dispatcherUrl;
    await loops.heartbeat();
    this.timers.push(
      clock.setInterval(() => void loops.heartbeat(), ctx.s.heartbeatInterval),
      clock.setInterval(() => void loops.reconcile().catch((err: unknown) => ctx.log.error({ err }, 'reconcile failed')), ctx.s.reconcileInterval),
      clock.setInterval(() => lifecycle.checkLifespans(), LIFESPAN_TICK_MS),
      clock.setInterval(() => void loops.ensureMinimum().catch((err: unknown) => ctx.log.warn({ err }, 'keeping minContainers failed')), MINIMUM_TICK_MS),
      clock.setInterval(() => void autoscaler.tick(), AUTOSCALE_TICK_MS),
      clock.setInterval(() => void autoscaler.reportStats(STATS_INTERVAL_MS * 3), STATS_INTERVAL_MS),
      clock.setInterval(() => void ctx.usage.flush(), ctx.usage.everyMs),
    );
    ctx.logs.start();
    cache.on('change', this.onChange);
    cache.on('health', this.onHealth);
    cache.on('epoch', this.onEpoch);
    this.unwatch = runtime.watch({ [labelKeys.host]: ctx.s.hostId }, (e) => lifecycle.onRuntimeEvent(e));
    ctx.log.info({ host: ctx.s.hostId, url: ctx.url, runtime: runtime.name, adopted: ctx.locals.size }, 'dispatcher started');
  }

  /** A proxied request for a container entry, once hop-gate.ts has checked the proxy's signature. */
  readonly serveProxied = (entryId: string, req: IncomingMessage, res: ServerResponse): void => {
    void this.requests.serve(entryId, req, res);
  };

  /** A proxied upgrade (WebSocket) for a container entry, once hop-gate.ts has checked its signature. */
  readonly serveProxiedUpgrade = (entryId: string, req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.upgrades.serve(entryId, req, socket, head);
  };

  /** This dispatcher as the proxy of the same process sees it: no HTTP hop (`fastcontainer up`). */
  get local(): LocalDispatch {
    return {
      hostId: this.ctx.s.hostId,
      serve: (entryId, req, res, headers, retryIfGone, body) => this.requests.serve(entryId, req, res, headers, retryIfGone, body),
      upgrade: (entryId, req, socket, head, headers, retryIfGone) => this.upgrades.serve(entryId, req, socket, head, headers, retryIfGone),
    };
  }

  /** Closes every WebSocket of this host's containers with 1001 (a shutdown's drain timeout is over). */
  goingAway(): Promise<void> {
    return Promise.all([...this.ctx.locals.values()].map((l) => l.tunnels.goingAway())).then(() => undefined);
  }

  ensureStarted(entryId: string): Promise<unknown> {
    return this.lifecycle.ensureStarted(entryId);
  }

  /** Drains a container: no new requests, in-flight ones finish (within the timeout), then stop and remove. */
  drain(entryId: string, reason: string): Promise<void> {
    return this.lifecycle.drain(entryId, reason);
  }

  reconcile(): Promise<void> {
    return this.loops.reconcile();
  }

  get hostId(): string {
    return this.ctx.s.hostId;
  }

  /**
   * For the admin listener's /healthz. The cache's probe is the CMDB check (every second, within
   * its deadline), so this answers at once; "degraded", not an error, while the CMDB is away or
   * the host id lease is not held: the dispatcher still serves its containers.
   */
  health(): Record<string, unknown> {
    const { cache } = this.deps;
    const { ctx } = this;
    const ok = cache.cmdbHealthy && ctx.lease.held;
    return {
      status: ok ? 'ok' : 'degraded', host: ctx.s.hostId, containers: ctx.locals.size,
      cmdb: { healthy: cache.cmdbHealthy, since: cache.health.since }, hostLease: ctx.lease.held ? 'held' : 'not held',
    };
  }

  localView(): { id: string; app: string; phase: LocalPhase; address: string | null; inflight: number; held: number; expiresAt: number | null }[] {
    return [...this.ctx.locals.values()].map((l) => ({
      id: l.id, app: l.app, phase: l.phase, address: l.address, inflight: l.inflight, held: this.ctx.held.get(l.id)?.size ?? 0, expiresAt: l.expiresAt,
    }));
  }

  /**
   * Stops and removes every container this dispatcher runs, after their in-flight requests (the
   * servers are closed first). For the embedded CMDB, whose entries die with the process.
   */
  removeAll(): Promise<void> {
    return this.lifecycle.removeAll();
  }

  private stopLoops(): void {
    this.ctx.closed = true;
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.unwatch?.();
    this.deps.cache.off('change', this.onChange);
    this.deps.cache.off('health', this.onHealth);
    this.deps.cache.off('epoch', this.onEpoch);
  }

  /**
   * Stops the loops and closes the connections to the containers once their requests are done;
   * the containers keep running and are adopted at the next start.
   */
  async close(): Promise<void> {
    this.stopLoops();
    await Promise.all([this.autoscaler.settle(), this.lifecycle.settle()]);
    // The usage and output counted since the last writes go now: the next process continues from them.
    await Promise.all([this.ctx.usage.flush(), this.ctx.logs.close()]);
    await Promise.all([...this.ctx.locals.values()].map((l) => l.closePool('close')));
    await this.ctx.lease.release();
  }

  /** Stops the loops and cuts the connections to the containers at once. */
  async destroy(): Promise<void> {
    this.stopLoops();
    void this.ctx.logs.close().catch(() => undefined);
    await Promise.all([this.autoscaler.settle(), this.lifecycle.settle()]);
    await Promise.all([...this.ctx.locals.values()].map((l) => l.closePool('destroy')));
    await this.ctx.lease.release();
  }
}
