// The life of the containers on this host: start (once, however many requests ask), ready,
// drain, stop and remove; lifespans; reactions to CMDB changes (drains asked for elsewhere, app
// deletions, new entries to start ahead of their first request) and to containers that die.

import { withScalingDefaults } from '../cmdb/app-defaults.js';
import { placeContainer } from '../cmdb/placement.js';
import { liveStates, type App, type Change, type ContainerEntry, type ContainerPatch, type ContainerState } from '../cmdb/types.js';
import { FcError, toFcError } from '../shared/errors.js';
import { SingleFlight } from '../shared/single-flight.js';
import { labelKeys, type ContainerSpec, type RuntimeEvent } from './container-runtime.js';
import { appOf, gone, type DispatcherContext } from './context.js';
import { recordEvent } from './events.js';
import { drainDecision, dueForFreeze, expiryOf, freezeBackoffAfterThaw, metabolism, replacementLead, type FreezableContainer, type MortalContainer } from './lifespan.js';
import { LocalContainer } from './local-container.js';
import { waitReady } from './wait-ready.js';

/**
 * Whether an entry carries a quota set by hand that this container has not taken yet. Only
 * `cpusSetAt` says so: the entry's `cpus` also changes with the autoscaler's own steps, whose
 * writes may reach this dispatcher after others (a frozen-state write carrying an older quota).
 */
function isNewManualQuota(entry: ContainerEntry, local: LocalContainer): boolean {
  return entry.cpus !== null && entry.cpusSetAt != null && entry.cpusSetAt > local.manualQuotaSeen;
}

/** How long a quota set by hand holds before the autoscaler may bring it down. */
const MANUAL_QUOTA_HOLD_MS = 60_000;
/** After a replacement could not be registered (no room, the CMDB away), the next try. */
/** How long a thaw may take before the container is given up. */
const THAW_TIMEOUT_MS = 5_000;
const REPLACE_RETRY_MS = 1_000;

export class ContainerLifecycle {
  private readonly starts = new SingleFlight<string, LocalContainer>();
  private readonly drains = new SingleFlight<string, void>();
  private replacing: Promise<void> | null = null;

  constructor(private readonly ctx: DispatcherContext) {}

  /** Waits for replacements being registered (at close). */
  async settle(): Promise<void> {
    await this.replacing;
  }

  /** Whether a start of this entry is under way. */
  starting(entryId: string): boolean {
    return this.starts.has(entryId);
  }

  ensureStarted(entryId: string): Promise<LocalContainer> {
    const local = this.ctx.locals.get(entryId);
    if (local?.phase === 'ready') return Promise.resolve(local);
    return this.starts.run(entryId, () => this.startContainer(entryId));
  }

  private containerSpec(app: App, entryId: string): ContainerSpec {
    return {
      name: `fc-${entryId}`,
      image: app.image,
      command: app.command,
      env: app.env,
      port: app.port,
      volumes: app.volumes,
      cpus: app.cpus,
      memory: app.memory,
      pidsLimit: this.ctx.s.pidsLimit,
      labels: {
        [labelKeys.managed]: 'true',
        [labelKeys.app]: app.name,
        [labelKeys.container]: entryId,
        [labelKeys.host]: this.ctx.s.hostId,
      },
    };
  }

