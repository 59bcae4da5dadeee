// Whether the CMDB answers, as this process sees it, and what that means for judging hosts by
// their heartbeats (static stability). A heartbeat is written to the CMDB and read from it: while
// the CMDB is unreachable nobody can write one, so the time it spends unreachable is no evidence
// that a host died. Heartbeat age therefore counts only the time the CMDB answered this process.
// Everything here is pure but CmdbHealth, a small record of the outages this process saw.

import type { ComputeHost } from './types.js';

/** A span during which this process could not reach the CMDB; `to` is null while it lasts. */
export interface Outage {
  from: number;
  to: number | null;
}

/** Outages remembered: enough to cover any heartbeat timeout several times over. */
const MAX_OUTAGES = 16;

/**
 * How old a heartbeat is, not counting the time the CMDB was unreachable. For example, a host that
 * last beat at 100 s, with the CMDB away from 105 s to 145 s, is 10 s old at 150 s (not 50 s): 5 s
 * before the outage and 5 s after it. At 120 s, during the outage, it is 5 s old, and stays so.
 */
export function heartbeatAge(heartbeatAt: number, now: number, outages: readonly Outage[]): number {
  let age = now - heartbeatAt;
  for (const o of outages) {
    const from = Math.max(o.from, heartbeatAt);
    const to = Math.min(o.to ?? now, now);
    if (to > from) age -= to - from;
  }
  return Math.max(0, age);
}

/**
 * Whether a host counts as live: its heartbeat is younger than the host timeout by heartbeatAge.
 * Proxies (which entries to route to), placement (where a new container goes) and the sweep of
 * dead hosts all judge by this one rule, so a CMDB outage makes none of them give up on a host.
 */
export function isHostLive(host: ComputeHost, now: number, hostTimeoutMs: number, outages: readonly Outage[] = []): boolean {
  return heartbeatAge(host.heartbeatAt, now, outages) <= hostTimeoutMs;
}

/** The CMDB's health as this process saw it: up or down, since when, and the recent outages. */
export class CmdbHealth {
  healthy = true;
  /** Outages seen since the process started (the list below keeps only the last few). */
  outageCount = 0;
  private list: Outage[] = [];

  constructor(public since: number) {}

  get outages(): readonly Outage[] {
    return this.list;
  }

  /** When the CMDB last answered (a probe); an outage is taken to have begun then. */
  lastAnswerAt: number | undefined;

  /** The CMDB answered at `now`. */
  answered(now: number): void {
    this.lastAnswerAt = now;
  }

  /**
   * The CMDB did not answer at `now`; true if it was healthy until then. The outage is taken to
   * have begun when it last answered, not when this was noticed (a probe interval and a deadline
   * later): heartbeats were already going unwritten meanwhile.
   */
  markDown(now: number): boolean {
    if (!this.healthy) return false;
    this.healthy = false;
    this.outageCount += 1;
    const from = Math.min(now, this.lastAnswerAt ?? now);
    this.since = from;
    this.list.push({ from, to: null });
    if (this.list.length > MAX_OUTAGES) this.list.shift();
    return true;
  }

  /** The CMDB answered (and the cache is synced) at `now`; true if it was down until then. */
  markUp(now: number): boolean {
    if (this.healthy) return false;
    this.healthy = true;
    this.since = now;
    const last = this.list[this.list.length - 1];
    if (last !== undefined && last.to === null) last.to = now;
    return true;
  }
}
