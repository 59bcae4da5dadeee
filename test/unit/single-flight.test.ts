import { describe, expect, it } from 'vitest';
import { SingleFlight } from '../../src/shared/single-flight.js';

describe('SingleFlight', () => {
  it('runs once for concurrent callers of a key and shares the result', async () => {
    const sf = new SingleFlight<string, number>();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const calls = Array.from({ length: 50 }, () => sf.run('k', async () => { runs += 1; await gate; return 42; }));
    expect(sf.has('k')).toBe(true);
    release();
    expect(new Set(await Promise.all(calls))).toEqual(new Set([42]));
    expect(runs).toBe(1);
    expect(sf.has('k')).toBe(false);
  });

  it('runs again after a failure, and keys do not share', async () => {
    const sf = new SingleFlight<string, string>();
    await expect(sf.run('a', async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await sf.run('a', async () => 'second')).toBe('second');
    expect(await Promise.all([sf.run('x', async () => 'x'), sf.run('y', async () => 'y')])).toEqual(['x', 'y']);
  });
});