  private async startContainer(entryId: string): Promise<LocalContainer> {
    const { ctx } = this;
    const { store, cache, runtime, clock } = ctx.deps;
    const t0 = clock.now();
    const entry = cache.container(entryId) ?? (await store.getContainer(entryId));
    if (entry === null || entry === undefined) throw gone(entryId, 'no longer exists');
    const app = await appOf(ctx, entry.app);
    if (app === null) {
      await store.transitionContainer(entryId, liveStates, 'gone');
      throw gone(entryId, `belongs to app ${entry.app}, which no longer exists`);
    }
    // A quota set on the entry by hand (`app scale --cpus`) before it started holds, within the
    // app's range; otherwise it starts at the app's cpus.
    const spec = withScalingDefaults(app);
    const cpus = entry.cpus !== null && entry.cpus >= spec.cpus && entry.cpus <= spec.maxCpus ? entry.cpus : spec.cpus;
    const local = new LocalContainer(entryId, app.name, cpus);
    ctx.locals.set(entryId, local);
    const what = `container ${entryId} of app ${app.name} (image ${app.image})`;
    try {
      // A starting or ready entry that this process is not running is a leftover of an earlier
      // dispatcher on this host: this process owns the host's entries, so it takes them over.
      const starting = await store.transitionContainer(entryId, liveStates, 'starting', {
        startedAt: t0, image: app.image, cpus, address: null, runtimeId: null, readyAt: null, expiresAt: null, frozenAt: null,
        lastError: null, lastErrorCode: null, retryAt: null,
      });
      if (starting === null) throw gone(entryId, 'was drained or removed before it could start');
      cache.observe(starting);
      const runtimeId = await runtime.create({ ...this.containerSpec(app, entryId), cpus });
      local.runtimeId = runtimeId;
      const info = await runtime.start(runtimeId);
      local.pid = info.pid;
      if (info.ip === null) throw new FcError('FC_ERR_START_FAILED', `${what} has no address on its network`, { image: app.image }, { retryAfter: 5 });
      await waitReady({
        ip: info.ip, port: app.port, readinessPath: app.readinessPath, hostHeader: app.hostnames[0] ?? 'localhost',
        deadline: t0 + ctx.s.startTimeout, intervalMs: ctx.s.readyPollInterval, clock, what,
        check: async () => {
          const now = await runtime.inspect(runtimeId);
          if (now === null || !now.running) {
            const logs = await runtime.logs(runtimeId, 20);
            throw new FcError('FC_ERR_START_FAILED', `${what} exited${now?.exitCode == null ? '' : ` with code ${now.exitCode}`} before listening on port ${app.port}${logs === '' ? '' : `; its last output: ${logs}`}`, { image: app.image, exitCode: now?.exitCode ?? null }, { retryAfter: 5 });
          }
        },
      });
      const address = `${info.ip}:${app.port}`;
      const readyAt = clock.now();
      const expiresAt = expiryOf(readyAt, app.lifespan);
      const ready = await store.transitionContainer(entryId, ['starting'], 'ready', { address, runtimeId, readyAt, expiresAt });
      if (ready === null) throw gone(entryId, 'was drained or removed while it started');
      cache.observe(ready);
      local.markReady(address, expiresAt, ctx.s.containerConnections, readyAt);
      // A quota set by hand while it started (react() leaves containers not yet ready alone).
      if (isNewManualQuota(ready, local)) this.quotaByHand(local, ready);
      ctx.startTimes.record(app.name, readyAt - t0);
      ctx.metrics.coldStarts.inc({ app: app.name, result: 'ok' });
      ctx.metrics.coldStartSeconds.observe({ app: app.name }, (readyAt - t0) / 1000);
      recordEvent(ctx, { app: app.name, kind: 'ready', container: entryId, reason: `started in ${readyAt - t0} ms at ${address}, ${cpus} cores, lifespan ${app.lifespan} s` });
      return local;
    } catch (err) {
      const fc = toFcError(err);
      if (fc.code === 'FC_ERR_CONTAINER_GONE') {
        // Drained or deleted while starting: nothing to record but its end.
        await this.retire(local, { from: ['starting', 'draining'], to: 'gone' });
        throw fc;
      }
      // The entry stays, with the reason, for ps and for the requests within the back-off.
      await this.retire(local, {
        from: ['starting'], to: 'registered',
        patch: { lastError: fc.message, lastErrorCode: fc.code, retryAt: clock.now() + ctx.s.startBackoff, runtimeId: null, address: null },
      });
      ctx.metrics.coldStarts.inc({ app: app.name, result: fc.code });
      recordEvent(ctx, { app: app.name, kind: 'start-failed', container: entryId, reason: `${fc.code}: ${fc.message}` });
      throw fc;
    }
  }

