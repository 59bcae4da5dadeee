// CPU quotas of the containers on this host, changed live (no restart): by the autoscaler
// (scale up and down) and by hand (`fastcontainer app scale --cpus`, through the CMDB).

import type { ContainerEntry } from '../cmdb/types.js';
import type { DispatcherContext } from './context.js';
import type { LocalContainer } from './local-container.js';

/** How long a quota set by hand holds before the autoscaler may bring it down. */
const MANUAL_QUOTA_HOLD_MS = 60_000;

/**
 * Whether an entry carries a quota set by hand that this container has not taken yet. Only
 * `cpusSetAt` says so: the entry's `cpus` also changes with the autoscaler's own steps, whose
 * writes may reach this dispatcher after others (a frozen-state write carrying an older quota).
 */
export function isNewManualQuota(entry: ContainerEntry, local: LocalContainer): boolean {
  return entry.cpus !== null && entry.cpusSetAt != null && entry.cpusSetAt > local.manualQuotaSeen;
}

export class Quotas {
  constructor(private readonly ctx: DispatcherContext) {}

  /**
   * A quota set elsewhere (`fastcontainer app scale --cpus`): applied live, and held against the
   * autoscaler's scale-down for MANUAL_QUOTA_HOLD_MS.
   */
  byHand(local: LocalContainer, entry: ContainerEntry): void {
    const cpus = entry.cpus as number;
    local.manualQuotaSeen = entry.cpusSetAt ?? 0;
    local.quotaHeldUntil = this.ctx.deps.clock.now() + MANUAL_QUOTA_HOLD_MS;
    void this.set(local, cpus).catch((err: unknown) => this.ctx.log.warn({ err, container: local.id, cpus }, 'could not change the CPU quota'));
  }

  /**
   * Changes a running container's CPU quota live (no restart) and records it in its entry. The
   * quota is written to the container's cgroup first, where it takes effect at once, then given to
   * the engine so its record agrees (and, where the cgroup files cannot be written, through the
   * engine alone). The CPU window starts over: throttling measured under the old quota says
   * nothing of the new one. Resolves with the performance.now() at which the quota took effect.
   */
  set(local: LocalContainer, cpus: number): Promise<number> {
    // One change at a time per container, so the cgroup, the engine and the CMDB end up agreeing.
    const next = local.quotaChain.then(() => this.applyQuota(local, cpus));
    local.quotaChain = next.catch(() => undefined);
    return next;
  }

  private async applyQuota(local: LocalContainer, cpus: number): Promise<number> {
    const { ctx } = this;
    const runtimeId = local.runtimeId;
    if (runtimeId === null) return performance.now();
    const direct = await ctx.cgroup.writeQuota(runtimeId, cpus, local.pid);
    const engine = ctx.deps.runtime.update(runtimeId, { cpus });
    if (!direct) await engine;
    const effectiveAt = performance.now();
    local.cpus = cpus;
    local.cpu.reset();
    if (direct) await engine.catch((err: unknown) => ctx.log.warn({ err, container: local.id, cpus }, 'the engine did not take the new CPU quota (the cgroup has it)'));
    const next = await ctx.deps.store.transitionContainer(local.id, ['ready'], 'ready', { cpus }).catch(() => null);
    if (next !== null) ctx.deps.cache.observe(next);
    return effectiveAt;
  }
}
