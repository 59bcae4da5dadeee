// Network sandboxes made ahead of need: about half of a container's start on the engine is making
// its network namespace (veth pair, bridge port, address). A sandbox is a tiny container that
// only holds a namespace (busybox sleeping, no capabilities, a few MB); a new app container joins
// one with `NetworkMode: container:<id>` and starts in half the time. Each sandbox serves one app
// container and goes with it, so every container still has a namespace of its own. The pool is
// bounded (`size`), counted (stats()), refilled one at a time after a start has finished (not
// during one, which it would slow down), and labelled so a later process removes what an earlier
// one left behind.

import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import type { WarmStats } from '../container-runtime.js';

export interface SandboxPoolOptions {
  /** Sandboxes kept ready; 0 turns the pool off. */
  size: number;
  /** An image with /bin/busybox (fastcontainer/hello). */
  image: string;
  network: string;
  /** Labels every sandbox carries besides the role, e.g. the host's. */
  labels: Record<string, string>;
  /** Says what went wrong where nobody waits for an answer (refills). */
  warn(message: string, err: unknown): void;
}

export interface Sandbox {
  id: string;
  ip: string;
}


/** The label that tells sandboxes from app containers; on app containers, the sandbox they joined. */
export const sandboxLabels = { role: 'fastcontainer.role', joined: 'fastcontainer.sandbox' } as const;

const SANDBOX_CPUS = 0.01;
const SANDBOX_MEMORY = 16 * 1024 * 1024;
/** After a failed make, wait this long before the next try. */
const RETRY_MS = 5_000;

export class SandboxPool {
  private readonly ready: Sandbox[] = [];
  /** Every sandbox's address, in the pool or joined, for the containers in it. */
  private readonly ips = new Map<string, string>();
  private filling: Promise<void> | null = null;
  private retryAt = 0;
  private closed = false;
  private readonly counts = { hits: 0, misses: 0, failures: 0 };
  private readonly releasing = new Set<Promise<void>>();

  constructor(private readonly docker: Docker, private readonly o: SandboxPoolOptions) {}

  get enabled(): boolean {
    return this.o.size > 0;
  }

  /** Removes the unused sandboxes an earlier process left (those joined stay with their container), then fills. */
  async prepare(joined: ReadonlySet<string>): Promise<void> {
    if (!this.enabled) return;
    for (const s of await this.listOwn()) {
      if (!joined.has(s.id)) await this.removeQuietly(s.id);
    }
    this.refill();
  }

  /** A sandbox for a new container, or null (empty or off; the container gets a namespace of its own). */
  take(): Sandbox | null {
    const s = this.enabled ? this.ready.shift() : undefined;
    if (s === undefined) {
      this.counts.misses += 1;
      return null;
    }
    this.counts.hits += 1;
    return s;
  }

  /**
   * A sandbox made now, pool or not: for a container whose address must be known before it runs
   * (it has firewall rules of its own, network-isolation.ts). Counted as a miss.
   */
  async makeNow(): Promise<Sandbox> {
    try {
      return await this.make();
    } catch (err) {
      this.counts.failures += 1;
      throw err;
    }
  }

  /** A sandbox taken but not used (the container could not be made in it) is removed, not reused. */
  discard(s: Sandbox): void {
    void this.removeQuietly(s.id);
  }

  /** The address of a container that joined sandbox `id`, or null if that is unknown. */
  async ipOf(id: string): Promise<string | null> {
    const known = this.ips.get(id);
    if (known !== undefined) return known;
    try {
      const info = await this.docker.getContainer(id).inspect();
      const ip = (info.NetworkSettings.Networks as Record<string, { IPAddress?: string }>)[this.o.network]?.IPAddress ?? '';
      if (ip === '' || !info.State.Running) return null;
      this.ips.set(id, ip);
      return ip;
    } catch {
      return null;
    }
  }

  /** Removes the sandbox a removed container had joined, in the background (close() waits for it). */
  release(id: string): void {
    this.ips.delete(id);
    const removal = this.removeQuietly(id).finally(() => this.releasing.delete(removal));
    this.releasing.add(removal);
  }

  /** Makes sandboxes until `size` are ready, one at a time; does nothing if already doing so. */
  refill(): void {
    if (!this.enabled || this.closed || this.filling !== null || Date.now() < this.retryAt) return;
    this.filling = (async () => {
      while (!this.closed && this.ready.length < this.o.size) {
        try {
          const s = await this.make();
          if (this.closed) await this.removeQuietly(s.id);
          else this.ready.push(s);
        } catch (err) {
          this.counts.failures += 1;
          this.retryAt = Date.now() + RETRY_MS;
          this.o.warn(`could not make a network sandbox; containers start without one until it works (next try in ${RETRY_MS / 1000} s)`, err);
          setTimeout(() => this.refill(), RETRY_MS).unref();
          return;
        }
      }
    })().finally(() => (this.filling = null));
  }

  /** The sandbox died (seen by the engine's events): it is no longer handed out. */
  died(id: string): void {
    const i = this.ready.findIndex((s) => s.id === id);
    if (i >= 0) this.ready.splice(i, 1);
    this.ips.delete(id);
    void this.removeQuietly(id);
    this.refill();
  }

  stats(): WarmStats {
    return { ready: this.ready.length, ...this.counts };
  }

  /** Removes the sandboxes waiting in the pool (the joined ones go with their containers). */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling?.catch(() => undefined);
    const unused = this.ready.splice(0);
    await Promise.all([...unused.map((s) => this.removeQuietly(s.id)), ...this.releasing]);
  }

  private async make(): Promise<Sandbox> {
    const c = await this.docker.createContainer({
      // Named so that `docker ps` says what it is.
      name: `fc-sandbox-${randomBytes(5).toString('hex')}`,
      Image: this.o.image,
      Entrypoint: ['/bin/busybox', 'sleep', '2147483647'],
      Cmd: [],
      User: '65534:65534',
      Labels: { ...this.o.labels, [sandboxLabels.role]: 'sandbox' },
      HostConfig: {
        NetworkMode: this.o.network,
        CpuPeriod: 100_000,
        CpuQuota: Math.round(SANDBOX_CPUS * 100_000),
        Memory: SANDBOX_MEMORY,
        MemorySwap: SANDBOX_MEMORY,
        PidsLimit: 4,
        ReadonlyRootfs: true,
        Privileged: false,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        RestartPolicy: { Name: 'no' },
        LogConfig: { Type: 'none', Config: {} },
      },
    });
    try {
      await c.start();
      const ip = await this.ipOf(c.id);
      if (ip === null) throw new Error(`sandbox ${c.id.slice(0, 12)} has no address on network ${this.o.network}`);
      return { id: c.id, ip };
    } catch (err) {
      await this.removeQuietly(c.id);
      throw err;
    }
  }

  private async listOwn(): Promise<{ id: string }[]> {
    const labels = { ...this.o.labels, [sandboxLabels.role]: 'sandbox' };
    const rows = await this.docker.listContainers({ all: true, filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) } });
    return rows.map((r) => ({ id: r.Id }));
  }

  private async removeQuietly(id: string): Promise<void> {
    await this.docker.getContainer(id).remove({ force: true }).catch(() => undefined);
  }
}
