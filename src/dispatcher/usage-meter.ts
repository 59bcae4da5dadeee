// Usage for billing, measured where the containers run. Each container keeps its own cumulative
// figures (ContainerUsage): the request path only adds to counters (requests, bytes), so the
// warm path pays three additions; every FC_USAGE_INTERVAL the meter reads each container's cgroup
// (CPU time, memory in use), turns the counters into cumulative totals since the container's start
// (usageTotals, pure), adds what grew to the Prometheus counters, and writes all of this host's
// containers to the CMDB in one call (Store.reportUsage, one Lua script), which credits the growth
// since each container's cursor to its app's minute. Cumulative figures, not deltas, go to the
// CMDB, so a dispatcher that restarts and adopts its containers continues from their cursors:
// nothing reported is counted twice, and the cgroup's CPU counter, which lives as long as the
// container, loses nothing across the restart either.
//
// Worked example (FC_USAGE_INTERVAL 15 s). A container starts at t=0 with a 256 MiB limit; at
// t=15 s its cgroup says 2.1 s of CPU and 40 MiB in use, it served 30 requests: the report says
// cpuUs 2,100,000, containerMs 15,000, memLimitMiBMs 3,840,000 (256 × 15,000), memUsedMiBMs
// 600,000 (40 × 15,000: the first sample stands for the time since the start), requests 30. The
// dispatcher restarts at t=20 s (its close() wrote the figures at t=20 s); the new one adopts the
// container with those figures as its base and reports at t=35 s the cgroup's 3.0 s: the rollup
// gets 3.0 − the cursor's CPU, never 3.0 again.

import { Counter } from 'prom-client';
import type { App, ContainerEntry } from '../cmdb/types.js';
import { usageDelta, usageFigures, zeroUsage, type UsageCursor, type UsageReport, type UsageTotals } from '../cmdb/usage.js';
import { toFcError } from '../shared/errors.js';
import { labelKeys } from './container-runtime.js';
import type { DispatcherContext } from './context.js';
import type { LocalContainer } from './local-container.js';

const MIB = 1024 * 1024;
/** Final reports of retired containers waiting for the CMDB, at most (oldest dropped, counted). */
const MAX_PENDING_FINALS = 10_000;

/** A container's usage since its start, as this dispatcher counts it. */
export class ContainerUsage {
  /** When its start began (the entry's startedAt, the clock's ms): container time counts from then. */
  startedAt = 0;
  /** Its memory limit, MiB. */
  memLimitMiB = 0;
  /** Last CPU time read from its cgroup, µs since its start. */
  cpuUs = 0;
  requests = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** 1 once it started and became ready here (0 for one adopted that an earlier process reported). */
  coldStarts = 0;
  /** Memory used × time so far, MiB·ms. */
  memUsedMiBMs = 0;
  /** The last sample of memory in use (MiB) and when (ms); null: none since the start or adoption. */
  lastMemMiB: number | null = null;
  lastSampleAt = 0;
  /** What the Prometheus counters already have of this container. */
  counted: UsageTotals = zeroUsage();
}

/**
 * Adds a memory sample: the time since the last sample at the mean of the two (trapezoid); the
 * first one after a start or an adoption stands for the whole time since (`lastSampleAt` is then
 * the start, or the cursor's time: the gap of a restart is counted at what is used now).
 */
export function sampleMemory(u: ContainerUsage, now: number, usedBytes: number): void {
  const mib = usedBytes / MIB;
  const dt = Math.max(0, now - u.lastSampleAt);
  u.memUsedMiBMs += (u.lastMemMiB === null ? mib : (u.lastMemMiB + mib) / 2) * dt;
  u.lastMemMiB = mib;
  u.lastSampleAt = now;
}

/** The container's cumulative figures at `now`. Pure. */
export function usageTotals(u: ContainerUsage, now: number): UsageTotals {
  const containerMs = Math.max(0, now - u.startedAt);
  return {
    cpuUs: Math.floor(u.cpuUs),
    containerMs,
    memLimitMiBMs: Math.floor(u.memLimitMiB * containerMs),
    memUsedMiBMs: Math.floor(u.memUsedMiBMs),
    requests: u.requests,
    bytesIn: u.bytesIn,
    bytesOut: u.bytesOut,
    coldStarts: u.coldStarts,
  };
}

