import { describe, expect, it } from 'vitest';
import { RequestWindow } from '../../src/dispatcher/signals/request-window.js';

/** The error the histogram promises (see request-window.ts): within a factor 2^(1/4), or 1 ms below 1 ms. */
function expectWithinBound(estimate: number | null, exact: number): void {
  expect(estimate).not.toBeNull();
  const e = estimate as number;
  if (exact < 1) {
    expect(Math.abs(e - exact)).toBeLessThan(1);
    return;
  }
  expect(e).toBeGreaterThanOrEqual(exact / 2 ** 0.25);
  expect(e).toBeLessThanOrEqual(exact * 2 ** 0.25);
}

/** Nearest-rank p95. */
function exactP95(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(0.95 * sorted.length) - 1] as number;
}

/** A deterministic spread of latencies: the PRNG is mulberry32. */
function lognormalish(n: number, seed: number): number[] {
  let a = seed;
  const rand = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => Math.exp(3 + 1.5 * (rand() + rand() + rand() - 1.5)));
}

describe('RequestWindow', () => {
  it('counts, errors, means, max and rps', () => {
    const w = new RequestWindow();
    expect(w.lastRequestAt).toBeNull();
    w.record(1000, 5, 10, 200);
    w.record(1100, 15, 30, 200);
    w.record(1200, 10, 20, 502);
    w.record(1900, 10, 60, 404);
    const s = w.summary(1999, 1000);
    expect(s).toMatchObject({ requests: 4, errors: 1, meanMs: 30, maxMs: 60, meanTtfbMs: 10 });
    // Buckets 1000..1999 cover 999 ms up to now.
    expect(s.rps).toBeCloseTo(4000 / 999, 9);
    expect(w.lastRequestAt).toBe(1900);
  });

  it('answers an empty window with zeros and nulls', () => {
    expect(new RequestWindow().summary(5000, 10_000)).toEqual({ requests: 0, errors: 0, rps: 0, meanMs: null, p95Ms: null, maxMs: null, meanTtfbMs: null, p95TtfbMs: null, slow: 0 });
  });

  it.each([
    ['1..1000 ms, evenly', Array.from({ length: 1000 }, (_, i) => i + 1)],
    ['a log-normal spread', lognormalish(5000, 7)],
    ['one latency', Array.from({ length: 200 }, () => 20)],
    ['95 fast, 5 slow', [...Array.from({ length: 95 }, () => 20), ...Array.from({ length: 5 }, () => 300)]],
    ['under a millisecond', Array.from({ length: 100 }, (_, i) => i / 100)],
  ] as const)('p95 of %s within the stated error', (_name, values) => {
    const w = new RequestWindow();
    values.forEach((ms, i) => w.record(10_000 + (i % 1000), ms / 2, ms, 200));
    const s = w.summary(10_999, 10_000);
    expect(s.requests).toBe(values.length);
    expectWithinBound(s.p95Ms, exactP95(values));
    expectWithinBound(s.p95TtfbMs, exactP95(values.map((v) => v / 2)));
    expect(s.p95Ms).toBeLessThanOrEqual(s.maxMs as number);
  });

  it('p95 of one latency lies in its bin, at most the maximum', () => {
    const w = new RequestWindow();
    for (let i = 0; i < 50; i++) w.record(0, 20, 20, 200);
    // 20 ms is in the bin [2^(17/4), 2^(18/4)) = [19.03, 22.63).
    const p95 = w.summary(0, 1000).p95Ms as number;
    expect(p95).toBeGreaterThanOrEqual(2 ** (17 / 4));
    expect(p95).toBeLessThanOrEqual(20);
  });

  it('p95 past the top bin (65.5 s) is the maximum', () => {
    const w = new RequestWindow();
    for (let i = 0; i < 10; i++) w.record(0, 100, i < 5 ? 100 : 70_000 + i, 200);
    expect(w.summary(0, 1000).p95Ms).toBe(70_009);
  });

  it('latencies that are not numbers count as 0 rather than poisoning the sums', () => {
    const w = new RequestWindow();
    w.record(0, Number.NaN, -3, 200);
    w.record(0, 10, 10, 200);
    expect(w.summary(0, 1000)).toMatchObject({ requests: 2, meanMs: 5, meanTtfbMs: 5 });
  });

  it('drops buckets as they leave the window', () => {
    const w = new RequestWindow({ bucketMs: 250, buckets: 40 });
    w.record(0, 1, 100, 500);
    w.record(5000, 1, 10, 200);
    expect(w.summary(5000, 10_000)).toMatchObject({ requests: 2, errors: 1, maxMs: 100 });
    // Window of 1 s at 5 s: buckets 4250..5249, so the request at 0 is out.
    expect(w.summary(5000, 1000)).toMatchObject({ requests: 1, errors: 0, maxMs: 10 });
    // At 10 s the 10 s window is buckets 250..10249: the request at 0 has left it.
    expect(w.summary(10_000, 10_000)).toMatchObject({ requests: 1, errors: 0 });
    expect(w.summary(9_999, 10_000)).toMatchObject({ requests: 2, errors: 1 });
    // Windows longer than the ring are the ring.
    expect(w.summary(9_999, 60_000).requests).toBe(2);
  });

  it('reuses a slot as the ring wraps, zeroing what it held', () => {
    const w = new RequestWindow({ bucketMs: 100, buckets: 4 });
    for (let i = 0; i < 10; i++) w.record(50, 1, 1000, 500);
    // 400 ms later: the same slot (key 4 of 4), a new bucket.
    w.record(450, 2, 2, 200);
    const s = w.summary(450, 400);
    expect(s).toMatchObject({ requests: 1, errors: 0, meanMs: 2, maxMs: 2, meanTtfbMs: 2 });
    expect(s.p95Ms).toBeLessThanOrEqual(2);
    // The old bucket is gone for every window, and a late request for it is dropped.
    w.record(60, 1, 1000, 500);
    expect(w.summary(450, 10_000)).toMatchObject({ requests: 1, errors: 0 });
    expect(w.lastRequestAt).toBe(450);
  });

  it('counts slow requests exactly away from the threshold, approximately near it', () => {
    const w = new RequestWindow();
    for (const ms of [5, 10, 90, 120, 1000, 2000]) w.record(0, 1, ms, 200);
    expect(w.summary(0, 1000, 100).slow).toBe(3);
    expect(w.summary(0, 1000, 5000).slow).toBe(0);
    expect(w.summary(0, 1000, 0).slow).toBe(6);
    expect(w.summary(0, 1000).slow).toBe(0);

    const spread = new RequestWindow();
    for (let ms = 10; ms <= 1000; ms += 10) spread.record(0, 1, ms, 200);
    // Exactly 50 are over 500 ms; only those within 2^(1/8) of it may land on the wrong side.
    const slow = spread.summary(0, 1000, 500).slow;
    expect(slow).toBeGreaterThanOrEqual(100 - Math.floor(500 * 2 ** 0.125 / 10));
    expect(slow).toBeLessThanOrEqual(100 - Math.floor(500 / 2 ** 0.125 / 10));
  });
});
