import { describe, expect, it } from 'vitest';
import { drainDecision, dueForFreeze, expiryOf, freezeBackoffAfterThaw, metabolism, replacementLead, type FreezableContainer, type MortalContainer } from '../../src/dispatcher/lifespan.js';

describe('drainDecision', () => {
  const policy = { graceMs: 1000, timeoutMs: 30_000 };
  it.each([
    ['in flight, early', 3, 400, 'wait'],
    ['idle but within the grace', 0, 999, 'wait'],
    ['idle after the grace', 0, 1000, 'stop'],
    ['busy after the grace', 1, 5000, 'wait'],
    ['busy at the timeout', 1, 30_000, 'stop'],
  ] as const)('%s', (_name, inflight, elapsed, want) => {
    expect(drainDecision({ inflight, drainingSince: 10_000 }, 10_000 + elapsed, policy)).toBe(want);
  });
});

describe('expiryOf', () => {
  it('adds the lifespan in seconds', () => {
    expect(expiryOf(5_000, 600)).toBe(605_000);
  });
});

describe('metabolism', () => {
  const policy = { leadMs: () => 1_500, maxOverstayMs: 10_000 };
  const c = (o: Partial<MortalContainer> = {}): MortalContainer => ({ id: 'a', app: 'blog', phase: 'ready', expiresAt: 10_000, successor: null, wanted: true, ...o });

  it.each<[string, MortalContainer, number, { replace: string[]; drain: string[] }]>([
    ['young and wanted: nothing yet', c(), 8_000, { replace: [], drain: [] }],
    ['within the lead and wanted: a replacement', c(), 8_500, { replace: ['a'], drain: [] }],
    ['within the lead, not wanted (idle, above minContainers): no replacement', c({ wanted: false }), 9_000, { replace: [], drain: [] }],
    ['at its end, not wanted: drained', c({ wanted: false }), 10_000, { replace: [], drain: ['a'] }],
    ['at its end, replacement ready: drained', c({ successor: 'ready' }), 10_000, { replace: [], drain: ['a'] }],
    ['at its end, replacement still starting: keeps serving', c({ successor: 'pending' }), 10_500, { replace: [], drain: [] }],
    ['replacement still starting past the overstay: drained anyway', c({ successor: 'pending' }), 20_000, { replace: [], drain: ['a'] }],
    ['replacement failed: drained at its end', c({ successor: 'gone' }), 10_000, { replace: [], drain: ['a'] }],
    ['wanted, and its end came before any replacement: one now, and it waits', c(), 10_200, { replace: ['a'], drain: [] }],
    ['a replacement already registered is not registered again', c({ successor: 'pending' }), 9_000, { replace: [], drain: [] }],
    ['draining already: nothing', c({ phase: 'draining' }), 11_000, { replace: [], drain: [] }],
    ['starting: nothing', c({ phase: 'starting', expiresAt: null }), 11_000, { replace: [], drain: [] }],
    // On a drained host: expiresAt is the drain's start, holdUntil its own end plus the overstay.
    ['drained host, wanted: a replacement at once', c({ expiresAt: 3_000, holdUntil: 20_000 }), 3_000, { replace: ['a'], drain: [] }],
    ['drained host, replacement ready: drained', c({ expiresAt: 3_000, holdUntil: 20_000, successor: 'ready' }), 4_000, { replace: [], drain: ['a'] }],
    ['drained host, replacement could not be placed: keeps serving', c({ expiresAt: 3_000, holdUntil: 20_000, successor: 'gone' }), 15_000, { replace: [], drain: [] }],
    ['drained host, replacement still starting past the usual overstay: keeps serving', c({ expiresAt: 3_000, holdUntil: 20_000, successor: 'pending' }), 15_000, { replace: [], drain: [] }],
    ['drained host, no replacement by holdUntil: drained', c({ expiresAt: 3_000, holdUntil: 20_000, successor: 'gone' }), 20_000, { replace: [], drain: ['a'] }],
    ['drained host, not wanted: drained at once', c({ expiresAt: 3_000, holdUntil: 20_000, wanted: false }), 3_000, { replace: [], drain: ['a'] }],
  ])('%s', (_name, container, now, want) => {
    expect(metabolism([container], now, policy)).toEqual(want);
  });

  it('takes the lead per app', () => {
    const lead = (app: string) => (app === 'slow' ? 5_000 : 1_000);
    const plan = metabolism([c({ id: 'x', app: 'slow' }), c({ id: 'y', app: 'fast' })], 6_000, { leadMs: lead, maxOverstayMs: 1 });
    expect(plan.replace).toEqual(['x']);
  });
});

describe('replacementLead', () => {
  it('is 3 s before any start was measured, then twice the slowest recent start plus a second', () => {
    expect(replacementLead([])).toBe(3_000);
    expect(replacementLead([250, 310, 280])).toBe(1_620);
  });
});

describe('dueForFreeze', () => {
  const c = (o: Partial<FreezableContainer> = {}): FreezableContainer => ({ id: 'a', phase: 'ready', frozen: false, inflight: 0, held: 0, lastActiveAt: 10_000, freezeAfterMs: 5_000, ...o });
  it.each<[string, FreezableContainer, number, string[]]>([
    ['idle for freezeAfter: frozen', c(), 15_000, ['a']],
    ['not yet idle long enough', c(), 14_999, []],
    ['a request in flight (a long download): not frozen', c({ inflight: 1 }), 60_000, []],
    ['requests held for it: not frozen', c({ held: 2 }), 60_000, []],
    ['already frozen', c({ frozen: true }), 60_000, []],
    ['freezeAfter 0: never', c({ freezeAfterMs: 0 }), 1e12, []],
    ['draining: not frozen', c({ phase: 'draining' }), 60_000, []],
  ])('%s', (_name, container, now, want) => {
    expect(dueForFreeze([container], now)).toEqual(want);
  });
});

describe('freezeBackoffAfterThaw', () => {
  it.each([
    ['thawed soon after freezing: waits twice as long next time', 1, 1_000, 5_000, 2],
    ['again: four times', 2, 1_000, 5_000, 4],
    ['never past 16', 16, 1_000, 5_000, 16],
    ['slept longer than freezeAfter: back to 1', 8, 60_000, 5_000, 1],
  ] as const)('%s', (_name, backoff, frozenFor, freezeAfter, want) => {
    expect(freezeBackoffAfterThaw(backoff, frozenFor, freezeAfter)).toBe(want);
  });
});
