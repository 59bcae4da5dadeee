// The autoscaler's decision: a pure function of one app's signals on this host, its spec and
// `now`. No timers, no I/O. The loop in autoscaler.ts gathers the windows and applies what this
// returns.
//
// The paper's point (section 3.1) is telling "too little CPU" from "too many requests" by
// watching two things at once: the CPU time the cgroup could not give the container (throttling)
// and each request's latency at the proxy in front of it.
//
//   throttled (>= throttleHigh of CFS periods), cpus < maxCpus, traffic  -> scale up (x2, capped)
//   latency over target and (not throttled, or throttled at maxCpus)    -> scale out (+1 container)
//   quota above cpus, throttling gone and usage fits half the quota     -> scale down (/2, floored)
//   a container idle for idleTimeout while the app has > minContainers  -> scale in (drain it)
//
// Worked example: app cpus 0.3, maxCpus 0.6, latencyTargetMs 500, one container.
//   t=0    100 clients arrive; each request waits behind the others: mean 700 ms, and the
//          container is throttled in 95% of its periods.           -> scale up 0.3 -> 0.6
//   t=1.2  mean still 540 ms (the queue drains), throttled 60%, but the quota is at maxCpus
//                                                                   -> scale out 1 -> 2
//   t=1.2  the new container starts (pending): no further scale-out until it is ready and the
//          cool-down has passed, however slow the requests still are.
//   t=60   clients gone. After stableWindow (10 s) without throttling and with usage below 60%
//          of 0.3 cores                                             -> scale down 0.6 -> 0.3
//   t=360  (idleTimeout 300 s) the container without requests      -> scale in 2 -> 1
// Hysteresis: up at 25% throttled over 2 s, down only below 5% over 10 s and with usage that fits
// 60% of the smaller quota; cool-downs between steps of the same kind; one step of each kind per
// round. A scale-down undone by a scale-up within 30 s doubles that container's scale-down delay
// (10 s, 20 s, 40 s … 5 min), so a load at the edge settles on the larger quota.

import type { LocalPhase } from '../local-container.js';

export interface ScalingSpec {
  cpus: number;
  maxCpus: number;
  latencyTargetMs: number;
  /** Seconds. */
  idleTimeout: number;
  minContainers: number;
  maxContainers: number;
  autoscale: boolean;
}

/** What this host knows of one of the app's containers it runs. */
export interface ContainerSignals {
  id: string;
  phase: LocalPhase;
  /** The container's CPU quota now, in cores. */
  cpus: number;
  readyAt: number;
  /** Over the short (panic) window: requests answered, and their latency to the first byte. */
  requests: number;
  meanMs: number | null;
  p95Ms: number | null;
  /** Share of CFS periods throttled over the short window; null when unknown. */
  throttledShare: number | null;
  /** Over the long (stable) window. */
  stableRequests: number;
  stableThrottledShare: number | null;
  /** Cores used over the long window; null when unknown. */
  stableUsageCores: number | null;
  inflight: number;
  held: number;
  lastRequestAt: number | null;
  lastScaleUpAt: number | null;
  lastScaleDownAt: number | null;
  /**
   * How long after its last scale-up this container's quota may come down: the policy's delay,
   * doubled by the loop each time a scale-down had to be undone soon after (see flapWindowMs).
   */
  scaleDownDelayMs: number;
  /** A quota set by hand is not scaled down before this (the clock's ms); null: none. */
  quotaHeldUntil: number | null;
}

export interface AppSignals {
  app: string;
  spec: ScalingSpec;
  /** The app's live entries (registered, starting, ready) on every host. */
  live: number;
  /** Of those, the ready ones. */
  ready: number;
  /** Of those, entries not yet ready (registered or starting) on every host. */
  pending: number;
  lastScaleOutAt: number | null;
  lastScaleInAt: number | null;
  /** The app's containers on this host. */
  containers: readonly ContainerSignals[];
}

