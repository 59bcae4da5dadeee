// The requests one container served lately: counts, errors, mean and p95 latency, over any window
// up to the ring's length. record() runs once per request on the request path, so it allocates
// nothing: a ring of time buckets, each with its sums and a latency histogram, all in typed arrays
// made in the constructor. A bucket is keyed by Math.floor(now / bucketMs); a slot whose key is
// older than the one being written is stale and is zeroed as it is reused.
//
// Latency histogram: bin 0 is [0, 1 ms); bins 1..64 are quarter octaves, bin i being
// [2^((i-1)/4), 2^(i/4)) ms, from 1 ms to 65.5 s; bin 65 is everything above. A percentile is
// found in its bin and interpolated within it, geometrically (as if values spread evenly on the
// log scale). Error bound: the true value and the estimate share a bin, so they differ by less than
// a factor 2^(1/4) (19 %); below 1 ms by less than 1 ms. The estimate never exceeds the window's
// maximum, which is kept exactly, and in the open top bin it is that maximum.
// Example: 95 requests at 20 ms and 5 at 300 ms: rank 95 falls in the 20 ms bin [19.03, 22.63),
// which holds 95 requests; 95/95 of the way through it gives 22.63 ms for a true 20 ms.

const BINS = 66;
const TOP = 65;
/** Bins per doubling. */
const PER_OCTAVE = 4;
const STEP = 2 ** (1 / PER_OCTAVE);

export interface WindowSummary {
  requests: number;
  /** Answers with status >= 500. */
  errors: number;
  rps: number;
  meanMs: number | null;
  p95Ms: number | null;
  maxMs: number | null;
  meanTtfbMs: number | null;
  p95TtfbMs: number | null;
  /** Requests with totalMs > slowMs (the summary's argument); counted by histogram bin, see binAbove. */
  slow: number;
}

function binOf(ms: number): number {
  if (ms < 1) return 0;
  const i = 1 + Math.floor(PER_OCTAVE * Math.log2(ms));
  return i > TOP ? TOP : i;
}

/** Lower edge of bin i (i >= 1). */
function lowerEdge(i: number): number {
  return 2 ** ((i - 1) / PER_OCTAVE);
}

/** A latency as the histogram takes it: NaN, negative or infinite counts as 0 rather than poisoning sums. */
function clean(ms: number): number {
  return ms > 0 && ms < Number.POSITIVE_INFINITY ? ms : 0;
}

/**
 * The first bin counted as slow: the one starting at the bin edge nearest slowMs. So requests
 * within a factor 2^(1/8) (9 %) of slowMs may be counted on the wrong side; all others are right.
 */
function binAbove(slowMs: number): number {
  if (slowMs < 0.5) return 0;
  if (slowMs < 1) return 1;
  const i = 1 + Math.round(PER_OCTAVE * Math.log2(slowMs));
  return i > TOP ? TOP : i;
}

/** The value at quantile q of a histogram holding n values, capped at max (see the header). */
function quantile(hist: Uint32Array, n: number, q: number, max: number): number {
  const rank = q * n;
  let below = 0;
  for (let i = 0; i < BINS; i++) {
    const c = hist[i] as number;
    if (c === 0 || below + c < rank) {
      below += c;
      continue;
    }
    const f = (rank - below) / c;
    const v = i === 0 ? f : i === TOP ? max : lowerEdge(i) * STEP ** f;
    return v < max ? v : max;
  }
  return max;
}

export class RequestWindow {
  readonly bucketMs: number;
  private readonly size: number;
  private readonly keys: Float64Array;
  private readonly count: Uint32Array;
  private readonly errorCount: Uint32Array;
  private readonly sumTotal: Float64Array;
  private readonly sumTtfb: Float64Array;
  private readonly maxTotal: Float64Array;
  private readonly maxTtfb: Float64Array;
  private readonly histTotal: Uint32Array;
  private readonly histTtfb: Uint32Array;
  /** summary()'s merged histograms, reused. */
  private readonly scratchTotal = new Uint32Array(BINS);
  private readonly scratchTtfb = new Uint32Array(BINS);
  private last: number | null = null;

  constructor(o: { bucketMs?: number; buckets?: number } = {}) {
    this.bucketMs = o.bucketMs ?? 250;
    this.size = o.buckets ?? 40;
    if (!(this.bucketMs > 0) || !Number.isInteger(this.size) || this.size < 1) {
      throw new RangeError(`RequestWindow needs bucketMs > 0 and a whole number of buckets >= 1 (got ${this.bucketMs}, ${this.size})`);
    }
    this.keys = new Float64Array(this.size).fill(Number.NEGATIVE_INFINITY);
    this.count = new Uint32Array(this.size);
    this.errorCount = new Uint32Array(this.size);
    this.sumTotal = new Float64Array(this.size);
    this.sumTtfb = new Float64Array(this.size);
    this.maxTotal = new Float64Array(this.size);
    this.maxTtfb = new Float64Array(this.size);
    this.histTotal = new Uint32Array(this.size * BINS);
    this.histTtfb = new Uint32Array(this.size * BINS);
  }

