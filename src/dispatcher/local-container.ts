// What the dispatcher knows of a container it runs: its phase, where it listens, its pool of
// keep-alive connections, how many requests it is serving (for draining), and the autoscaler's
// signals: its recent requests and CPU, its quota, and the replacement started for it.

import { Pool } from 'undici';
import { Tunnels } from '../shared/tunnel.js';
import { CpuWindow } from './signals/cpu-window.js';
import { RequestWindow } from './signals/request-window.js';
import { ContainerUsage } from './usage-meter.js';

export type LocalPhase = 'starting' | 'ready' | 'draining' | 'stopping';

export class LocalContainer {
  phase: LocalPhase = 'starting';
  runtimeId: string | null = null;
  address: string | null = null;
  pool: Pool | null = null;
  inflight = 0;
  expiresAt: number | null = null;
  drainingSince: number | null = null;
  /** The engine's process id of the container, to find its cgroup; null if unknown. */
  pid: number | null = null;
  /** CPU quota now, in cores (changed live by scale-up and scale-down). */
  cpus: number;
  readyAt = 0;
  /** Latency (ms) above which a finished request makes the autoscaler look at once. */
  slowMs = Number.POSITIVE_INFINITY;
  readonly requests = new RequestWindow({ bucketMs: 250, buckets: 40 });
  readonly cpu = new CpuWindow(48);
  /** Usage for billing (usage-meter.ts): counters since its start. */
  readonly usage = new ContainerUsage();
  /** When the CPU counters were last sampled (the clock's ms). */
  sampledAt = 0;
  lastScaleUpAt: number | null = null;
  lastScaleDownAt: number | null = null;
  /** Set once a scale-down of this container had to be undone; null: the policy's delay. */
  scaleDownDelayMs: number | null = null;
  /** The `cpusSetAt` of the last quota set by hand this container took. */
  manualQuotaSeen = 0;
  /** A quota set by hand holds until then (the clock's ms). */
  quotaHeldUntil: number | null = null;
  /** Quota changes of this container, one after the other. */
  quotaChain: Promise<unknown> = Promise.resolve();
  /** Frozen (cgroup freezer): requests thaw it first. */
  frozen = false;
  freezing: Promise<void> | null = null;
  thawing: Promise<void> | null = null;
  /** Its app's freezeAfter is multiplied by this (freezeBackoffAfterThaw). */
  freezeBackoff = 1;
  /** Since when it is frozen (the clock's ms), while frozen. */
  frozenSince = 0;
  /** Writes of its frozen state to the CMDB, one after the other. */
  frozenSync: Promise<void> = Promise.resolve();
  /** When it was last thawed (the clock's ms); idleness for freezing counts from then too. */
  thawedAt = 0;
  /** After a replacement could not be registered, when to try again (the clock's ms). */
  replaceRetryAt = 0;
  /** Entry id of the replacement registered before its lifespan ends. */
  successor: string | null = null;
  /** Its open WebSocket tunnels (upgrade.ts); each also counts in `inflight`. */
  readonly tunnels = new Tunnels();
  private idleWaiters: (() => void)[] = [];

  constructor(readonly id: string, readonly app: string, cpus: number) {
    this.cpus = cpus;
  }

  markReady(address: string, expiresAt: number, connections: number, readyAt: number): void {
    this.address = address;
    this.expiresAt = expiresAt;
    this.readyAt = readyAt;
    this.pool = new Pool(`http://${address}`, { connections, pipelining: 1, keepAliveTimeout: 4_000 });
    this.phase = 'ready';
  }

  enter(): void {
    this.inflight += 1;
  }

  leave(): void {
    this.inflight -= 1;
    if (this.inflight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  whenIdle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Closes the connections to the container: after in-flight requests (close) or at once (destroy). */
  async closePool(how: 'close' | 'destroy'): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    if (pool !== null) await (how === 'close' ? pool.close() : pool.destroy()).catch(() => undefined);
  }
}
