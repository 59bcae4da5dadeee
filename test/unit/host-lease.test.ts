// The host id lease as a starting dispatcher sees it: a lease left by a dead dispatcher is waited
// out, one a live dispatcher keeps renewing is refused, quickly and without a claim of its own.

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { HostLease, leaseTtl, ownerIsGone, ownerToken } from '../../src/dispatcher/host-lease.js';
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

  it('takes over at once a lease whose dispatcher on this machine is gone (kill -9), and still waits for one that runs', async () => {
    const store = new MemoryStore();
    // A process that ran and ended: its pid names nobody now.
    const ended = spawnSync(process.execPath, ['-e', '']).pid as number;
    await store.claimHost('h', ownerToken(undefined, ended).replace('.unknown.', `.${machine()}.`), 60_000, Date.now());
    const began = Date.now();
    const next = new HostLease(store, 'h', 200, systemClock, silentLogger);
    await next.acquire();
    expect(next.held).toBe(true);
    expect(Date.now() - began).toBeLessThan(500);
    // A lease of a process that runs (this one's parent) is waited out as before, never taken over.
    const other = new MemoryStore();
    await other.claimHost('h', ownerToken(undefined, process.ppid).replace('.unknown.', `.${machine()}.`), 1000, Date.now());
    const waited = Date.now();
    const patient = new HostLease(other, 'h', 200, systemClock, silentLogger);
    await patient.acquire();
    expect(Date.now() - waited).toBeGreaterThanOrEqual(900);
  });
});

/** This machine's id as the owner tokens carry it. */
function machine(): string {
  return ownerToken().split('.')[1] as string;
}

describe('ownerIsGone', () => {
  const alive = (pid: number) => pid === 4242;
  it('is true only for a process of this machine that no longer runs', () => {
    expect(ownerIsGone('abc.m1.777', 'm1', alive)).toBe(true);
    expect(ownerIsGone('abc.m1.4242', 'm1', alive)).toBe(false);
  });

  it('is false for anything not certain: another machine, an unknown one, an old token, a bad pid, this process', () => {
    expect(ownerIsGone('abc.m2.777', 'm1', alive)).toBe(false);
    expect(ownerIsGone('abc.m1.777', undefined, alive)).toBe(false);
    expect(ownerIsGone('0123456789abcdef0123456789abcdef', 'm1', alive)).toBe(false);
    expect(ownerIsGone('abc.m1.-1', 'm1', alive)).toBe(false);
    expect(ownerIsGone('abc.m1.0', 'm1', alive)).toBe(false);
    expect(ownerIsGone('abc.m1.1e3', 'm1', alive)).toBe(false);
    expect(ownerIsGone(`abc.m1.${process.pid}`, 'm1', () => false)).toBe(false);
  });
});
