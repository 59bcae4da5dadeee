// The autoscaler's loop, thin on purpose: every tick it samples the cgroup CPU counters of the
// containers this host runs, builds each app's signals from their windows, asks the pure decide()
// what to do, and applies it: a live quota change (scale up/down), a new entry in the CMDB
// (scale out, placed like any other), or a drain (scale in). A request slower than its app's target
// makes it look at that app at once instead of at the next tick. It also reports each container's
// figures to the CMDB for `ps` and the CoreAPI.

import { placeContainer } from '../../cmdb/placement.js';
import { liveStates, type App, type ContainerStats } from '../../cmdb/types.js';
import { withScalingDefaults } from '../../cmdb/app-defaults.js';
import { toFcError } from '../../shared/errors.js';
import type { DispatcherContext } from '../context.js';
import { recordEvent } from '../events.js';
import type { ContainerLifecycle } from '../lifecycle.js';
import type { LocalContainer } from '../local-container.js';
import { decide, defaultPolicy, scaleDownDelayAfterUp, type AppSignals, type ContainerSignals, type Decision, type ScalerPolicy } from './decide.js';

/** Short window: what decides scaling up and out (the paper's "at once"). */
export const SHORT_WINDOW_MS = 2_000;
/** Long window: what must be quiet before scaling down. */
export const STABLE_WINDOW_MS = 10_000;
/** The window `ps` shows rates and latencies over. */
const STATS_WINDOW_MS = 10_000;

/** A container's CPU counters are sampled at most this often, however many rounds run. */
const MIN_SAMPLE_GAP_MS = 250;
/** The engine's stats API (the fallback where cgroup files cannot be read) gets this long. */
const SAMPLE_TIMEOUT_MS = 2_000;

