// The loops of one host: the heartbeat that tells the proxies this dispatcher lives, and the
// reconciliation of the engine with the CMDB (adopt, remove orphans, reset or forget entries),
// which also sweeps hosts gone silent and keeps every app's minContainers.

import { newContainerEntry, newContainerId } from '../cmdb/placement.js';
import { liveStates, type App } from '../cmdb/types.js';
import { SingleFlight } from '../shared/single-flight.js';
import { labelKeys } from './container-runtime.js';
import { appOf, type DispatcherContext } from './context.js';
import type { ContainerLifecycle } from './lifecycle.js';
import { deadHosts, planReconcile, type ReconcileAction } from './reconcile.js';

export class HostLoops {
  private readonly reconciling = new SingleFlight<string, void>();
  private readonly minimum = new SingleFlight<string, void>();

  constructor(private readonly ctx: DispatcherContext, private readonly lifecycle: ContainerLifecycle) {}

  async heartbeat(): Promise<void> {
    const { ctx } = this;
    const now = ctx.deps.clock.now();
    try {
      // The lease first: a dispatcher that lost its host id to another stops announcing it.
      if (!(await ctx.lease.renew())) return;
      await ctx.deps.store.heartbeatHost({
        id: ctx.s.hostId, dispatcherUrl: ctx.url, capacity: ctx.s.hostCapacity, startedAt: ctx.startedAt, heartbeatAt: now,
      });
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'heartbeat failed');
    }
  }

  /**
   * After the CMDB comes back, or comes back empty (a new epoch): the host entry (and its lease)
   * written again at once, then reconciliation (containers no entry claims go), so the roles
   * converge within a probe interval instead of a heartbeat and a reconcile interval.
   */
  reannounce(why: string): void {
    const { ctx } = this;
    if (ctx.closed) return;
    ctx.log.info({ why }, 're-announcing the host and reconciling');
    void this.heartbeat()
      .then(() => this.reconcile())
      .catch((err: unknown) => ctx.log.error({ err }, 'reconcile after the CMDB\'s return failed; the next pass tries again'));
  }

  /** Makes the engine and the CMDB agree for this host: adopt, remove orphans, reset or forget entries. */
  reconcile(): Promise<void> {
    return this.reconciling.run('host', async () => {
      const { ctx } = this;
      const { runtime, store, cache } = ctx.deps;
      // Without the lease another dispatcher may own these containers; with the CMDB away, what it
      // says is not known. Either way, touch nothing.
      if (!ctx.lease.held || !cache.cmdbHealthy) return;
      // Served from before the CMDB is read: an entry of theirs missing from it was removed.
      const settled = new Set([...ctx.locals].filter(([, l]) => (l.phase === 'ready' || l.phase === 'draining') && l.runtimeId !== null).map(([id]) => id));
      const [containers, entries] = await Promise.all([runtime.list({ [labelKeys.host]: ctx.s.hostId }), store.listContainers({ host: ctx.s.hostId })]);
      // Containers being started or retired are in flux: reconciliation leaves them alone.
      const tracked = new Map([...ctx.locals].map(([id, l]) => [id, l.phase === 'ready' || l.phase === 'draining' ? l.runtimeId : null]));
      for (const action of planReconcile({ runtime: containers, entries, tracked, settled })) {
        ctx.metrics.reconcileActions.inc({ action: action.kind });
        try {
          await this.applyReconcile(action);
        } catch (err) {
          ctx.log.error({ err, action: action.kind }, 'a reconcile action failed; the next pass tries again');
        }
      }
      await this.sweepDeadHosts();
      await this.ensureMinimum();
    });
  }

  private async applyReconcile(action: ReconcileAction): Promise<void> {
    const { ctx } = this;
    const { runtime, store, cache } = ctx.deps;
    switch (action.kind) {
      case 'adopt': {
        const app = await appOf(ctx, action.entry.app);
        const ip = action.container.ip ?? (await runtime.inspect(action.container.id))?.ip ?? null;
        if (app === null || ip === null) {
          await runtime.remove(action.container.id);
          const g = await store.transitionContainer(action.entry.id, ['ready', 'draining'], 'gone');
          if (g) cache.observe(g);
          return;
        }
        // Frozen by an earlier dispatcher: adopted frozen, thawed by the next request.
        this.lifecycle.adopt(action.entry, app, action.container.id, ip, action.container.paused === true);
        return;
      }
      case 'remove':
        ctx.log.info({ runtimeId: action.container.id.slice(0, 12), name: action.container.name, reason: action.reason }, 'removing orphan container');
        await runtime.remove(action.container.id);
        return;
      case 'reset': {
        const reset = await store.transitionContainer(action.entry.id, [action.entry.state], 'registered', {
          address: null, runtimeId: null, startedAt: null, readyAt: null, expiresAt: null, frozenAt: null,
        });
        if (reset) cache.observe(reset);
        return;
      }
      case 'forget': {
        const g = await store.transitionContainer(action.entry.id, ['draining'], 'gone');
        if (g) cache.observe(g);
        return;
      }
      case 'unclaimed': {
        ctx.log.warn({ container: action.entryId }, 'no CMDB entry claims this running container any more; draining it');
        this.lifecycle.drainLogged(action.entryId, 'unclaimed');
        return;
      }
      case 'confirm': {
        const local = ctx.locals.get(action.entry.id);
        if (local === undefined || local.phase !== 'ready' || local.address === null) return;
        const ready = await store.transitionContainer(action.entry.id, ['starting'], 'ready', {
          address: local.address, runtimeId: local.runtimeId, readyAt: local.readyAt, expiresAt: local.expiresAt,
        });
        if (ready) cache.observe(ready);
        return;
      }
      case 'lost': {
        const local = ctx.locals.get(action.entryId);
        if (local !== undefined && (local.phase === 'ready' || local.phase === 'draining')) {
          ctx.log.warn({ container: local.id, app: local.app }, 'container is no longer running');
          await this.lifecycle.retireDead(local, 'the container stopped running');
        }
        return;
      }
    }
  }

  /**
   * Entries on hosts silent for six host timeouts go: those dispatchers are gone for good, and
   * their entries would hold places under maxContainers forever. Any dispatcher may do this; the
   * transitions are compare-and-set, so doing it twice is harmless.
   */
  private async sweepDeadHosts(): Promise<void> {
    const { ctx } = this;
    const { cache, store, clock } = ctx.deps;
    for (const hostId of deadHosts(cache.allHosts(), clock.now(), ctx.s.hostTimeout * 6, ctx.s.hostId, cache.health.outages)) {
      for (const c of cache.allContainers().filter((e) => e.host === hostId)) {
        const g = await store.transitionContainer(c.id, ['registered', 'starting', 'ready', 'draining'], 'gone', { lastError: `host ${hostId} went silent` });
        if (g) cache.observe(g);
      }
      await store.removeHost(hostId);
      ctx.log.warn({ host: hostId }, 'removed a host silent for too long, and its container entries');
    }
  }

  /**
   * Every app keeps minContainers live entries: the missing ones are registered (on this host, as
   * any dispatcher may; the fewer-than guard keeps several from overshooting) and started. Runs
   * every second as well as at reconciliation, and costs nothing but cache reads when no app is
   * short.
   */
  ensureMinimum(): Promise<void> {
    return this.minimum.run('host', async () => {
      const { ctx } = this;
      const { cache, store, clock } = ctx.deps;
      // New entries need the CMDB and this host's lease.
      if (ctx.closed || !ctx.lease.held || !cache.cmdbHealthy) return;
      let mine = 0;
      for (const c of cache.eachContainer()) if (c.host === ctx.s.hostId && c.state !== 'gone') mine += 1;
      // Only the apps with a minimum are taken out (the loop below waits on the store), not all.
      const wanting: App[] = [];
      for (const a of cache.eachApp()) if (a.minContainers > 0) wanting.push(a);
      for (const app of wanting) {
        let live = [...cache.containersOf(app.name)].filter((c) => liveStates.includes(c.state)).length;
        while (live < app.minContainers && mine < ctx.s.hostCapacity) {
          const fresh = newContainerEntry(app, ctx.s.hostId, clock.now(), newContainerId(app.name));
          const { entry, created } = await store.registerContainer(fresh, { ifFewerThan: live + 1 });
          if (!created) break;
          cache.observe(entry);
          live += 1;
          mine += 1;
        }
      }
      for (const c of cache.eachContainer()) if (c.host === ctx.s.hostId && c.state === 'registered') this.lifecycle.warmStart(c);
    });
  }
}
