// Usage for billing, as the CMDB keeps it: per app, a rollup per minute of what its containers
// used, and per host, the cumulative figures each of its containers last reported (the cursor).
// The dispatchers report cumulative figures per container, never deltas: the store adds to the
// rollup only what a container's figures grew since its cursor, and moves the cursor, in one
// atomic step (lua/report-usage.lua). So a report sent twice (a retry after a timeout), or the
// same container reported by a dispatcher that restarted and adopted it, is never counted twice,
// and nothing reported is lost.

/**
 * The figures, all non-negative integers (exact in Lua's doubles up to 2^53):
 *   cpuUs          CPU time, all cores together, from the container's cgroup (µs)
 *   containerMs    wall time the container existed, from its start to its end or now (ms)
 *   memLimitMiBMs  memory limit × time: MiB·ms (÷ 1024 ÷ 1000 = GiB-seconds)
 *   memUsedMiBMs   memory used × time, integrated from samples of the cgroup's usage (MiB·ms)
 *   requests       requests forwarded to the container
 *   bytesIn        request body bytes sent to the container
 *   bytesOut       response body bytes the container answered
 *   coldStarts     starts of containers that became ready (1 per container started)
 */
export const usageFigures = ['cpuUs', 'containerMs', 'memLimitMiBMs', 'memUsedMiBMs', 'requests', 'bytesIn', 'bytesOut', 'coldStarts'] as const;
export type UsageFigure = (typeof usageFigures)[number];
export type UsageTotals = Record<UsageFigure, number>;

/** A container's cumulative figures since its start; `final` when it is gone (its cursor goes too). */
export interface UsageReport {
  container: string;
  app: string;
  totals: UsageTotals;
  final: boolean;
}

/** What the CMDB last heard from a container of a host: where its deltas continue from. */
export interface UsageCursor {
  container: string;
  app: string;
  /** When it was reported (the reporter's clock, ms). */
  at: number;
  totals: UsageTotals;
}

/** One minute of an app's usage: the figures' growth credited to the minute they were reported in. */
export interface UsageMinute {
  /** Start of the minute, ms since epoch. */
  at: number;
  usage: UsageTotals;
}

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

export function zeroUsage(): UsageTotals {
  return { cpuUs: 0, containerMs: 0, memLimitMiBMs: 0, memUsedMiBMs: 0, requests: 0, bytesIn: 0, bytesOut: 0, coldStarts: 0 };
}

export function minuteOf(ms: number): number {
  return Math.floor(ms / MINUTE_MS) * MINUTE_MS;
}

export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/** Every figure's growth from `prev` (none: from zero) to `next`; a figure that went down adds nothing. */
export function usageDelta(prev: UsageTotals | null, next: UsageTotals): UsageTotals {
  const out = zeroUsage();
  for (const f of usageFigures) out[f] = Math.max(0, next[f] - (prev === null ? 0 : prev[f]));
  return out;
}

/** Figures as non-negative integers (a report carries nothing else). */
export function wholeUsage(t: UsageTotals): UsageTotals {
  const out = zeroUsage();
  for (const f of usageFigures) {
    const v = t[f];
    out[f] = Number.isFinite(v) && v > 0 ? Math.min(Number.MAX_SAFE_INTEGER, Math.floor(v)) : 0;
  }
  return out;
}

export function addUsage(into: UsageTotals, more: UsageTotals): UsageTotals {
  for (const f of usageFigures) into[f] += more[f];
  return into;
}

/** The hours whose rollups hold the minutes of [from, to). */
export function hoursOf(from: number, to: number): number[] {
  const out: number[] = [];
  for (let h = hourOf(from); h < to; h += HOUR_MS) out.push(h);
  return out;
}