export class Autoscaler {
  private readonly lastScaleOutAt = new Map<string, number>();
  private readonly lastScaleInAt = new Map<string, number>();
  /** What the next round looks at: the apps slow requests asked about, or all; null: nothing asked. */
  private pending: Set<string> | 'all' | null = null;
  private urgentScheduled = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly ctx: DispatcherContext,
    private readonly lifecycle: ContainerLifecycle,
    private readonly policy: ScalerPolicy = defaultPolicy,
  ) {}

  /** From the request path: a request of this app took longer than its target. */
  onSlowRequest(app: string): void {
    if (this.ctx.closed) return;
    this.want(app);
    if (this.urgentScheduled) return;
    this.urgentScheduled = true;
    this.ctx.deps.clock.setTimeout(() => {
      this.urgentScheduled = false;
      this.kick();
    }, 0);
  }

  /** One round for every app on this host (the timer calls it every tick). */
  tick(): Promise<void> {
    this.want(null);
    return this.kick();
  }

  /** Waits for the round under way, if any (at close). */
  async settle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private want(app: string | null): void {
    if (app === null || this.pending === 'all') {
      this.pending = 'all';
      return;
    }
    if (this.pending === null) this.pending = new Set();
    this.pending.add(app);
  }

  /**
   * Rounds never overlap. What is asked for during a round is merged into at most one round that
   * follows it, so a burst of slow requests or a slow round never queues up work.
   */
  private kick(): Promise<void> {
    if (this.running !== null || this.ctx.closed) return this.running ?? Promise.resolve();
    this.running = (async () => {
      while (this.pending !== null && !this.ctx.closed) {
        const only = this.pending === 'all' ? null : this.pending;
        this.pending = null;
        await this.round(only).catch((err: unknown) => this.ctx.log.error({ err }, 'autoscaler round failed'));
      }
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async round(only: Set<string> | null): Promise<void> {
    const { ctx } = this;
    const byApp = new Map<string, LocalContainer[]>();
    for (const l of ctx.locals.values()) {
      if (only !== null && !only.has(l.app)) continue;
      let list = byApp.get(l.app);
      if (list === undefined) byApp.set(l.app, (list = []));
      list.push(l);
    }
    await Promise.all([...byApp.values()].flat().map((l) => this.sample(l)));
    const now = ctx.deps.clock.now();
    if (only === null) {
      // Apps no longer here keep no memory of their last steps.
      for (const map of [this.lastScaleOutAt, this.lastScaleInAt]) for (const name of map.keys()) if (!byApp.has(name)) map.delete(name);
    }
    for (const [name, locals] of byApp) {
      const stored = ctx.deps.cache.app(name);
      if (stored === undefined) continue;
      const app = withScalingDefaults(stored);
      for (const l of locals) l.slowMs = app.autoscale ? app.latencyTargetMs : Number.POSITIVE_INFINITY;
      const signals = this.signalsOf(app, locals, now);
      const decidedAt = performance.now();
      for (const d of decide(signals, now, this.policy)) await this.apply(app, d, now, decidedAt);
    }
  }

  private async sample(l: LocalContainer): Promise<void> {
    // A frozen container's counters stand still: nothing to learn, and no reason to wake anything.
    if (l.phase !== 'ready' || l.runtimeId === null || l.frozen) return;
    const { clock } = this.ctx.deps;
    if (clock.now() - l.sampledAt < MIN_SAMPLE_GAP_MS) return;
    l.sampledAt = clock.now();
    let timer: { cancel(): void } | undefined;
    try {
      const counters = await Promise.race([
        this.ctx.cgroup.read(l.runtimeId, l.pid),
        new Promise<null>((resolve) => (timer = clock.setTimeout(() => resolve(null), SAMPLE_TIMEOUT_MS))),
      ]);
      if (counters !== null) {
        const prev = l.cpu.newest();
        l.cpu.add(clock.now(), counters);
        this.ctx.metrics.countCpu(l.app, prev, counters);
      }
    } catch (err) {
      this.ctx.log.debug({ err: (err as Error).message, container: l.id }, 'could not read the container\'s CPU counters');
    } finally {
      timer?.cancel();
    }
  }

  private signalsOf(app: App, locals: readonly LocalContainer[], now: number): AppSignals {
    let live = 0;
    let pending = 0;
    for (const e of this.ctx.deps.cache.containersOf(app.name)) {
      if (!liveStates.includes(e.state)) continue;
      live += 1;
      if (e.state !== 'ready') pending += 1;
    }
    return {
      app: app.name,
      spec: app,
      live,
      ready: live - pending,
      pending,
      lastScaleOutAt: this.lastScaleOutAt.get(app.name) ?? null,
      lastScaleInAt: this.lastScaleInAt.get(app.name) ?? null,
      containers: locals.map((l) => this.containerSignals(l, now)),
    };
  }

  private containerSignals(l: LocalContainer, now: number): ContainerSignals {
    const short = l.requests.summary(now, SHORT_WINDOW_MS);
    const stable = l.requests.summary(now, STABLE_WINDOW_MS);
    const cpuShort = l.cpu.summary(now, SHORT_WINDOW_MS);
    const cpuStable = l.cpu.summary(now, STABLE_WINDOW_MS);
    return {
      id: l.id, phase: l.phase, cpus: l.cpus, readyAt: l.readyAt,
      requests: short.requests, meanMs: short.meanTtfbMs, p95Ms: short.p95TtfbMs, throttledShare: cpuShort.throttledShare,
      stableRequests: stable.requests, stableThrottledShare: cpuStable.throttledShare, stableUsageCores: cpuStable.usageCores,
      inflight: l.inflight, held: this.ctx.held.get(l.id)?.size ?? 0,
      lastRequestAt: l.requests.lastRequestAt, lastScaleUpAt: l.lastScaleUpAt, lastScaleDownAt: l.lastScaleDownAt,
      scaleDownDelayMs: l.scaleDownDelayMs ?? this.policy.scaleDownDelayMs,
      quotaHeldUntil: l.quotaHeldUntil,
    };
  }

  /** Applies one decision; decidedAt is the clock's time of the decision, decidedPerf performance.now()'s. */
  private async apply(app: App, d: Decision, decidedAt: number, decidedPerf: number): Promise<void> {
    const { ctx } = this;
    let effectiveMs = 0;
    try {
      switch (d.kind) {
        case 'scale-up':
        case 'scale-down': {
          const local = ctx.locals.get(d.container);
          // Decided on a quota that has changed since (by hand, meanwhile): decided on nothing.
          if (local === undefined || local.phase !== 'ready' || local.cpus !== d.from) return;
          effectiveMs = (await this.lifecycle.quotas.set(local, d.to)) - decidedPerf;
          if (d.kind === 'scale-down') local.lastScaleDownAt = decidedAt;
          else {
            local.lastScaleUpAt = decidedAt;
            local.scaleDownDelayMs = scaleDownDelayAfterUp(local.scaleDownDelayMs ?? this.policy.scaleDownDelayMs, local.lastScaleDownAt, decidedAt, this.policy);
          }
          break;
        }
        case 'scale-out': {
          // The fewer-than guard makes several dispatchers deciding on the same view add one.
          this.lastScaleOutAt.set(app.name, decidedAt);
          const { cache } = ctx.deps;
          const { entry, created } = await placeContainer(ctx.deps.store, app, cache.allHosts(), cache.allContainers(), decidedAt, ctx.s.hostTimeout, { ifFewerThan: d.from + 1 }, cache.health.outages);
          this.lifecycle.observeNew(entry);
          if (!created) return;
          recordEvent(ctx, { app: app.name, kind: 'scale-out', container: entry.id, reason: `${d.reason}; placed on host ${entry.host}`, from: d.from, to: d.to });
          ctx.metrics.applySeconds.observe({ kind: d.kind }, (performance.now() - decidedPerf) / 1000);
          return;
        }
        case 'scale-in': {
          this.lastScaleInAt.set(app.name, decidedAt);
          // Marked draining only while the app keeps more than minContainers ready: dispatchers on
          // other hosts scaling the same app in at the same moment never take it below.
          const marked = await ctx.deps.store.transitionContainer(d.container, ['ready'], 'draining', {}, { appReadyAbove: app.minContainers });
          if (marked === null) return;
          ctx.deps.cache.observe(marked);
          recordEvent(ctx, { app: app.name, kind: 'scale-in', container: d.container, reason: d.reason, from: d.from, to: d.to });
          ctx.metrics.applySeconds.observe({ kind: d.kind }, (performance.now() - decidedPerf) / 1000);
          // Not awaited: a drain waits for in-flight requests, which must not hold up the next round.
          this.lifecycle.drainLogged(d.container, 'idle');
          return;
        }
      }
      // The quota is in effect once the cgroup has it; the engine's record and the CMDB follow.
      ctx.metrics.applySeconds.observe({ kind: d.kind }, effectiveMs / 1000);
      recordEvent(ctx, { app: app.name, kind: d.kind, container: d.container, reason: `${d.reason} (in effect ${effectiveMs < 1 ? '<1' : Math.round(effectiveMs)} ms after the decision)`, from: d.from, to: d.to });
    } catch (err) {
      const fc = toFcError(err);
      ctx.log.warn({ app: app.name, decision: d.kind, code: fc.code, err: fc.message }, 'could not apply a scaling decision');
    }
  }

  /** Each container's figures for `ps` and the CoreAPI, in the CMDB for a few report intervals. */
  async reportStats(ttlMs: number): Promise<void> {
    const { ctx } = this;
    const now = ctx.deps.clock.now();
    const stats: ContainerStats[] = [];
    for (const l of ctx.locals.values()) {
      if (l.phase !== 'ready' && l.phase !== 'draining') continue;
      const w = l.requests.summary(now, STATS_WINDOW_MS);
      const c = l.cpu.summary(now, SHORT_WINDOW_MS);
      stats.push({
        id: l.id, app: l.app, host: ctx.s.hostId, cpus: l.cpus, inflight: l.inflight, held: ctx.held.get(l.id)?.size ?? 0,
        rps: w.rps, meanMs: w.meanMs, p95Ms: w.p95Ms, throttledShare: c.throttledShare, cpuUsage: c.usageCores,
        lastRequestAt: l.requests.lastRequestAt, at: now,
      });
    }
    try {
      await ctx.deps.store.reportStats(ctx.s.hostId, stats, now, ttlMs);
    } catch (err) {
      ctx.log.debug({ err: (err as Error).message }, 'could not report container stats');
    }
  }
}
