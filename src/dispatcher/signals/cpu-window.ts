// A container's CPU over a recent window, from samples of its cgroup counters (CgroupCpu.read,
// every ~250 ms). The counters only grow, so a window needs just its two ends: the newest sample
// and the oldest one still inside it.
// Example, quota 0.1 core: samples 1 s apart, nr_periods 100 → 110, nr_throttled 90 → 100,
// usage 5.0e9 → 5.1e9 ns: throttledShare 10/10 = 1 (it hit its quota every period), usageCores
// 0.1e9 ns / 1e9 ns = 0.1. A counter going down means the container (or its cgroup) restarted:
// the samples before it are dropped, as comparing across would give nonsense.

import type { CpuCounters } from './cgroup.js';

export interface CpuSummary {
  /** Δnr_throttled / Δnr_periods; null without periods (no quota, idle, or too few samples). */
  throttledShare: number | null;
  /** ΔusageNs / Δwall ns: cores in use on average. */
  usageCores: number | null;
  /** Δnr_periods. */
  periods: number;
}

function empty(): CpuSummary {
  return { throttledShare: null, usageCores: null, periods: 0 };
}

export class CpuWindow {
  private readonly size: number;
  private readonly at: Float64Array;
  private readonly periods: Float64Array;
  private readonly throttled: Float64Array;
  private readonly throttledNs: Float64Array;
  private readonly usage: Float64Array;
  /** Slot of the newest sample. */
  private head = -1;
  private count = 0;

  constructor(samples = 40) {
    if (!Number.isInteger(samples) || samples < 2) throw new RangeError(`CpuWindow needs a whole number of samples >= 2 (got ${samples})`);
    this.size = samples;
    this.at = new Float64Array(samples);
    this.periods = new Float64Array(samples);
    this.throttled = new Float64Array(samples);
    this.throttledNs = new Float64Array(samples);
    this.usage = new Float64Array(samples);
  }

  add(now: number, c: CpuCounters): void {
    if (this.count > 0) {
      const h = this.head;
      const wentDown = c.periods < (this.periods[h] as number) || c.throttledPeriods < (this.throttled[h] as number)
        || c.throttledNs < (this.throttledNs[h] as number) || c.usageNs < (this.usage[h] as number);
      // A clock going back is as bad as a counter: either would give negative rates.
      if (wentDown || now < (this.at[h] as number)) this.reset();
    }
    this.head = (this.head + 1) % this.size;
    this.at[this.head] = now;
    this.periods[this.head] = c.periods;
    this.throttled[this.head] = c.throttledPeriods;
    this.throttledNs[this.head] = c.throttledNs;
    this.usage[this.head] = c.usageNs;
    if (this.count < this.size) this.count += 1;
  }

  /** The counters of the newest sample; null before the first. */
  newest(): CpuCounters | null {
    if (this.count === 0) return null;
    const h = this.head;
    return { periods: this.periods[h] as number, throttledPeriods: this.throttled[h] as number, throttledNs: this.throttledNs[h] as number, usageNs: this.usage[h] as number };
  }

  /** The newest sample against the oldest one at or after now - windowMs. */
  summary(now: number, windowMs: number): CpuSummary {
    if (this.count < 2) return empty();
    const h = this.head;
    if ((this.at[h] as number) < now - windowMs) return empty();
    let o = h;
    for (let k = 1; k < this.count; k++) {
      const s = (h - k + this.size) % this.size;
      if ((this.at[s] as number) < now - windowMs) break;
      o = s;
    }
    if (o === h) return empty();
    const periods = (this.periods[h] as number) - (this.periods[o] as number);
    const wallNs = ((this.at[h] as number) - (this.at[o] as number)) * 1e6;
    return {
      throttledShare: periods > 0 ? ((this.throttled[h] as number) - (this.throttled[o] as number)) / periods : null,
      usageCores: wallNs > 0 ? ((this.usage[h] as number) - (this.usage[o] as number)) / wallNs : null,
      periods,
    };
  }

  reset(): void {
    this.head = -1;
    this.count = 0;
  }
}