/** The Prometheus counter of each figure: name, help, and the factor from the stored unit. */
const promFigures: Record<keyof UsageTotals, [string, string, number]> = {
  cpuUs: ['fc_usage_cpu_seconds_total', 'CPU time the app\'s containers used, from their cgroups (all cores together)', 1e-6],
  containerMs: ['fc_usage_container_seconds_total', 'Time the app\'s containers existed, from creation to removal', 1e-3],
  memLimitMiBMs: ['fc_usage_memory_limit_gib_seconds_total', 'Memory limit of the app\'s containers times the time they existed, GiB-seconds', 1 / (1024 * 1000)],
  memUsedMiBMs: ['fc_usage_memory_used_gib_seconds_total', 'Memory the app\'s containers used (cgroup usage less inactive page cache, sampled every FC_USAGE_INTERVAL) times time, GiB-seconds', 1 / (1024 * 1000)],
  requests: ['fc_usage_requests_total', 'Requests forwarded to the app\'s containers', 1],
  bytesIn: ['fc_usage_bytes_in_total', 'Request body bytes forwarded to the app\'s containers', 1],
  bytesOut: ['fc_usage_bytes_out_total', 'Response body bytes the app\'s containers answered', 1],
  coldStarts: ['fc_usage_cold_starts_total', 'Containers of the app started and ready', 1],
};

export class UsageMeter {
  private readonly counters: Record<keyof UsageTotals, Counter<'app' | 'host'>>;
  /** Loaded at start: the cursors of this host's containers, for adoption. */
  private cursors = new Map<string, UsageCursor>();
  private finals: UsageReport[] = [];
  private flushing: Promise<void> | null = null;
  readonly lost: Counter<'reason'>;

  constructor(private readonly ctx: DispatcherContext) {
    const registers = [ctx.deps.registry];
    this.counters = Object.fromEntries(usageFigures.map((f) => {
      const [name, help] = promFigures[f];
      return [f, new Counter({ name, help, labelNames: ['app', 'host'], registers })];
    })) as Record<keyof UsageTotals, Counter<'app' | 'host'>>;
    this.lost = new Counter({ name: 'fc_usage_reports_dropped_total', help: 'Final usage reports of removed containers dropped because the CMDB was away too long (more than 10,000 waiting)', labelNames: ['reason'], registers });
  }

  private get interval(): number {
    return this.ctx.s.usageInterval ?? 15_000;
  }

  /** Before the first reconciliation: the cursors adopted containers continue from. */
  async loadCursors(): Promise<void> {
    try {
      this.cursors = new Map((await this.ctx.deps.store.usageCursors(this.ctx.s.hostId)).map((c) => [c.container, c]));
    } catch (err) {
      // Without them, adopted containers' counters start at zero: the CMDB's cursors keep the
      // rollup from counting anything twice; only what this process counts in memory is lower.
      this.ctx.log.warn({ err: toFcError(err).message }, 'could not read the usage cursors; adopted containers count requests from zero');
    }
  }

  /**
   * After the first reconciliation: forgets the cursors of containers the engine no longer runs
   * (they died while no dispatcher ran). Judged by the engine, not by what was adopted: a first
   * reconciliation that was skipped (the CMDB away) adopts nothing, and dropping the cursors of
   * containers adopted later would count their whole usage again.
   */
  async dropStaleCursors(): Promise<void> {
    const { ctx } = this;
    if (this.cursors.size === 0) return;
    let running: Set<string>;
    try {
      const listed = await ctx.deps.runtime.list({ [labelKeys.host]: ctx.s.hostId });
      running = new Set(listed.map((c) => c.labels[labelKeys.container]).filter((id): id is string => id !== undefined));
    } catch {
      return;
    }
    const stale = [...this.cursors.keys()].filter((id) => !running.has(id) && !ctx.locals.has(id));
    for (const id of stale) this.cursors.delete(id);
    if (stale.length === 0) return;
    await ctx.deps.store.dropUsageCursors(ctx.s.hostId, stale).catch((err: unknown) => ctx.log.warn({ err }, 'could not drop stale usage cursors'));
  }

  /** A container this dispatcher started: it counts from its creation. */
  started(local: LocalContainer, app: App, startedAt: number): void {
    const u = local.usage;
    u.startedAt = startedAt;
    u.lastSampleAt = startedAt;
    u.memLimitMiB = app.memory / MIB;
  }

