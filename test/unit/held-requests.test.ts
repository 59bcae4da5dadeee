import { describe, expect, it } from 'vitest';
import { HeldRequests } from '../../src/dispatcher/held-requests.js';
import { ManualClock } from '../../src/shared/clock.js';
import { FcError } from '../../src/shared/errors.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return err instanceof FcError ? err.code : String(err);
  }
}

describe('HeldRequests', () => {
  it('releases every held request when the container is ready', async () => {
    const q = new HeldRequests('c1', 10, 1000, new ManualClock());
    const ready = deferred<string>();
    const held = [q.hold(ready.promise), q.hold(ready.promise)];
    expect(q.size).toBe(2);
    ready.resolve('up');
    expect(await Promise.all(held)).toEqual(['up', 'up']);
    expect(q.size).toBe(0);
  });

  it('refuses at once beyond the cap', async () => {
    const q = new HeldRequests('c1', 2, 1000, new ManualClock());
    const never = new Promise<never>(() => undefined);
    void q.hold(never).catch(() => undefined);
    void q.hold(never).catch(() => undefined);
    const err = (await q.hold(never).catch((e: unknown) => e)) as FcError;
    expect(err.code).toBe('FC_ERR_QUEUE_FULL');
    expect(err.retryAfter).toBe(2);
  });

  it('gives up at the deadline with Retry-After', async () => {
    const clock = new ManualClock();
    const q = new HeldRequests('container c1 of app a', 10, 1000, clock);
    const held = codeOf(q.hold(new Promise<never>(() => undefined)));
    await clock.advance(999);
    expect(q.size).toBe(1);
    await clock.advance(1);
    expect(await held).toBe('FC_ERR_QUEUE_TIMEOUT');
    expect(q.size).toBe(0);
  });

  it('stops waiting when the client goes away', async () => {
    const q = new HeldRequests('c1', 10, 1000, new ManualClock());
    const abort = new AbortController();
    const held = q.hold(new Promise<never>(() => undefined), abort.signal).catch((e: unknown) => (e as Error).message);
    abort.abort(new Error('client went away'));
    expect(await held).toBe('client went away');
    expect(q.size).toBe(0);
  });
});