export interface ScalerPolicy {
  /** Share of periods throttled at or above which a container is short of CPU. */
  throttleHigh: number;
  /** Share of periods throttled below which the extra CPU is no longer needed. */
  throttleLow: number;
  /** Requests needed in the short window before their latency counts. */
  minRequests: number;
  /** A scaled-down quota must hold the measured usage with this much to spare (0.8: usage <= 80%). */
  downHeadroom: number;
  scaleUpCooldownMs: number;
  /** How long after its last scale-up a container's quota may come down, at first. */
  scaleDownDelayMs: number;
  /** A scale-up this soon after a scale-down means the scale-down was wrong: its delay doubles. */
  flapWindowMs: number;
  /** The most the scale-down delay grows to. */
  maxScaleDownDelayMs: number;
  scaleDownCooldownMs: number;
  scaleOutCooldownMs: number;
  scaleInCooldownMs: number;
}

export const defaultPolicy: ScalerPolicy = {
  throttleHigh: 0.25,
  throttleLow: 0.05,
  minRequests: 3,
  downHeadroom: 0.6,
  scaleUpCooldownMs: 1_000,
  scaleDownDelayMs: 10_000,
  flapWindowMs: 30_000,
  maxScaleDownDelayMs: 300_000,
  scaleDownCooldownMs: 5_000,
  scaleOutCooldownMs: 2_000,
  scaleInCooldownMs: 5_000,
};

export type Decision =
  | { kind: 'scale-up' | 'scale-down'; container: string; from: number; to: number; reason: string }
  | { kind: 'scale-out'; from: number; to: number; reason: string }
  | { kind: 'scale-in'; container: string; from: number; to: number; reason: string };

const pct = (share: number) => `${Math.round(share * 100)}%`;
const cores = (n: number) => Math.round(n * 1000) / 1000;
const since = (last: number | null, now: number) => (last === null ? Number.POSITIVE_INFINITY : now - last);

/** The app's latency over the short window, across its ready containers here (request-weighted). */
function appLatency(containers: readonly ContainerSignals[]): { requests: number; meanMs: number | null } {
  let requests = 0;
  let total = 0;
  for (const c of containers) {
    if (c.phase !== 'ready' || c.meanMs === null) continue;
    requests += c.requests;
    total += c.meanMs * c.requests;
  }
  return { requests, meanMs: requests === 0 ? null : total / requests };
}

