// Heartbeat ages that leave out the CMDB's outages, and the record of those outages.

import { describe, expect, it } from 'vitest';
import { CmdbHealth, heartbeatAge, isHostLive } from '../../src/cmdb/cmdb-health.js';

const host = (heartbeatAt: number) => ({ id: 'h', dispatcherUrl: '', capacity: 1, startedAt: 0, heartbeatAt, rev: 1 });

describe('heartbeatAge', () => {
  it.each([
    // [heartbeatAt, now, outages, age]
    [100, 150, [], 50],
    // The worked example: beat at 100, CMDB away 105..145, 10 old at 150 and 5 old during it.
    [100, 150, [{ from: 105, to: 145 }], 10],
    [100, 120, [{ from: 105, to: null }], 5],
    [100, 500, [{ from: 105, to: null }], 5],
    // An outage before the heartbeat does not matter; one overlapping it counts from the beat.
    [100, 150, [{ from: 10, to: 90 }], 50],
    [100, 150, [{ from: 90, to: 110 }], 40],
    // Two outages.
    [0, 100, [{ from: 10, to: 20 }, { from: 50, to: 80 }], 60],
  ] as const)('beat at %d, now %d, outages %j: %d', (at, now, outages, age) => {
    expect(heartbeatAge(at, now, outages)).toBe(age);
  });
});

describe('isHostLive', () => {
  it('keeps a host live through an outage of any length, and gives it the timeout again after', () => {
    const h = host(1_000);
    const health = new CmdbHealth(0);
    expect(isHostLive(h, 12_000, 10_000, health.outages)).toBe(false);
    health.markDown(2_000);
    expect(isHostLive(h, 3_600_000, 10_000, health.outages)).toBe(true);
    health.markUp(3_600_000);
    expect(isHostLive(h, 3_600_000 + 8_999, 10_000, health.outages)).toBe(true);
    expect(isHostLive(h, 3_600_000 + 9_001, 10_000, health.outages)).toBe(false);
  });

  it('does not bring back a host already silent before the outage', () => {
    const health = new CmdbHealth(0);
    health.markDown(20_000);
    expect(isHostLive(host(1_000), 30_000, 10_000, health.outages)).toBe(false);
  });
});

describe('CmdbHealth', () => {
  it('records each outage once and keeps a bounded number', () => {
    const health = new CmdbHealth(0);
    expect(health.markUp(1)).toBe(false);
    expect(health.markDown(10)).toBe(true);
    expect(health.markDown(11)).toBe(false);
    expect(health.healthy).toBe(false);
    expect(health.markUp(20)).toBe(true);
    expect(health.outages).toEqual([{ from: 10, to: 20 }]);
    for (let i = 0; i < 40; i++) {
      health.markDown(100 + i * 10);
      health.markUp(105 + i * 10);
    }
    expect(health.outages.length).toBeLessThanOrEqual(16);
    expect(health.outages[health.outages.length - 1]).toEqual({ from: 490, to: 495 });
  });
});
