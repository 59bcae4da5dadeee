import { describe, expect, it } from 'vitest';
import { drainDecision, dueForDrain, expiryOf } from '../../src/dispatcher/lifespan.js';

describe('dueForDrain', () => {
  it('picks ready containers whose lifespan is over', () => {
    const due = dueForDrain(
      [
        { id: 'expired', phase: 'ready', expiresAt: 100 },
        { id: 'exactly', phase: 'ready', expiresAt: 200 },
        { id: 'young', phase: 'ready', expiresAt: 201 },
        { id: 'already-draining', phase: 'draining', expiresAt: 50 },
        { id: 'starting', phase: 'starting', expiresAt: null },
      ],
      200,
    );
    expect(due).toEqual(['expired', 'exactly']);
  });
});

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
