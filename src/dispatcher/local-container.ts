// What the dispatcher knows of a container it runs: its phase, where it listens, its pool of
// keep-alive connections and how many requests it is serving (for draining).

import { Pool } from 'undici';

export type LocalPhase = 'starting' | 'ready' | 'draining' | 'stopping';

export class LocalContainer {
  phase: LocalPhase = 'starting';
  runtimeId: string | null = null;
  address: string | null = null;
  pool: Pool | null = null;
  inflight = 0;
  expiresAt: number | null = null;
  drainingSince: number | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly id: string, readonly app: string) {}

  markReady(address: string, expiresAt: number, connections: number): void {
    this.address = address;
    this.expiresAt = expiresAt;
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
