// HTTP load with autocannon, bounded in time, on loopback or the Docker bridge only.

import autocannon from 'autocannon';
import { LatencyTimeline } from './timeline.js';

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  total: number;
}

export async function load(url: string, o: { host?: string; connections?: number; seconds?: number } = {}): Promise<LoadResult> {
  const result = await autocannon({
    url,
    connections: o.connections ?? 50,
    duration: o.seconds ?? 5,
    headers: o.host === undefined ? {} : { host: o.host },
  });
  return summaryOf(result);
}

/** What a run of autocannon comes to. */
function summaryOf(result: autocannon.Result): LoadResult {
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors, // autocannon's errors include its timeouts
    non2xx: result.non2xx,
    total: result.requests.total,
  };
}

export interface TimedLoad {
  result: LoadResult;
  timeline: LatencyTimeline;
  /** Epoch ms when the load began: second 0 of the timeline. */
  startedAt: number;
  /** How long the load ran, seconds. */
  elapsed: number;
}

/**
 * A load whose every response is put in a per-second bucket (LatencyTimeline). `during` runs
 * alongside, with the epoch ms the load began (to time a change at the midpoint, say); the load's
 * result waits for it too. `timeout` (s) is autocannon's per-request deadline: a saturated app
 * answers in seconds, and a request given up on would count as an error.
 */
export async function timedLoad(
  url: string,
  o: { host?: string; connections?: number; seconds: number; timeout?: number; path?: string },
  during?: (startedAt: number) => Promise<void>,
): Promise<TimedLoad> {
  const startedAt = Date.now();
  const timeline = new LatencyTimeline(startedAt);
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${url}${o.path ?? '/'}`,
        connections: o.connections ?? 50,
        duration: o.seconds,
        timeout: o.timeout ?? 30,
        headers: o.host === undefined ? {} : { host: o.host },
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    instance.on('response', (_client, status, _bytes, responseTime) => timeline.response(Date.now(), responseTime, status));
    instance.on('reqError', () => timeline.error(Date.now()));
  });
  const side = during === undefined ? Promise.resolve() : during(startedAt);
  const [result] = await Promise.all([done, side]);
  return {
    result: summaryOf(result),
    timeline,
    startedAt,
    elapsed: (Date.now() - startedAt) / 1000,
  };
}

/** Resolves at epoch ms `at` (at once if that has passed). */
export function until(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function markdownTable(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
