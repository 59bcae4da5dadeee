// The loops of one host: the heartbeat that tells the proxies this dispatcher lives, and the
// reconciliation of the engine with the CMDB (adopt, remove orphans, reset or forget entries),
// which also sweeps hosts gone silent and keeps every app's minContainers.

import { placeContainer } from '../cmdb/placement.js';
import { liveStates, type App, type ContainerEntry } from '../cmdb/types.js';
import { SingleFlight } from '../shared/single-flight.js';
import { labelKeys } from './container-runtime.js';
import { appOf, type DispatcherContext } from './context.js';
import type { ContainerLifecycle } from './lifecycle.js';
import { deadHosts, planReconcile, type ReconcileAction } from './reconcile.js';

export class HostLoops {
  private readonly reconciling = new SingleFlight<string, void>();
  private readonly minimum = new SingleFlight<string, void>();
  /** Set when a pass of ensureMinimum should follow the one under way. */
  private minimumAgain = false;

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
   * Every app keeps minContainers live entries on live hosts: the missing ones are placed as any
   * placement is (spread over the schedulable hosts, any of them, not only this one; entries on
   * hosts not live do not count, so a dead host's are replaced at once) and the fewer-than guard
   * keeps the dispatchers doing this at once from overshooting. Each host's dispatcher starts the
   * entries placed on it when it hears of them. Runs every second, at reconciliation, and at once
   * when an app is created or changed or this host's record changes (onChange), and costs nothing
   * but cache reads when no app is short.
   */
  ensureMinimum(): Promise<void> {
    return this.minimum.run('host', async () => {
      // A change that came while a pass ran may be one the pass went by: one more pass then.
      do {
        this.minimumAgain = false;
        await this.keepMinimum();
      } while (this.minimumAgain && !this.ctx.closed);
    });
  }

  /** An app was created or changed, or a host's record changed: the minimum is kept now, not at the next tick. */
  onChange(): void {
    this.minimumAgain = true;
    void this.ensureMinimum().catch((err: unknown) => this.ctx.log.warn({ err }, 'keeping minContainers failed'));
  }

  private async keepMinimum(): Promise<void> {
    const { ctx } = this;
    const { cache, store, clock } = ctx.deps;
    // New entries need the CMDB and this host's lease.
    if (ctx.closed || !ctx.lease.held || !cache.cmdbHealthy) return;
    // Only the apps with a minimum are taken out (the loop below waits on the store), not all.
    const wanting: App[] = [];
    for (const a of cache.eachApp()) if (a.minContainers > 0) wanting.push(a);
    if (wanting.length > 0) {
      const now = clock.now();
      // This host counts as live even before its first heartbeat since a restart: its containers serve.
      const liveHosts = new Set<string>([ctx.s.hostId]);
      for (const h of cache.allHosts()) if (cache.isHostLive(h, now, ctx.s.hostTimeout)) liveHosts.add(h.id);
      for (const app of wanting) {
        let live = 0;
        const ignoreHosts = new Set<string>();
        for (const c of cache.containersOf(app.name)) {
          if (!liveHosts.has(c.host)) ignoreHosts.add(c.host);
          else if (liveStates.includes(c.state)) live += 1;
        }
        while (live < app.minContainers && !ctx.closed) {
          let placed;
          try {
            placed = await placeContainer(store, app, cache.allHosts(), cache.allContainers(), clock.now(), ctx.s.hostTimeout, { ifFewerThan: live + 1, ignoreHosts: [...ignoreHosts] }, cache.health.outages);
          } catch (err) {
            const code = (err as { code?: string }).code;
            // No room on any host, or the app is full: the next pass tries again.
            if (code === 'FC_ERR_NO_COMPUTE_HOST' || code === 'FC_ERR_MAX_CONTAINERS' || code === 'FC_ERR_APP_NOT_FOUND') break;
            throw err;
          }
          if (!placed.created) break;
          this.lifecycle.observeNew(placed.entry);
          live += 1;
        }
      }
    }
    const drained = (cache.host(ctx.s.hostId)?.drainedAt ?? null) !== null;
    const now = clock.now();
    for (const c of cache.eachContainer()) {
      if (c.host !== ctx.s.hostId || c.state !== 'registered') continue;
      if (drained) await this.dropUnstarted(c, `host ${ctx.s.hostId} is drained`);
      else if (this.overMaximum(c.app, now)) await this.dropUnstarted(c, 'its app already has maxContainers on live hosts');
      else this.lifecycle.warmStart(c);
    }
  }

  /**
   * Whether an app has more live entries on live hosts than its maxContainers. It happens when a
   * host judged dead comes back (its dispatcher restarted, its entries reset to registered) after
   * replacements were placed elsewhere: its entries not started are then not started.
   */
  private overMaximum(appName: string, now: number): boolean {
    const { cache } = this.ctx.deps;
    const app = cache.app(appName);
    if (app === undefined) return false;
    let live = 0;
    for (const e of cache.containersOf(appName)) {
      if (!liveStates.includes(e.state)) continue;
      // This host counts as live even before its first heartbeat since a restart.
      const host = cache.host(e.host);
      if (e.host === this.ctx.s.hostId || (host !== undefined && cache.isHostLive(host, now, this.ctx.s.hostTimeout))) live += 1;
    }
    return live > app.maxContainers;
  }

  /**
   * An entry not started yet that should not be (on a drained host, or beyond the app's maximum)
   * goes; the minimum, or the next request, places another where it fits. One a request is
   * starting is left to start; on a drained host the renewal replaces it once it is ready.
   */
  private async dropUnstarted(entry: ContainerEntry, why: string): Promise<void> {
    const { ctx } = this;
    if (ctx.locals.has(entry.id) || this.lifecycle.starting(entry.id)) return;
    const g = await ctx.deps.store.transitionContainer(entry.id, ['registered'], 'gone', { lastError: why });
    if (g) ctx.deps.cache.observe(g);
  }
}