  /**
   * The one way a container leaves this dispatcher: no new requests, its connections closed, the
   * container stopped (if asked) and removed, the CMDB told, and only then forgotten here, so that
   * reconciliation never sees it half-gone. An entry found draining instead (drained meanwhile)
   * is marked gone: it has no container any more.
   */
  async retire(
    local: LocalContainer,
    move: { from: readonly ContainerState[]; to: ContainerState; patch?: ContainerPatch; stop?: boolean },
  ): Promise<void> {
    const { ctx } = this;
    const { store, cache, runtime } = ctx.deps;
    local.phase = 'stopping';
    const runtimeId = local.runtimeId;
    // A frozen container cannot take its SIGTERM: thawed first, so it stops as any other.
    if (move.stop === true && runtimeId !== null && (local.frozen || local.freezing !== null)) {
      if (local.freezing !== null) await local.freezing;
      await ctx.deps.runtime.thaw(runtimeId).catch(() => undefined);
      local.frozen = false;
    }
    if (runtimeId !== null && move.stop === true) {
      await runtime.stop(runtimeId, ctx.s.stopTimeout).catch((err: unknown) => ctx.log.warn({ err, container: local.id }, 'stop failed'));
    }
    await local.closePool('close');
    if (runtimeId !== null) {
      await runtime.remove(runtimeId).catch((err: unknown) => ctx.log.error({ err, container: local.id }, 'could not remove container'));
      ctx.cgroup.forget(runtimeId);
    }
    try {
      const next =
        (await store.transitionContainer(local.id, move.from, move.to, move.patch)) ??
        (await store.transitionContainer(local.id, ['draining'], 'gone'));
      if (next !== null) cache.observe(next);
    } catch (err) {
      ctx.log.error({ err, container: local.id }, 'could not record the container\'s end in the CMDB; reconciliation will');
    }
    if (ctx.locals.get(local.id) === local) ctx.locals.delete(local.id);
  }

  /** Drains a container: no new requests, in-flight ones finish (within the timeout), then stop and remove. */
  drain(entryId: string, reason: string): Promise<void> {
    return this.drains.run(entryId, async () => {
      const { ctx } = this;
      const { store, cache, clock } = ctx.deps;
      const local = ctx.locals.get(entryId);
      if (local === undefined) {
        // Not running here: a draining entry without a container is simply gone.
        const g = await store.transitionContainer(entryId, ['draining'], 'gone');
        if (g) cache.observe(g);
        return;
      }
      // Still starting: the start sees the entry draining at its end and retires it itself.
      if (local.phase !== 'ready' && local.phase !== 'draining') return;
      if (local.phase === 'ready') {
        local.phase = 'draining';
        local.drainingSince = clock.now();
      }
      const since = local.drainingSince ?? clock.now();
      const marked = await store.transitionContainer(entryId, ['ready'], 'draining').catch(() => null);
      if (marked) cache.observe(marked);
      recordEvent(ctx, { app: local.app, kind: 'drain', container: entryId, reason: `${reason}; ${local.inflight} requests in flight` });
      const policy = { graceMs: ctx.s.drainGrace, timeoutMs: ctx.s.drainTimeout };
      while (drainDecision({ inflight: local.inflight, drainingSince: since }, clock.now(), policy) === 'wait') {
        const now = clock.now();
        if (local.inflight > 0) await Promise.race([local.whenIdle(), clock.sleep(Math.max(1, since + policy.timeoutMs - now))]);
        else await clock.sleep(Math.max(1, since + policy.graceMs - now));
      }
      await this.retire(local, { from: ['draining', 'ready'], to: 'gone', stop: true });
      ctx.metrics.drains.inc({ app: local.app, reason });
      ctx.log.info({ container: entryId, app: local.app, reason, ms: clock.now() - since }, 'container removed');
    });
  }

  drainLogged(entryId: string, reason: string): void {
    void this.drain(entryId, reason).catch((err: unknown) => this.ctx.log.error({ err, container: entryId }, 'drain failed'));
  }