  /** Its start succeeded: one cold start. */
  ready(local: LocalContainer): void {
    local.usage.coldStarts = 1;
  }

  /**
   * A running container found at start-up: its counters continue from what the CMDB last heard.
   * Returns when that was (the clock's ms), null when it never heard of it.
   */
  adopted(local: LocalContainer, entry: ContainerEntry, app: App, now: number): number | null {
    const u = local.usage;
    u.startedAt = entry.startedAt ?? entry.readyAt ?? now;
    u.memLimitMiB = app.memory / MIB;
    const cursor = this.cursors.get(entry.id);
    this.cursors.delete(entry.id);
    if (cursor === undefined || cursor.app !== entry.app) {
      // Never reported (a crash before the first report): its start was not counted either.
      u.coldStarts = 1;
      u.lastSampleAt = u.startedAt;
      return null;
    }
    const t = cursor.totals;
    u.requests = t.requests;
    u.bytesIn = t.bytesIn;
    u.bytesOut = t.bytesOut;
    u.coldStarts = t.coldStarts;
    u.memUsedMiBMs = t.memUsedMiBMs;
    u.cpuUs = t.cpuUs;
    u.lastSampleAt = cursor.at;
    // What the earlier process counted is not this one's to count again.
    u.counted = { ...t };
    return cursor.at;
  }

  /** Reads the container's cgroup: CPU time, and a memory sample. */
  private async sample(local: LocalContainer, now: number): Promise<void> {
    if (local.runtimeId === null) return;
    const [cpu, mem] = await Promise.all([
      this.ctx.cgroup.read(local.runtimeId, local.pid).catch(() => null),
      this.ctx.cgroup.readMemory(local.runtimeId, local.pid).catch(() => null),
    ]);
    if (cpu !== null) local.usage.cpuUs = Math.max(local.usage.cpuUs, cpu.usageNs / 1000);
    if (mem !== null) sampleMemory(local.usage, now, mem);
  }

  /** The figures at `now`, with their growth added to the Prometheus counters. */
  private totals(local: LocalContainer, now: number): UsageTotals {
    const totals = usageTotals(local.usage, now);
    const delta = usageDelta(local.usage.counted, totals);
    const labels = { app: local.app, host: this.ctx.s.hostId };
    for (const f of usageFigures) if (delta[f] > 0) this.counters[f].inc(labels, delta[f] * (promFigures[f][2]));
    for (const f of usageFigures) local.usage.counted[f] = Math.max(local.usage.counted[f], totals[f]);
    return totals;
  }

  /**
   * A container is leaving (before it is stopped: its cgroup, and the CPU counter in it, go with
   * its processes): its last figures wait for the next write as a final report.
   */
  async final(local: LocalContainer): Promise<void> {
    if (local.runtimeId === null || local.usage.startedAt === 0) return;
    const now = this.ctx.deps.clock.now();
    await this.sample(local, now);
    this.finals.push({ container: local.id, app: local.app, totals: this.totals(local, now), final: true });
    if (this.finals.length > MAX_PENDING_FINALS) {
      this.finals.splice(0, this.finals.length - MAX_PENDING_FINALS);
      this.lost.inc({ reason: 'cmdb' });
    }
  }

  /** Samples every running container and writes their figures and the finals waiting, in one call. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    const { ctx } = this;
    const now = ctx.deps.clock.now();
    const live = [...ctx.locals.values()].filter((l) => (l.phase === 'ready' || l.phase === 'draining') && l.runtimeId !== null && l.usage.startedAt !== 0);
    await Promise.all(live.map((l) => this.sample(l, now)));
    const finals = this.finals;
    this.finals = [];
    const reports: UsageReport[] = [...finals];
    for (const l of live) if (ctx.locals.get(l.id) === l && l.phase !== 'stopping') reports.push({ container: l.id, app: l.app, totals: this.totals(l, now), final: false });
    if (reports.length === 0) return;
    try {
      await ctx.deps.store.reportUsage(ctx.s.hostId, reports, now, ctx.s.usageRetention ?? 35 * 24 * 3_600_000);
    } catch (err) {
      // The running containers' figures are cumulative: the next write carries them. The finals wait.
      this.finals = [...finals, ...this.finals];
      ctx.log.warn({ err: toFcError(err).message, reports: reports.length }, 'could not write usage to the CMDB; the next write carries it');
    }
  }

  get everyMs(): number {
    return this.interval;
  }
}
