// Per-app request rate and latency over the last minutes, for the dashboard's charts. The CMDB
// holds only each container's latest figures (ContainerStats, reported by its dispatcher every
// 2 s over a 10 s window), so this process samples them every SAMPLE_MS into a ring per app. The
// history is this CoreAPI process's own: it starts empty when the process starts, and replicas
// each keep theirs.

import type { ContainerStats } from '../../cmdb/types.js';

/** How often the stats are sampled (and pushed to the dashboard's streams). */
export const SAMPLE_MS = 5_000;
/** Samples kept per app: 15 minutes. */
export const SAMPLES_KEPT = 180;
/** Apps followed at most: past it, apps without a ring yet get none (the charts say so). */
export const MAX_APPS = 1_000;

/** One app at one instant: the sum over its containers of what their dispatchers last measured. */
export interface AppSample {
  at: number;
  /** Requests per second answered (sum of the containers' 10 s rates). */
  rps: number;
  /** Mean latency (ms) weighted by each container's rate; null without requests. */
  meanMs: number | null;
  /** The highest p95 among its containers (ms): an upper bound of the app's p95; null without requests. */
  p95Ms: number | null;
  /** Requests in flight, summed. */
  inflight: number;
  /** Containers that reported. */
  containers: number;
}

/**
 * Folds one snapshot of container stats into a sample per app. Worked example: containers at
 * 30 rps with a 20 ms mean (p95 40) and 10 rps with a 60 ms mean (p95 150) make 40 rps, a mean of
 * (30*20 + 10*60) / 40 = 30 ms and a p95 of at most 150 ms.
 */
export function sampleApps(stats: readonly ContainerStats[], at: number): Map<string, AppSample> {
  const out = new Map<string, AppSample & { weighted: number }>();
  for (const s of stats) {
    const a = out.get(s.app) ?? { at, rps: 0, meanMs: null, p95Ms: null, inflight: 0, containers: 0, weighted: 0 };
    a.containers += 1;
    a.inflight += s.inflight;
    a.rps += s.rps;
    if (s.meanMs !== null && s.rps > 0) a.weighted += s.meanMs * s.rps;
    if (s.p95Ms !== null) a.p95Ms = Math.max(a.p95Ms ?? 0, s.p95Ms);
    out.set(s.app, a);
  }
  const result = new Map<string, AppSample>();
  for (const [app, { weighted, ...a }] of out) {
    result.set(app, { ...a, rps: round(a.rps), meanMs: a.rps > 0 ? round(weighted / a.rps) : null, p95Ms: a.p95Ms === null ? null : round(a.p95Ms) });
  }
  return result;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The rings of samples, per app. */
export class AppSeries {
  private readonly rings = new Map<string, AppSample[]>();

  /**
   * Adds one sample per app: apps without stats get an idle sample while they have a ring, and a
   * ring with nothing but idle samples is dropped (an app deleted or long idle leaves no trace).
   */
  add(samples: ReadonlyMap<string, AppSample>, at: number): void {
    for (const [app, ring] of this.rings) {
      if (samples.has(app)) continue;
      ring.push({ at, rps: 0, meanMs: null, p95Ms: null, inflight: 0, containers: 0 });
      if (ring.length > SAMPLES_KEPT) ring.shift();
      if (ring.every((s) => s.containers === 0)) this.rings.delete(app);
    }
    for (const [app, sample] of samples) {
      let ring = this.rings.get(app);
      if (ring === undefined) {
        if (this.rings.size >= MAX_APPS) continue;
        ring = [];
        this.rings.set(app, ring);
      }
      ring.push(sample);
      if (ring.length > SAMPLES_KEPT) ring.shift();
    }
  }

  /** Every ring, oldest sample first. */
  all(): Record<string, AppSample[]> {
    return Object.fromEntries([...this.rings].map(([app, ring]) => [app, [...ring]]));
  }

  latest(): Record<string, AppSample> {
    const out: Record<string, AppSample> = {};
    for (const [app, ring] of this.rings) {
      const last = ring.at(-1);
      if (last !== undefined) out[app] = last;
    }
    return out;
  }
}