  /**
   * Lifespans and metabolism, every tick: replacements registered ahead of the end of containers
   * still wanted, and containers whose lifespan is over drained once their replacement is ready.
   */
  checkLifespans(): void {
    const { ctx } = this;
    if (ctx.closed) return;
    const { cache, clock } = ctx.deps;
    const now = clock.now();
    const mortal: MortalContainer[] = [];
    for (const l of ctx.locals.values()) {
      if (l.phase !== 'ready' || l.expiresAt === null) continue;
      const stored = cache.app(l.app);
      const app = stored === undefined ? undefined : withScalingDefaults(stored);
      let successor: MortalContainer['successor'] = null;
      if (l.successor !== null && cache.container(l.successor) === undefined) {
        // Its replacement went (died, removed): another may be registered.
        l.successor = null;
      }
      if (l.successor !== null) {
        const state = cache.container(l.successor)?.state;
        successor = state === 'ready' ? 'ready' : state === 'registered' || state === 'starting' ? 'pending' : 'gone';
      } else if (now < l.replaceRetryAt) {
        // The last try to register one failed: not again before the retry time.
        successor = 'gone';
      }
      let wanted = false;
      if (app !== undefined) {
        const lastRequestAt = l.requests.lastRequestAt;
        const busy = l.inflight > 0 || (lastRequestAt !== null && now - lastRequestAt < app.idleTimeout * 1000);
        wanted = busy || this.lastingOthers(app, l.id, now) < app.minContainers;
      }
      mortal.push({ id: l.id, app: l.app, phase: l.phase, expiresAt: l.expiresAt, successor, wanted });
    }
    const plan = metabolism(mortal, now, { leadMs: (app) => this.leadMs(app), maxOverstayMs: ctx.s.startTimeout });
    this.freezeIdle(now);
    if (plan.replace.length > 0 && this.replacing === null) {
      this.replacing = this.replaceAll(plan.replace)
        .catch((err: unknown) => ctx.log.error({ err }, 'registering replacements failed'))
        .finally(() => {
          this.replacing = null;
        });
    }
    for (const id of plan.drain) this.drainLogged(id, 'lifespan');
  }

  /** Freezes the ready containers idle for their app's freezeAfter (0: never). */
  private freezeIdle(now: number): void {
    const { ctx } = this;
    const idle: FreezableContainer[] = [];
    for (const l of ctx.locals.values()) {
      const app = ctx.deps.cache.app(l.app);
      if (app === undefined || l.phase !== 'ready') continue;
      const lastActiveAt = Math.max(l.requests.lastRequestAt ?? 0, l.readyAt, l.thawedAt);
      idle.push({
        id: l.id, phase: l.phase, frozen: l.frozen || l.freezing !== null, inflight: l.inflight, held: ctx.held.get(l.id)?.size ?? 0,
        lastActiveAt, freezeAfterMs: withScalingDefaults(app).freezeAfter * 1000 * l.freezeBackoff,
      });
    }
    for (const id of dueForFreeze(idle, now)) {
      const local = ctx.locals.get(id);
      if (local !== undefined) this.freeze(local, now - Math.max(local.requests.lastRequestAt ?? 0, local.readyAt, local.thawedAt));
    }
  }

  /**
   * Freezes a container: its processes stop being scheduled (no CPU), its memory and sockets stay,
   * and the next request thaws it (thaw(), from the request path), in milliseconds instead of a
   * cold start. It still ends at its lifespan or idle timeout like any other.
   */
  private freeze(local: LocalContainer, idleMs: number): void {
    const { ctx } = this;
    const runtimeId = local.runtimeId;
    if (runtimeId === null || local.frozen || local.freezing !== null) return;
    local.freezing = (async () => {
      await ctx.deps.runtime.freeze(runtimeId);
      local.frozen = true;
      local.frozenSince = ctx.deps.clock.now();
    })()
      .catch(async (err: unknown) => {
        // A pause that timed out may still have happened: thawed, to be sure of the state.
        ctx.log.warn({ err, container: local.id }, 'could not freeze the container');
        await ctx.deps.runtime.thaw(runtimeId).catch(() => undefined);
      })
      .finally(() => {
        local.freezing = null;
      });
    void local.freezing.then(() => {
      if (!local.frozen) return;
      recordEvent(ctx, { app: local.app, kind: 'freeze', container: local.id, reason: `no request for ${Math.round(idleMs / 1000)} s` });
      this.syncFrozen(local);
    });
  }

