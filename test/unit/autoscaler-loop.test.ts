// The autoscaler's loop under abuse: a flood of slow requests, or ticks piling up behind a slow
// round, must not queue rounds. Everything asked for during a round is merged into one more.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { Autoscaler } from '../../src/dispatcher/autoscaler/autoscaler.js';
import type { DispatcherContext } from '../../src/dispatcher/context.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';

function context(clock: ManualClock): DispatcherContext {
  // A host running nothing: a round looks at no container, so only the scheduling is tested.
  return { deps: { clock }, locals: new Map(), held: new Map(), closed: false, log: silentLogger } as unknown as DispatcherContext;
}

type Round = (only: Set<string> | null) => Promise<void>;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the autoscaler loop', () => {
  it('answers ten thousand slow requests in one turn with one round, for their app', async () => {
    const clock = new ManualClock();
    const scaler = new Autoscaler(context(clock), {} as never);
    const rounds: (Set<string> | null)[] = [];
    vi.spyOn(scaler as unknown as { round: Round }, 'round').mockImplementation(async (only) => {
      rounds.push(only === null ? null : new Set(only));
    });
    for (let i = 0; i < 10_000; i++) scaler.onSlowRequest(i % 2 === 0 ? 'blog' : 'shop');
    await clock.advance(0);
    await scaler.settle();
    expect(rounds).toEqual([new Set(['blog', 'shop'])]);
  });

  it('merges everything asked during a slow round into one more round, never a queue', async () => {
    const clock = new ManualClock();
    const scaler = new Autoscaler(context(clock), {} as never);
    let release!: () => void;
    const rounds: (Set<string> | null)[] = [];
    vi.spyOn(scaler as unknown as { round: Round }, 'round').mockImplementation(async (only) => {
      rounds.push(only === null ? null : new Set(only));
      if (rounds.length === 1) await new Promise<void>((r) => (release = r));
    });
    const first = scaler.tick();
    for (let i = 0; i < 500; i++) {
      void scaler.tick();
      scaler.onSlowRequest('blog');
      await clock.advance(1);
    }
    release();
    await first;
    await scaler.settle();
    // The first round (all apps), then one for everything asked meanwhile (all apps again).
    expect(rounds).toEqual([null, null]);
  });

  it('does nothing once closed', async () => {
    const clock = new ManualClock();
    const ctx = context(clock);
    const scaler = new Autoscaler(ctx, {} as never);
    const round = vi.spyOn(scaler as unknown as { round: Round }, 'round').mockResolvedValue();
    ctx.closed = true;
    scaler.onSlowRequest('blog');
    await scaler.tick();
    await clock.advance(10);
    expect(round).not.toHaveBeenCalled();
  });
});
