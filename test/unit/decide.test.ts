import { describe, expect, it } from 'vitest';
import { decide, defaultPolicy, scaleDownDelayAfterUp, type AppSignals, type ContainerSignals } from '../../src/dispatcher/autoscaler/decide.js';

const NOW = 1_000_000;

function container(o: Partial<ContainerSignals> = {}): ContainerSignals {
  return {
    id: 'c1', phase: 'ready', cpus: 0.3, readyAt: NOW - 60_000,
    requests: 0, meanMs: null, p95Ms: null, throttledShare: 0,
    stableRequests: 0, stableThrottledShare: 0, stableUsageCores: 0,
    inflight: 0, held: 0, lastRequestAt: NOW - 100, lastScaleUpAt: null, lastScaleDownAt: null, scaleDownDelayMs: defaultPolicy.scaleDownDelayMs, quotaHeldUntil: null,
    ...o,
  };
}

function app(o: Partial<AppSignals> = {}, spec: Partial<AppSignals['spec']> = {}): AppSignals {
  return {
    app: 'blog',
    spec: { cpus: 0.3, maxCpus: 0.6, latencyTargetMs: 500, idleTimeout: 60, minContainers: 0, maxContainers: 4, autoscale: true, ...spec },
    live: 1, ready: 1, pending: 0, lastScaleOutAt: null, lastScaleInAt: null,
    containers: [container()],
    ...o,
  };
}

const busy = { requests: 50, inflight: 20, meanMs: 700, p95Ms: 900, lastRequestAt: NOW };
const kinds = (a: AppSignals, now = NOW) => decide(a, now).map((d) => d.kind);