  /**
   * Lets a frozen container run again, once however many requests ask; a freeze under way is let
   * finish first. The CMDB hears of it after the request goes on, not before.
   */
  async thaw(local: LocalContainer): Promise<void> {
    const { ctx } = this;
    if (local.freezing !== null) await local.freezing;
    const runtimeId = local.runtimeId;
    if (!local.frozen || runtimeId === null) return;
    local.thawing ??= (async () => {
      const begin = performance.now();
      let timer: { cancel(): void } | undefined;
      try {
        await Promise.race([
          ctx.deps.runtime.thaw(runtimeId),
          new Promise<never>((_, reject) => {
            timer = ctx.deps.clock.setTimeout(() => reject(new FcError('FC_ERR_ENGINE', `the engine did not thaw container ${local.id} within ${THAW_TIMEOUT_MS} ms`)), THAW_TIMEOUT_MS);
          }),
        ]);
      } catch (err) {
        // A container that cannot be thawed serves nobody: it goes, and the request goes elsewhere
        // (or to a fresh container) like one for a container drained meanwhile.
        ctx.log.warn({ err, container: local.id, app: local.app }, 'could not thaw the container; retiring it');
        // Out of the live entries first, so the retry does not come back to it.
        const marked = await ctx.deps.store.transitionContainer(local.id, ['ready'], 'draining').catch(() => null);
        if (marked !== null) ctx.deps.cache.observe(marked);
        void this.retireDead(local, `it could not be thawed: ${(err as Error).message}`);
        throw gone(local.id, 'could not be thawed');
      } finally {
        timer?.cancel();
      }
      local.frozen = false;
      local.thawedAt = ctx.deps.clock.now();
      const app = ctx.deps.cache.app(local.app);
      if (app !== undefined) local.freezeBackoff = freezeBackoffAfterThaw(local.freezeBackoff, local.thawedAt - local.frozenSince, withScalingDefaults(app).freezeAfter * 1000);
      const ms = performance.now() - begin;
      ctx.metrics.thawSeconds.observe({ app: local.app }, ms / 1000);
      recordEvent(ctx, { app: local.app, kind: 'thaw', container: local.id, reason: `a request came; thawed in ${Math.round(ms)} ms` });
      this.syncFrozen(local);
    })().finally(() => {
      local.thawing = null;
    });
    await local.thawing;
  }

  /**
   * Tells the CMDB whether the container is frozen, as it is when the write goes out: writes run
   * one after the other per container, so a freeze's write cannot land after a thaw's and undo
   * it. Only a ready entry is changed (a drain meanwhile is never undone).
   */
  private syncFrozen(local: LocalContainer): void {
    const { store, cache } = this.ctx.deps;
    local.frozenSync = local.frozenSync.then(async () => {
      const frozenAt = local.frozen ? local.frozenSince : null;
      if ((cache.container(local.id)?.frozenAt ?? null) === frozenAt) return;
      const next = await store.transitionContainer(local.id, ['ready'], 'ready', { frozenAt }).catch(() => null);
      if (next !== null) cache.observe(next);
    }).catch((err: unknown) => this.ctx.log.warn({ err, container: local.id }, 'could not record the container\'s frozen state'));
  }

  /**
   * How long before its end a container of this app gets its replacement: from the measured
   * starts, but at most half the lifespan (a replacement still starting at the end is waited for).
   */
  private leadMs(appName: string): number {
    const app = this.ctx.deps.cache.app(appName);
    const lead = replacementLead(this.ctx.startTimes.recent(appName));
    return app === undefined ? lead : Math.min(lead, (app.lifespan * 1000) / 2);
  }

  /**
   * The app's containers, other than this one, that will still be there after this one's end:
   * ready ones not ending within the lead time, and those coming up. A replacement coming up
   * counts for the container it replaces, so two containers ending together both get one.
   */
  private lastingOthers(app: App, selfId: string, now: number): number {
    const lead = this.leadMs(app.name);
    let n = 0;
    for (const e of this.ctx.deps.cache.containersOf(app.name)) {
      if (e.id === selfId || !liveStates.includes(e.state)) continue;
      if (e.state !== 'ready' || e.expiresAt === null || e.expiresAt - now > lead) n += 1;
    }
    return n;
  }