  /** When the newest request recorded ended; null before the first. */
  get lastRequestAt(): number | null {
    return this.last;
  }

  private slot(key: number): number {
    const s = key % this.size;
    return s < 0 ? s + this.size : s;
  }

  record(now: number, ttfbMs: number, totalMs: number, status: number): void {
    if (this.last === null || now > this.last) this.last = now;
    const key = Math.floor(now / this.bucketMs);
    const s = this.slot(key);
    const held = this.keys[s] as number;
    // A request older than the whole ring: out of every window already.
    if (held > key) return;
    if (held < key) {
      this.keys[s] = key;
      this.count[s] = 0;
      this.errorCount[s] = 0;
      this.sumTotal[s] = 0;
      this.sumTtfb[s] = 0;
      this.maxTotal[s] = 0;
      this.maxTtfb[s] = 0;
      this.histTotal.fill(0, s * BINS, (s + 1) * BINS);
      this.histTtfb.fill(0, s * BINS, (s + 1) * BINS);
    }
    const total = clean(totalMs);
    const ttfb = clean(ttfbMs);
    this.count[s] = (this.count[s] as number) + 1;
    if (status >= 500) this.errorCount[s] = (this.errorCount[s] as number) + 1;
    this.sumTotal[s] = (this.sumTotal[s] as number) + total;
    this.sumTtfb[s] = (this.sumTtfb[s] as number) + ttfb;
    if (total > (this.maxTotal[s] as number)) this.maxTotal[s] = total;
    if (ttfb > (this.maxTtfb[s] as number)) this.maxTtfb[s] = ttfb;
    const ht = s * BINS + binOf(total);
    const hf = s * BINS + binOf(ttfb);
    this.histTotal[ht] = (this.histTotal[ht] as number) + 1;
    this.histTtfb[hf] = (this.histTtfb[hf] as number) + 1;
  }

  /**
   * The requests in the window ending at now. The window is whole buckets: now's bucket and the
   * ones before it, ceil(windowMs / bucketMs) in all (at most the ring), so it reaches back between
   * windowMs - bucketMs and windowMs. rps divides by the time those buckets cover up to now (at
   * least one bucket), so a bucket just begun does not dilute it. slowMs: see binAbove.
   */
  summary(now: number, windowMs: number, slowMs?: number): WindowSummary {
    const newest = Math.floor(now / this.bucketMs);
    const n = Math.min(this.size, Math.max(1, Math.ceil(windowMs / this.bucketMs)));
    const total = this.scratchTotal.fill(0);
    const ttfb = this.scratchTtfb.fill(0);
    let requests = 0;
    let errors = 0;
    let sumTotal = 0;
    let sumTtfb = 0;
    let maxTotal = 0;
    let maxTtfb = 0;
    for (let key = newest - n + 1; key <= newest; key++) {
      const s = this.slot(key);
      if (this.keys[s] !== key) continue;
      requests += this.count[s] as number;
      errors += this.errorCount[s] as number;
      sumTotal += this.sumTotal[s] as number;
      sumTtfb += this.sumTtfb[s] as number;
      if ((this.maxTotal[s] as number) > maxTotal) maxTotal = this.maxTotal[s] as number;
      if ((this.maxTtfb[s] as number) > maxTtfb) maxTtfb = this.maxTtfb[s] as number;
      for (let i = 0, o = s * BINS; i < BINS; i++, o++) {
        total[i] = (total[i] as number) + (this.histTotal[o] as number);
        ttfb[i] = (ttfb[i] as number) + (this.histTtfb[o] as number);
      }
    }
    let slow = 0;
    // Nothing above the window's (exact) maximum is slow, whatever the bins say.
    if (slowMs !== undefined && requests > 0 && maxTotal > slowMs) {
      for (let i = binAbove(slowMs); i < BINS; i++) slow += total[i] as number;
    }
    const spanMs = Math.max(this.bucketMs, now - (newest - n + 1) * this.bucketMs);
    const none = requests === 0;
    return {
      requests,
      errors,
      rps: (requests * 1000) / spanMs,
      meanMs: none ? null : sumTotal / requests,
      p95Ms: none ? null : quantile(total, requests, 0.95, maxTotal),
      maxMs: none ? null : maxTotal,
      meanTtfbMs: none ? null : sumTtfb / requests,
      p95TtfbMs: none ? null : quantile(ttfb, requests, 0.95, maxTtfb),
      slow,
    };
  }
}
