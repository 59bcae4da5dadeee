// The metrics added for the dashboard, on their own: the CMDB revision lag as a cache falls
// behind and catches up, and the per-app CFS counters summed from a container's samples.

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CmdbCache } from '../../src/cmdb/cache.js';
import { registerCmdbMetrics } from '../../src/cmdb/cache-metrics.js';
import type { App, Change, ChangeListener, Snapshot, Store } from '../../src/cmdb/types.js';
import { DispatcherMetrics } from '../../src/dispatcher/metrics.js';
import type { CpuCounters } from '../../src/dispatcher/signals/cgroup.js';
import { CpuWindow } from '../../src/dispatcher/signals/cpu-window.js';
import { silentLogger } from '../../src/shared/logger.js';
import { appSpec } from '../helpers/specs.js';

const app = (name: string, rev: number): App => ({ ...appSpec({ name, hostnames: [`${name}.test`] }), rev, createdAt: 1, updatedAt: rev });

/** A store at revision `rev`, whose changes reach the cache only when `deliver()` is called. */
function laggingStore() {
  let listener: ChangeListener | undefined;
  let rev = 5;
  const held: Change[] = [];
  const store = {
    kind: 'memory',
    async subscribe(l: ChangeListener) {
      listener = l;
      return { unsubscribe: async () => {} };
    },
    async snapshot(): Promise<Snapshot> {
      return { rev, apps: [], containers: [], hosts: [] } as unknown as Snapshot;
    },
    async probe() {
      return { epoch: 'e1', rev };
    },
  } as unknown as Store;
  return {
    store,
    write(name: string) {
      rev += 1;
      held.push({ kind: 'app', op: 'put', rev, value: app(name, rev) });
    },
    deliver() {
      for (const c of held.splice(0)) listener?.onChange(c);
    },
  };
}

async function gauge(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values[0]?.value as number | undefined) ?? Number.NaN;
}

describe('fc_cmdb_revision_lag', () => {
  it('counts the revisions the CMDB is ahead of the cache at the last probe, less those arrived since', async () => {
    const s = laggingStore();
    const cache = await CmdbCache.open(s.store, silentLogger, { probeIntervalMs: 0 });
    const registry = new Registry();
    registerCmdbMetrics(registry, cache);
    try {
      await cache.probe();
      expect(await gauge(registry, 'fc_cmdb_cache_revision')).toBe(5);
      expect(await gauge(registry, 'fc_cmdb_revision_lag')).toBe(0);
      // Three writes the subscription has not delivered: the next probe sees the CMDB ahead.
      s.write('a');
      s.write('b');
      s.write('c');
      expect(await gauge(registry, 'fc_cmdb_revision_lag')).toBe(0); // not probed yet: nothing known
      await cache.probe();
      expect(await gauge(registry, 'fc_cmdb_revision_lag')).toBe(3);
      s.deliver();
      expect(await gauge(registry, 'fc_cmdb_cache_revision')).toBe(8);
      expect(await gauge(registry, 'fc_cmdb_revision_lag')).toBe(0);
      expect(cache.app('c')?.rev).toBe(8);
    } finally {
      await cache.close();
    }
  });
});

describe('fc_dispatcher_cpu_* per app', () => {
  const c = (periods: number, throttledPeriods: number, throttledNs: number, usageNs = 0): CpuCounters => ({ periods, throttledPeriods, throttledNs, usageNs });

  async function counters(registry: Registry, app: string) {
    const json = await registry.getMetricsAsJSON();
    const v = (name: string) => (json.find((m) => m.name === name)?.values.find((x) => x.labels.app === app)?.value as number | undefined) ?? 0;
    return { periods: v('fc_dispatcher_cpu_periods_total'), throttled: v('fc_dispatcher_cpu_throttled_periods_total'), seconds: v('fc_dispatcher_cpu_throttled_seconds_total') };
  }

  it('adds what a container\'s counters grew by between samples, nothing for a first sample or counters that went down', async () => {
    const registry = new Registry();
    const metrics = new DispatcherMetrics(registry, { held: () => 0, containers: () => new Map(), warm: () => null, quotas: () => new Map([['site', 0.75]]) });
    const window = new CpuWindow(4);
    const samples: [string, CpuCounters][] = [
      ['first sample (an adopted container has counted before): nothing', c(1000, 900, 5e9)],
      ['+100 periods, +40 throttled, +0.5 s', c(1100, 940, 5.5e9)],
      ['+10 periods, none throttled', c(1110, 940, 5.5e9)],
      ['counters went down (a new cgroup): nothing', c(20, 10, 1e8)],
      ['+30 periods, +30 throttled, +0.25 s', c(50, 40, 3.5e8)],
    ];
    for (const [, next] of samples) {
      const prev = window.newest();
      window.add(0, next);
      metrics.countCpu('site', prev, next);
    }
    expect(await counters(registry, 'site')).toEqual({ periods: 140, throttled: 70, seconds: 0.75 });
    expect(await counters(registry, 'other')).toEqual({ periods: 0, throttled: 0, seconds: 0 });
    const quota = (await registry.getMetricsAsJSON()).find((m) => m.name === 'fc_dispatcher_cpu_quota_cores');
    expect(quota?.values).toEqual([{ labels: { app: 'site' }, value: 0.75 }]);
  });

  it('CpuWindow.newest is the last sample, null before the first and after a reset', () => {
    const w = new CpuWindow(3);
    expect(w.newest()).toBeNull();
    for (let i = 1; i <= 5; i++) w.add(i, c(i, i, i));
    expect(w.newest()).toEqual(c(5, 5, 5));
    w.reset();
    expect(w.newest()).toBeNull();
  });
});
