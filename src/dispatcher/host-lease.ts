// The lease on this dispatcher's host id in the CMDB. Everything a dispatcher does to its host's
// containers (adopt, remove orphans, reset entries) assumes it is the only dispatcher of that id:
// a second one started by mistake with the same FC_HOST_ID would take the first one's containers
// for orphans. So a dispatcher claims its id (a random owner token, set with a lease time) before
// it touches anything, renews the claim with every heartbeat, and gives it up at a clean stop.
// A dispatcher that died (kill -9, a crash) leaves its lease to run out, which a restart would
// wait for; the owner token names the machine and process, so a dispatcher restarted on the same
// machine sees that process gone and takes the lease over at once.

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import type { Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

/** How often a starting dispatcher looks again at a lease another owner holds. */
const POLL_MS = 250;
/** Lease time left that may grow between two looks without meaning a renewal (clocks, rounding). */
const RENEW_SLACK_MS = 200;

/** The lease time for a heartbeat interval: three heartbeats, at least a second. */
export function leaseTtl(heartbeatIntervalMs: number): number {
  return Math.max(1000, 3 * heartbeatIntervalMs);
}

export function hostIdTaken(hostId: string, owner: string, ttlMs: number): FcError {
  return new FcError(
    'FC_ERR_HOST_ID_TAKEN',
    `another dispatcher holds host id "${hostId}" (lease owner ${owner.slice(0, 8)}, renewed, ${ttlMs} ms left): this one refuses to start and touched nothing; give each dispatcher its own FC_HOST_ID, or stop the other one`,
    { host: hostId },
  );
}

/**
 * Where a pid means the same process: this boot of this machine, this pid namespace (containers
 * share the boot and may share the hostname, but not their pids) and hostname, as a short hash;
 * undefined where the kernel does not say (not Linux).
 */
function machineId(): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pids = readlinkSync('/proc/self/ns/pid');
    return createHash('sha256').update(`${boot} ${pids} ${os.hostname()}`).digest('hex').slice(0, 16);
  } catch {
    return undefined;
  }
}

const thisMachine = machineId();

/** An owner token: random (no two processes alike), then the machine and the process id. */
export function ownerToken(machine = thisMachine, pid = process.pid): string {
  return [randomBytes(16).toString('hex'), machine ?? 'unknown', String(pid)].join('.');
}

/**
 * Whether a lease owner is a process of this machine's boot that no longer runs. Anything not
 * certain (another machine, an older token, a pid that exists, even as another user's) is not.
 */
export function ownerIsGone(owner: string, machine = thisMachine, alive = pidAlive): boolean {
  const [, ownerMachine, pidText] = owner.split('.');
  const pid = /^[1-9][0-9]{0,9}$/.test(pidText ?? '') ? Number(pidText) : 0;
  if (machine === undefined || ownerMachine !== machine || pid === 0 || pid === process.pid) return false;
  return !alive(pid);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

export class HostLease {
  /** This process's owner token (ownerToken): only this process renews or releases the lease with it. */
  readonly owner: string;
  /** Whether this process holds the lease, as of its last claim. */
  held = false;
  readonly ttlMs: number;

  constructor(
    private readonly store: Store,
    private readonly hostId: string,
    heartbeatIntervalMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** Tests only: whether an owner token names a process that is gone. */
    private readonly gone: (owner: string) => boolean = ownerIsGone,
    owner = ownerToken(),
  ) {
    this.ttlMs = leaseTtl(heartbeatIntervalMs);
    this.owner = owner;
  }

  /**
   * Claims the host id before the dispatcher touches anything. A lease another owner holds is
   * waited out if nobody renews it (a dispatcher of this id that died, e.g. kill -9, leaves one
   * for at most ttlMs), and refused at once when it is seen renewed (a live dispatcher holds it).
   * Throws FC_ERR_HOST_ID_TAKEN, or FC_ERR_STORE_UNAVAILABLE when the CMDB does not answer.
   */
  async acquire(): Promise<void> {
    const deadline = this.clock.now() + this.ttlMs + 2 * POLL_MS;
    let last: { owner: string; ttlMs: number; at: number } | undefined;
    /** The gone owner whose lease was released, once: never a loop of releases. */
    let released: string | undefined;
    for (;;) {
      const now = this.clock.now();
      const claim = await this.store.claimHost(this.hostId, this.owner, this.ttlMs, now);
      if (claim.held) {
        this.held = true;
        if (last !== undefined) this.log.warn({ host: this.hostId, waitedFor: last.owner.slice(0, 8) }, 'took over the host id lease its earlier dispatcher left');
        return;
      }
      // Left by a dispatcher of this machine that is gone: released (only if still that owner's) and claimed again.
      if (claim.owner !== released && this.gone(claim.owner)) {
        released = claim.owner;
        this.log.warn({ host: this.hostId, owner: claim.owner.slice(0, 8) }, 'the dispatcher that held this host id on this machine is gone; taking its lease over');
        await this.store.releaseHost(this.hostId, claim.owner);
        last = { owner: claim.owner, ttlMs: claim.ttlMs, at: now };
        continue;
      }
      const renewed = last !== undefined && (claim.owner !== last.owner || claim.ttlMs > last.ttlMs - (now - last.at) + RENEW_SLACK_MS);
      if (renewed || now > deadline) throw hostIdTaken(this.hostId, claim.owner, claim.ttlMs);
      if (last === undefined) this.log.warn({ host: this.hostId, ttlMs: claim.ttlMs }, 'another dispatcher holds this host id; waiting to see whether it still renews it');
      last = { owner: claim.owner, ttlMs: claim.ttlMs, at: now };
      await this.clock.sleep(Math.min(POLL_MS, claim.ttlMs + 10));
    }
  }

  /**
   * Renews the lease (with the heartbeat). False when another owner holds it now: this process's
   * lease ran out (the CMDB was away longer than the lease, or lost its data) and another
   * dispatcher of the same id claimed it meanwhile. A CMDB that does not answer throws; the lease
   * is then still taken as held, as nobody else can claim it there either.
   */
  async renew(): Promise<boolean> {
    const claim = await this.store.claimHost(this.hostId, this.owner, this.ttlMs, this.clock.now());
    if (!claim.held && this.held) {
      this.log.error({ host: this.hostId, owner: claim.owner.slice(0, 8) }, 'another dispatcher now holds this host id: this one stops touching the host\'s containers (no reconciliation, no new containers) until it can claim it again');
    } else if (claim.held && !this.held) {
      this.log.warn({ host: this.hostId }, 'holds the host id lease again');
    }
    this.held = claim.held;
    return claim.held;
  }

  /** Gives the lease up (a clean stop), so the next dispatcher of this id starts at once. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.store.releaseHost(this.hostId, this.owner).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not release the host id lease; it runs out by itself'));
  }
}
