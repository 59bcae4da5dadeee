// The host id lease as a starting dispatcher sees it: a lease left by a dead dispatcher is waited
// out, one a live dispatcher keeps renewing is refused, quickly and without a claim of its own.

import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { HostLease, leaseTtl } from '../../src/dispatcher/host-lease.js';
import { systemClock } from '../../src/shared/clock.js';
import { FcError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';

describe('HostLease', () => {
  it('is three heartbeats long, at least a second', () => {
    expect(leaseTtl(2000)).toBe(6000);
    expect(leaseTtl(100)).toBe(1000);
  });

  it('claims a free host id at once and gives it up at a clean stop', async () => {
    const store = new MemoryStore();
    const a = new HostLease(store, 'h', 200, systemClock, silentLogger);
    await a.acquire();
    expect(a.held).toBe(true);
    await a.release();
    const b = new HostLease(store, 'h', 200, systemClock, silentLogger);
    await b.acquire();
    expect(b.held).toBe(true);
  });

  it('waits out a lease nobody renews (its dispatcher died) and takes it', async () => {
    const store = new MemoryStore();
    const dead = new HostLease(store, 'h', 200, systemClock, silentLogger);
    await dead.acquire();
    const next = new HostLease(store, 'h', 200, systemClock, silentLogger);
    await next.acquire();
    expect(next.held).toBe(true);
    // The dead one's renewal, were it to come back, finds the lease taken.
    expect(await dead.renew()).toBe(false);
    expect(dead.held).toBe(false);
  });

  it('refuses a lease a live dispatcher renews, and claims nothing', async () => {
    const store = new MemoryStore();
    const live = new HostLease(store, 'h', 200, systemClock, silentLogger);
    await live.acquire();
    const renewing = setInterval(() => void live.renew(), 200);
    try {
      const second = new HostLease(store, 'h', 200, systemClock, silentLogger);
      const err = await second.acquire().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(FcError);
      expect((err as FcError).code).toBe('FC_ERR_HOST_ID_TAKEN');
      expect(second.held).toBe(false);
      expect(await live.renew()).toBe(true);
    } finally {
      clearInterval(renewing);
    }
  });
});