  /**
   * Registers the replacements of containers whose lifespan is ending (make before break), one
   * after the other so that each sees the entries the one before added.
   */
  private async replaceAll(ids: readonly string[]): Promise<void> {
    for (const id of ids) await this.replace(id);
  }

  private async replace(entryId: string): Promise<void> {
    const { ctx } = this;
    const local = ctx.locals.get(entryId);
    const app = local === undefined ? undefined : ctx.deps.cache.app(local.app);
    if (local === undefined || app === undefined || local.successor !== null) return;
    const { cache, clock } = ctx.deps;
    const live = [...cache.containersOf(app.name)].filter((e) => liveStates.includes(e.state));
    // Each ready container may have one replacement beside it, beyond maxContainers if need be, while
    // it still serves. The fewer-than guard makes a dispatcher that decided on an older view add
    // nothing: it tries again at the next tick, with the view the other's entry is in.
    const surge = live.filter((e) => e.state === 'ready').length;
    try {
      const { entry, created } = await placeContainer(ctx.deps.store, app, cache.allHosts(), cache.allContainers(), clock.now(), ctx.s.hostTimeout, { ifFewerThan: live.length + 1, surge });
      this.observeNew(entry);
      if (!created) return;
      local.successor = entry.id;
      const left = Math.max(0, (local.expiresAt ?? 0) - clock.now());
      recordEvent(ctx, { app: app.name, kind: 'replace', container: entryId, reason: `lifespan ends in ${left} ms; replacement ${entry.id} on host ${entry.host}`, from: live.length, to: live.length + 1 });
    } catch (err) {
      local.replaceRetryAt = clock.now() + REPLACE_RETRY_MS;
      const fc = toFcError(err);
      ctx.log.warn({ container: entryId, app: app.name, code: fc.code, err: fc.message }, 'could not register a replacement; trying again shortly (the container is drained at its end if none comes)');
    }
  }

  /**
   * An entry this dispatcher registered itself: into the cache, and started at once if it is for
   * this host (the CMDB's change for it is not news to this cache, so react() would not see it).
   */
  observeNew(entry: ContainerEntry): void {
    this.ctx.deps.cache.observe(entry);
    if (entry.host === this.ctx.s.hostId && entry.state === 'registered') this.warmStart(entry);
  }

  /**
   * A quota set elsewhere (`fastcontainer app scale --cpus`): applied live, and held against the
   * autoscaler's scale-down for MANUAL_QUOTA_HOLD_MS.
   */
  private quotaByHand(local: LocalContainer, entry: ContainerEntry): void {
    const cpus = entry.cpus as number;
    local.manualQuotaSeen = entry.cpusSetAt ?? 0;
    local.quotaHeldUntil = this.ctx.deps.clock.now() + MANUAL_QUOTA_HOLD_MS;
    void this.setQuota(local, cpus).catch((err: unknown) => this.ctx.log.warn({ err, container: local.id, cpus }, 'could not change the CPU quota'));
  }

