// Latency over time: every response of a load, put in the one-second bucket in which it ended
// (seconds since the load began), as the paper's figures 3 and 4 plot it.

/** One second of a load: the responses that ended in [second, second + 1). */
export interface SecondBucket {
  second: number;
  responses: number;
  /** Mean latency (ms) of the responses ending in this second; null when none did. */
  mean: number | null;
  p99: number | null;
  non2xx: number;
  errors: number;
}

export class LatencyTimeline {
  private readonly latencies: number[][] = [];
  /** When each response ended, ms since the start, parallel to `latencies`. */
  private readonly ends: number[][] = [];
  private readonly non2xx: number[] = [];
  private readonly errors: number[] = [];

  constructor(readonly startedAt: number) {}

  private index(at: number): number {
    return Math.max(0, Math.floor((at - this.startedAt) / 1000));
  }

  response(at: number, latencyMs: number, status: number): void {
    const i = this.index(at);
    (this.latencies[i] ??= []).push(latencyMs);
    (this.ends[i] ??= []).push(at - this.startedAt);
    if (status < 200 || status > 299) this.non2xx[i] = (this.non2xx[i] ?? 0) + 1;
  }

  error(at: number): void {
    const i = this.index(at);
    this.errors[i] = (this.errors[i] ?? 0) + 1;
  }

  /** One bucket per second from 0 to the last second anything happened (or `seconds`). */
  buckets(seconds = 0): SecondBucket[] {
    const n = Math.max(seconds, this.latencies.length, this.errors.length, this.non2xx.length);
    const out: SecondBucket[] = [];
    for (let s = 0; s < n; s++) {
      const l = this.latencies[s] ?? [];
      out.push({ second: s, responses: l.length, mean: l.length === 0 ? null : mean(l), p99: l.length === 0 ? null : quantile(l, 0.99), non2xx: this.non2xx[s] ?? 0, errors: this.errors[s] ?? 0 });
    }
    return out;
  }

  /** Mean latency (ms) of every response that ended in [from, to) seconds since the start; null if none. */
  meanBetween(fromS: number, toS: number): number | null {
    let sum = 0;
    let n = 0;
    for (let s = Math.max(0, Math.floor(fromS)); s < Math.min(this.latencies.length, Math.ceil(toS)); s++) {
      const l = this.latencies[s] ?? [];
      const e = this.ends[s] ?? [];
      for (let k = 0; k < l.length; k++) {
        const end = (e[k] as number) / 1000;
        if (end < fromS || end >= toS) continue;
        sum += l[k] as number;
        n++;
      }
    }
    return n === 0 ? null : sum / n;
  }
}

export function mean(xs: number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** The q-quantile (0..1) of xs, nearest rank. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] as number;
}
