import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { latencyBuckets, RequestRecorder } from '../shared/metrics.js';
import type { WarmStats } from './container-runtime.js';
import type { CpuCounters } from './signals/cgroup.js';

export class DispatcherMetrics {
  readonly requests: Counter<'app' | 'status'>;
  readonly requestSeconds: Histogram<'app'>;
  readonly coldStarts: Counter<'app' | 'result'>;
  readonly coldStartSeconds: Histogram<'app'>;
  readonly drains: Counter<'app' | 'reason'>;
  readonly reconcileActions: Counter<'action'>;
  readonly events: Counter<'app' | 'kind'>;
  readonly applySeconds: Histogram<'kind'>;
  readonly thawSeconds: Histogram<'app'>;
  /** Requests the dispatcher's port refused (unsigned, forged, stale, too many headers). */
  readonly refused: Counter<'reason'>;
  /** Answers cut because their client took none of them for FC_SEND_TIMEOUT. */
  readonly slowReaders: Counter;
  /** requests and requestSeconds, per request. */
  readonly recorder: RequestRecorder;
  /** The cgroup's CFS counters, summed per app from the samples the autoscaler takes (countCpu). */
  private readonly cpuPeriods: Counter<'app'>;
  private readonly cpuThrottledPeriods: Counter<'app'>;
  private readonly cpuThrottledSeconds: Counter<'app'>;

  constructor(registry: Registry, collect: { held(): number; containers(): Map<string, number>; warm(): WarmStats | null; quotas?(): Map<string, number> }) {
    this.cpuPeriods = new Counter({ name: 'fc_dispatcher_cpu_periods_total', help: 'CFS periods in which the app\'s containers on this host were runnable under their quota (cgroup nr_periods, summed)', labelNames: ['app'], registers: [registry] });
    this.cpuThrottledPeriods = new Counter({ name: 'fc_dispatcher_cpu_throttled_periods_total', help: 'Of those, periods in which they hit their quota and were stopped (cgroup nr_throttled): rate(this) / rate(periods) is the throttled share', labelNames: ['app'], registers: [registry] });
    this.cpuThrottledSeconds = new Counter({ name: 'fc_dispatcher_cpu_throttled_seconds_total', help: 'Time the app\'s containers on this host were held back by their CPU quota (cgroup throttled time, summed)', labelNames: ['app'], registers: [registry] });
    new Gauge({
      name: 'fc_dispatcher_cpu_quota_cores', help: 'CPU quota of the app\'s live containers on this host, in cores, summed (scale-up and scale-down change it)', labelNames: ['app'], registers: [registry],
      collect() {
        this.reset();
        for (const [app, cores] of collect.quotas?.() ?? []) this.set({ app }, cores);
      },
    });
    this.requests = new Counter({ name: 'fc_dispatcher_requests_total', help: 'Requests the dispatcher answered, by app and status', labelNames: ['app', 'status'], registers: [registry] });
    this.requestSeconds = new Histogram({ name: 'fc_dispatcher_request_seconds', help: 'Time from a request reaching the dispatcher to the end of its answer, including any cold start', labelNames: ['app'], buckets: latencyBuckets, registers: [registry] });
    this.recorder = new RequestRecorder(this.requests, this.requestSeconds);
    this.coldStarts = new Counter({ name: 'fc_dispatcher_cold_starts_total', help: 'Container starts, by app and result', labelNames: ['app', 'result'], registers: [registry] });
    this.coldStartSeconds = new Histogram({ name: 'fc_dispatcher_cold_start_seconds', help: 'Time from a start to the container accepting connections', labelNames: ['app'], buckets: latencyBuckets, registers: [registry] });
    this.drains = new Counter({ name: 'fc_dispatcher_drains_total', help: 'Containers drained and removed, by app and reason', labelNames: ['app', 'reason'], registers: [registry] });
    this.reconcileActions = new Counter({ name: 'fc_dispatcher_reconcile_actions_total', help: 'What reconciliation with the engine did', labelNames: ['action'], registers: [registry] });
    this.events = new Counter({ name: 'fc_dispatcher_events_total', help: 'Scaling decisions applied and lifecycle steps (scale-up, scale-down, scale-out, scale-in, replace, ready, drain, died, ...), by app and kind', labelNames: ['app', 'kind'], registers: [registry] });
    this.applySeconds = new Histogram({ name: 'fc_autoscaler_apply_seconds', help: 'Time from a scaling decision to its being applied (quota changed, entry registered, drain begun)', labelNames: ['kind'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [registry] });
    this.thawSeconds = new Histogram({ name: 'fc_dispatcher_thaw_seconds', help: 'Time to thaw a frozen container for a request', labelNames: ['app'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [registry] });
    this.slowReaders = new Counter({ name: 'fc_dispatcher_slow_readers_total', help: 'Answers cut off because their client took none of them for FC_SEND_TIMEOUT', registers: [registry] });
    this.refused = new Counter({ name: 'fc_dispatcher_refused_total', help: 'Requests the dispatcher port refused before touching anything, by reason (missing, malformed, forged, stale, too-many-headers)', labelNames: ['reason'], registers: [registry] });
    new Gauge({
      name: 'fc_dispatcher_held_requests', help: 'Requests waiting for a container to start', registers: [registry],
      collect() { this.set(collect.held()); },
    });
    new Gauge({
      name: 'fc_dispatcher_containers', help: 'Containers this dispatcher runs, by phase', labelNames: ['phase'], registers: [registry],
      collect() {
        this.reset();
        for (const [phase, n] of collect.containers()) this.set({ phase }, n);
      },
    });
      new Gauge({
      name: 'fc_dispatcher_sandboxes', help: 'Network sandboxes made ahead of need and waiting for a container (bounded by FC_SANDBOX_POOL)', registers: [registry],
      collect() { this.set(collect.warm()?.ready ?? 0); },
    });
    new Gauge({
      name: 'fc_dispatcher_sandbox_starts', help: 'Container starts that used a network sandbox made ahead of need (hit), found none (miss); sandboxes that could not be made (failure)', labelNames: ['result'], registers: [registry],
      collect() {
        const w = collect.warm();
        this.reset();
        if (w === null) return;
        this.set({ result: 'hit' }, w.hits);
        this.set({ result: 'miss' }, w.misses);
        this.set({ result: 'failure' }, w.failures);
      },
    });
  }

  /**
   * Adds what a container's CFS counters grew by between two samples. The first sample of a
   * container (prev null) counts nothing: an adopted container's counters include time another
   * dispatcher process already counted. Counters that went down (a new cgroup) count nothing either.
   */
  countCpu(app: string, prev: CpuCounters | null, next: CpuCounters): void {
    if (prev === null) return;
    const periods = next.periods - prev.periods;
    const throttled = next.throttledPeriods - prev.throttledPeriods;
    const throttledNs = next.throttledNs - prev.throttledNs;
    if (periods < 0 || throttled < 0 || throttledNs < 0) return;
    if (periods > 0) this.cpuPeriods.inc({ app }, periods);
    if (throttled > 0) this.cpuThrottledPeriods.inc({ app }, throttled);
    if (throttledNs > 0) this.cpuThrottledSeconds.inc({ app }, throttledNs / 1e9);
  }
}