  /**
   * Changes a running container's CPU quota live (no restart) and records it in its entry. The
   * quota is written to the container's cgroup first, where it takes effect at once, then given to
   * the engine so its record agrees (and, where the cgroup files cannot be written, through the
   * engine alone). The CPU window starts over: throttling measured under the old quota says
   * nothing of the new one. Resolves with the performance.now() at which the quota took effect.
   */
  setQuota(local: LocalContainer, cpus: number): Promise<number> {
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

  /** Reacts to CMDB changes made elsewhere: drains asked for through the API, app deletions, warm starts. */
  react(change: Change): void {
    const { ctx } = this;
    if (ctx.closed || change.kind !== 'container' || change.value.host !== ctx.s.hostId) return;
    const id = change.value.id;
    const local = ctx.locals.get(id);
    if (local !== undefined && (change.op === 'delete' || change.value.state === 'draining') && local.phase === 'ready') {
      this.drainLogged(id, change.op === 'delete' ? 'removed' : 'requested');
    } else if (local?.phase === 'ready' && change.op === 'put' && change.value.state === 'ready' && isNewManualQuota(change.value, local)) {
      this.quotaByHand(local, change.value);
    } else if (change.op === 'put' && change.value.state === 'registered') {
      this.warmStart(change.value);
    }
  }

  /**
   * Registered entries of this host are started as soon as the dispatcher hears of them, not only
   * on their first request: the proxy sends nothing to an entry that is not ready while the app has
   * a ready one, so an entry added to scale out, or to keep minContainers, would otherwise never
   * start. Not within the back-off after a failed start.
   */
  warmStart(entry: ContainerEntry): void {
    const { ctx } = this;
    if (ctx.closed || ctx.locals.has(entry.id) || this.starts.has(entry.id) || ctx.deps.cache.app(entry.app) === undefined) return;
    if (entry.retryAt !== null && entry.retryAt > ctx.deps.clock.now()) return;
    void this.ensureStarted(entry.id).catch(() => undefined);
  }

  /**
   * A container that dies on its own takes its entry with it. The next request registers a fresh
   * one (and the dispatchers keeping minContainers do so at their next reconciliation), so a
   * container that keeps crashing is restarted on demand, not in a loop.
   */
  onRuntimeEvent(e: RuntimeEvent): void {
    const entryId = e.labels[labelKeys.container];
    const local = entryId === undefined ? undefined : this.ctx.locals.get(entryId);
    if (local === undefined || local.runtimeId !== e.id || local.phase !== 'ready') return;
    recordEvent(this.ctx, { app: local.app, kind: 'died', container: entryId ?? null, reason: `${e.type}${e.exitCode === null ? '' : ` with exit code ${e.exitCode}`}` });
    void this.retireDead(local, `the container exited${e.exitCode === null ? '' : ` with code ${e.exitCode}`}`);
  }

  async retireDead(local: LocalContainer, why: string): Promise<void> {
    await this.retire(local, { from: ['ready', 'draining'], to: 'gone', patch: { lastError: why, lastErrorCode: 'FC_ERR_START_FAILED' } });
    this.ctx.metrics.drains.inc({ app: local.app, reason: 'died' });
  }

  /** Tracks a running container found at reconciliation as this host's, ready to serve. */
  adopt(entry: ContainerEntry, app: App, runtimeId: string, ip: string, frozen = false): LocalContainer {
    const { ctx } = this;
    const local = new LocalContainer(entry.id, app.name, entry.cpus ?? app.cpus);
    local.runtimeId = runtimeId;
    const now = ctx.deps.clock.now();
    // What this process knows of it starts now: it is not idle since it became ready, and a quota
    // scaled up before the restart is not brought down before the usual delay.
    local.markReady(`${ip}:${app.port}`, entry.expiresAt ?? expiryOf(now, app.lifespan), ctx.s.containerConnections, now);
    if (local.cpus > app.cpus) local.lastScaleUpAt = now;
    local.manualQuotaSeen = entry.cpusSetAt ?? 0;
    if (frozen) {
      local.frozen = true;
      local.frozenSince = entry.frozenAt ?? now;
    }
    ctx.locals.set(entry.id, local);
    ctx.log.info({ container: entry.id, app: app.name, address: local.address }, 'adopted running container');
    if ((entry.frozenAt ?? null) !== (frozen ? local.frozenSince : null)) this.syncFrozen(local);
    if (entry.state === 'draining') void this.drain(entry.id, 'requested').catch(() => undefined);
    return local;
  }

  /**
   * Stops and removes every container this dispatcher runs, after their in-flight requests (the
   * servers are closed first). For the embedded CMDB, whose entries die with the process: nothing
   * could adopt the containers later.
   */
  async removeAll(): Promise<void> {
    const { ctx } = this;
    ctx.closed = true;
    // Starts under way finish (or fail) first, so that none leaves a container behind.
    await Promise.allSettled([...ctx.locals.keys()].map((id) => this.starts.has(id) ? this.ensureStarted(id) : Promise.resolve()));
    await Promise.all(
      [...ctx.locals.values()].map(async (local) => {
        await Promise.race([local.whenIdle(), ctx.deps.clock.sleep(ctx.s.drainTimeout)]);
        await this.retire(local, { from: ['ready', 'draining', 'starting'], to: 'gone', stop: true });
      }),
    );
  }
}