export function decide(app: AppSignals, now: number, policy: ScalerPolicy = defaultPolicy): Decision[] {
  const { spec } = app;
  if (!spec.autoscale) return [];
  const decisions: Decision[] = [];
  const ready = app.containers.filter((c) => c.phase === 'ready');

  // Scale up: a container short of CPU gets more, live, up to the ceiling. Only with traffic: a
  // tenant's background loop does not earn itself a bigger quota.
  const upFor = new Set<string>();
  for (const c of ready) {
    const throttled = c.throttledShare !== null && c.throttledShare >= policy.throttleHigh;
    // Answered requests, not just open ones: one long poll held open does not earn a quota either.
    if (!throttled || c.requests < policy.minRequests || c.cpus >= spec.maxCpus) continue;
    if (since(c.lastScaleUpAt, now) < policy.scaleUpCooldownMs) {
      upFor.add(c.id);
      continue;
    }
    const to = cores(Math.min(spec.maxCpus, Math.max(c.cpus * 2, c.cpus + 0.01)));
    decisions.push({ kind: 'scale-up', container: c.id, from: c.cpus, to, reason: `throttled in ${pct(c.throttledShare ?? 0)} of CPU periods with ${c.requests} requests in 2 s, quota below maxCpus ${spec.maxCpus}` });
    upFor.add(c.id);
  }

  // Scale out: latency over the target that more CPU for a container cannot fix (it is not
  // short of CPU, or already at the ceiling), while nothing started earlier is still coming up.
  const latency = appLatency(ready);
  const slow = latency.meanMs !== null && latency.requests >= policy.minRequests && latency.meanMs > spec.latencyTargetMs;
  if (slow && upFor.size === 0) {
    const why = `mean latency (to first byte) ${Math.round(latency.meanMs ?? 0)} ms > target ${spec.latencyTargetMs} ms over ${latency.requests} requests`;
    const throttledAtCeiling = ready.some((c) => c.cpus >= spec.maxCpus && (c.throttledShare ?? 0) >= policy.throttleHigh);
    const room = app.live < spec.maxContainers;
    const settled = app.pending === 0 && since(app.lastScaleOutAt, now) >= policy.scaleOutCooldownMs;
    if (room && settled) {
      decisions.push({
        kind: 'scale-out', from: app.live, to: app.live + 1,
        reason: `${why}, ${throttledAtCeiling ? `throttled at maxCpus ${spec.maxCpus}` : 'not short of CPU'}`,
      });
    }
  }

  // Scale down: back toward cpus once the extra quota is idle. Needs a long quiet window, a
  // delay after the last scale-up and usage that fits the smaller quota, or it would flap.
  for (const c of ready) {
    if (c.cpus <= spec.cpus || upFor.has(c.id) || (c.quotaHeldUntil !== null && now < c.quotaHeldUntil)) continue;
    if (since(c.lastScaleUpAt, now) < c.scaleDownDelayMs || since(c.lastScaleDownAt, now) < policy.scaleDownCooldownMs) continue;
    const to = cores(Math.max(spec.cpus, c.cpus / 2));
    const quietNow = c.throttledShare === null || c.throttledShare < policy.throttleLow;
    const quiet = quietNow && (c.stableThrottledShare === null ? c.stableRequests === 0 : c.stableThrottledShare < policy.throttleLow);
    const fits = c.stableUsageCores === null ? c.stableRequests === 0 : c.stableUsageCores <= to * policy.downHeadroom;
    if (!quiet || !fits) continue;
    const usage = c.stableUsageCores === null ? 'no requests' : `using ${cores(c.stableUsageCores)} cores`;
    decisions.push({ kind: 'scale-down', container: c.id, from: c.cpus, to, reason: `throttled in ${pct(c.stableThrottledShare ?? 0)} of periods and ${usage}, which fits ${to}` });
  }

  // Scale in: the container idle longest goes, one per round, never below minContainers, counting
  // ready containers only (a replacement still starting is not yet one).
  if (!slow && app.live > spec.minContainers && app.ready > spec.minContainers && since(app.lastScaleInAt, now) >= policy.scaleInCooldownMs) {
    let idlest: ContainerSignals | undefined;
    let idleFor = 0;
    for (const c of ready) {
      if (c.inflight > 0 || c.held > 0) continue;
      const idle = now - (c.lastRequestAt ?? c.readyAt);
      if (idle >= spec.idleTimeout * 1000 && idle > idleFor) {
        idlest = c;
        idleFor = idle;
      }
    }
    if (idlest !== undefined) {
      decisions.push({
        kind: 'scale-in', container: idlest.id, from: app.live, to: app.live - 1,
        reason: `no request for ${Math.round(idleFor / 1000)} s (idleTimeout ${spec.idleTimeout} s), ${app.live} containers > minContainers ${spec.minContainers}`,
      });
    }
  }
  return decisions;
}

/**
 * The scale-down delay of a container after a scale-up at `now`: doubled (up to the policy's
 * most) when that scale-up undoes a scale-down of less than flapWindowMs ago, else unchanged.
 * Example: delay 10 s, scaled down at t=100 s, up again at t=112 s: 20 s from then on.
 */
export function scaleDownDelayAfterUp(delayMs: number, lastScaleDownAt: number | null, now: number, policy: ScalerPolicy = defaultPolicy): number {
  if (lastScaleDownAt === null || now - lastScaleDownAt >= policy.flapWindowMs) return delayMs;
  return Math.min(policy.maxScaleDownDelayMs, delayMs * 2);
}