describe('decide', () => {
  it.each<[string, AppSignals, string[]]>([
    ['quiet: nothing', app(), []],
    ['autoscale off: nothing, however loaded', app({ containers: [container({ ...busy, throttledShare: 1 })] }, { autoscale: false }), []],
    ['throttled below the ceiling: scale up', app({ containers: [container({ ...busy, throttledShare: 0.9 })] }), ['scale-up']],
    ['throttled but no traffic (a background loop): nothing', app({ containers: [container({ throttledShare: 0.9, lastRequestAt: NOW - 1000 })] }), []],
    ['throttled with one long poll open but nothing answered: nothing', app({ containers: [container({ throttledShare: 0.9, inflight: 1, requests: 0 })] }), []],
    ['a quota set by hand and still held: not scaled down', app({ containers: [container({ cpus: 0.6, quotaHeldUntil: NOW + 1, stableThrottledShare: 0, stableUsageCores: 0 })] }), []],
    ['a quota set by hand, hold over: scaled down', app({ containers: [container({ cpus: 0.6, quotaHeldUntil: NOW, stableThrottledShare: 0, stableUsageCores: 0 })] }), ['scale-down']],
    ['idle above minContainers counting entries, but its only ready one (the other still starting): nothing', app({ live: 2, ready: 1, pending: 1, containers: [container({ lastRequestAt: NOW - 61_000 })] }, { minContainers: 1 }), []],
    ['slow, not throttled: scale out', app({ containers: [container({ ...busy, throttledShare: 0.02 })] }), ['scale-out']],
    ['slow, throttled at the ceiling: scale out', app({ containers: [container({ ...busy, cpus: 0.6, throttledShare: 0.9 })] }), ['scale-out']],
    ['slow, cgroup unreadable: scale out', app({ containers: [container({ ...busy, throttledShare: null })] }), ['scale-out']],
    ['slow and throttled below the ceiling: scale up only (more CPU first)', app({ containers: [container({ ...busy, throttledShare: 0.9 })] }), ['scale-up']],
    ['slow, at maxContainers: nothing', app({ live: 4, containers: [container({ ...busy, throttledShare: 0 })] }), []],
    ['slow while another container is still starting: nothing', app({ live: 2, pending: 1, containers: [container({ ...busy, throttledShare: 0 })] }), []],
    ['slow within the scale-out cool-down: nothing', app({ lastScaleOutAt: NOW - 500, containers: [container({ ...busy, throttledShare: 0 })] }), []],
    ['slow over too few requests: nothing', app({ containers: [container({ requests: 2, meanMs: 5000, throttledShare: 0 })] }), []],
    ['fast: nothing', app({ containers: [container({ ...busy, meanMs: 20, throttledShare: 0 })] }), []],
    ['throttled at the ceiling, fast: nothing', app({ containers: [container({ ...busy, meanMs: 100, cpus: 0.6, throttledShare: 0.9 })] }), []],
    ['scaled-up quota idle: scale down', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, stableThrottledShare: 0, stableUsageCores: 0.05 })] }), ['scale-down']],
    ['scaled up a moment ago: keep it', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 2_000, stableThrottledShare: 0, stableUsageCores: 0.05 })] }), []],
    ['usage would not fit the smaller quota: keep it (no flapping)', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, stableThrottledShare: 0, stableUsageCores: 0.28 })] }), []],
    ['usage fits but without 40% to spare: keep it', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, stableThrottledShare: 0, stableUsageCores: 0.2 })] }), []],
    ['a scale-down undone before: its longer delay holds', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, scaleDownDelayMs: 40_000, stableThrottledShare: 0, stableUsageCores: 0.05 })] }), []],
    ['still throttled now and then: keep it', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, stableThrottledShare: 0.1, stableUsageCores: 0.05 })] }), []],
    ['quota unknown usage, requests seen: keep it', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, stableThrottledShare: null, stableUsageCores: null, stableRequests: 5 })] }), []],
    ['quota unknown usage, no requests: scale down', app({ containers: [container({ cpus: 0.6, lastScaleUpAt: NOW - 20_000, stableThrottledShare: null, stableUsageCores: null, stableRequests: 0 })] }), ['scale-down']],
    ['idle past idleTimeout above minContainers: scale in', app({ containers: [container({ lastRequestAt: NOW - 61_000 })] }), ['scale-in']],
    ['idle but at minContainers: nothing', app({ containers: [container({ lastRequestAt: NOW - 61_000 })] }, { minContainers: 1 }), []],
    ['idle but a request in flight (a long download): nothing', app({ containers: [container({ lastRequestAt: NOW - 61_000, inflight: 1 })] }), []],
    ['never had a request, ready long enough: scale in', app({ containers: [container({ lastRequestAt: null, readyAt: NOW - 61_000 })] }), ['scale-in']],
    ['idle within the scale-in cool-down: nothing', app({ lastScaleInAt: NOW - 1000, containers: [container({ lastRequestAt: NOW - 61_000 })] }), []],
  ])('%s', (_name, signals, want) => {
    expect(kinds(signals)).toEqual(want);
  });

  it('doubles the quota up to the ceiling, and says why', () => {
    const [d] = decide(app({ containers: [container({ ...busy, throttledShare: 0.93 })] }, { maxCpus: 0.5 }), NOW);
    expect(d).toMatchObject({ kind: 'scale-up', container: 'c1', from: 0.3, to: 0.5 });
    expect(d?.reason).toContain('throttled in 93% of CPU periods');
  });

  it('halves the quota down to cpus, not below', () => {
    const c = container({ cpus: 0.4, lastScaleUpAt: NOW - 20_000, stableThrottledShare: 0, stableUsageCores: 0 });
    expect(decide(app({ containers: [c] }), NOW)).toMatchObject([{ kind: 'scale-down', from: 0.4, to: 0.3 }]);
  });

  it('scales out by one with the live count before and after, and names the latency', () => {
    const [d] = decide(app({ live: 2, containers: [container({ ...busy, throttledShare: 0 })] }), NOW);
    expect(d).toMatchObject({ kind: 'scale-out', from: 2, to: 3 });
    expect(d?.reason).toMatch(/mean latency \(to first byte\) 700 ms > target 500 ms over 50 requests, not short of CPU/);
  });

  it('waits out the scale-up cool-down before scaling out a container still short of CPU', () => {
    const c = container({ ...busy, cpus: 0.45, throttledShare: 0.9, lastScaleUpAt: NOW - 200 });
    expect(kinds(app({ containers: [c] }))).toEqual([]);
    expect(kinds(app({ containers: [{ ...c, lastScaleUpAt: NOW - defaultPolicy.scaleUpCooldownMs }] }))).toEqual(['scale-up']);
  });

  it('weighs the latency of several containers by their requests', () => {
    const a = container({ id: 'a', requests: 90, meanMs: 100, throttledShare: 0 });
    const b = container({ id: 'b', requests: 10, meanMs: 4000, throttledShare: 0 });
    // (90 * 100 + 10 * 4000) / 100 = 490 ms: under the target.
    expect(kinds(app({ live: 2, containers: [a, b] }))).toEqual([]);
  });

  it('scales in only the container idle longest, one per round, and never while slow', () => {
    const a = container({ id: 'a', lastRequestAt: NOW - 70_000 });
    const b = container({ id: 'b', lastRequestAt: NOW - 90_000 });
    expect(decide(app({ live: 2, ready: 2, containers: [a, b] }), NOW)).toMatchObject([{ kind: 'scale-in', container: 'b', from: 2, to: 1 }]);
    const c = container({ id: 'c', ...busy, throttledShare: 0 });
    expect(kinds(app({ live: 3, ready: 3, containers: [a, b, c] }))).toEqual(['scale-out']);
  });

  it('does not flap: a load that needs 0.5 cores keeps its 0.6 quota round after round', () => {
    // Throttling gone at 0.6, usage 0.5: scale-down would throttle again at 0.3.
    let c = container({ ...busy, meanMs: 80, cpus: 0.6, throttledShare: 0, stableThrottledShare: 0, stableUsageCores: 0.5, lastScaleUpAt: NOW - 60_000 });
    for (let t = 0; t < 60_000; t += 1000) {
      expect(kinds(app({ containers: [c] }), NOW + t)).toEqual([]);
      c = { ...c, lastRequestAt: NOW + t };
    }
  });

  it('ignores containers not ready', () => {
    const starting = container({ ...busy, phase: 'starting', throttledShare: 1 });
    expect(kinds(app({ containers: [starting] }))).toEqual([]);
  });
});

describe('scaleDownDelayAfterUp', () => {
  it.each([
    ['never scaled down: unchanged', 10_000, null, 5_000, 10_000],
    ['a scale-down long ago: unchanged', 10_000, 0, 31_000, 10_000],
    ['undoing a scale-down of 12 s ago: doubled', 10_000, 100_000, 112_000, 20_000],
    ['doubling stops at the most', 200_000, 100_000, 101_000, 300_000],
  ] as const)('%s', (_name, delay, lastDown, now, want) => {
    expect(scaleDownDelayAfterUp(delay, lastDown, now)).toBe(want);
  });
});
