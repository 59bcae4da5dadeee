// The life of the containers on this host: start (once, however many requests ask), ready,
// drain, stop and remove; lifespans; reactions to CMDB changes (drains asked for elsewhere, app
// deletions, quotas set by hand, new entries to start ahead of their first request) and to
// containers that die. Metabolism (renewal.ts), freezing (freezer.ts) and quotas (quotas.ts) are
// files of their own that this one wires in.

import { withScalingDefaults } from '../cmdb/app-defaults.js';
import { liveStates, type App, type Change, type ContainerEntry, type ContainerPatch, type ContainerState } from '../cmdb/types.js';
import { FcError, toFcError } from '../shared/errors.js';
import { SingleFlight } from '../shared/single-flight.js';
import { labelKeys, type ContainerSpec, type RuntimeEvent } from './container-runtime.js';
import { appOf, gone, type DispatcherContext } from './context.js';
import { recordEvent } from './events.js';
import { Freezer } from './freezer.js';
import { drainDecision, expiryOf } from './lifespan.js';
import { LocalContainer } from './local-container.js';
import { isNewManualQuota, Quotas } from './quotas.js';
import { Renewal } from './renewal.js';
import { specHash } from './rollout.js';
import { resolveVolumes } from './volumes.js';
import { waitReady } from './wait-ready.js';

export class ContainerLifecycle {
  private readonly starts = new SingleFlight<string, LocalContainer>();
  private readonly drains = new SingleFlight<string, void>();
  readonly freezer: Freezer;
  readonly quotas: Quotas;
  private readonly renewal: Renewal;

  constructor(private readonly ctx: DispatcherContext) {
    this.freezer = new Freezer(ctx, (local, why) => this.retireDead(local, why));
    this.quotas = new Quotas(ctx);
    this.renewal = new Renewal(ctx, { drain: (id, reason) => this.drainLogged(id, reason), observeNew: (entry) => this.observeNew(entry) });
  }

  /** Waits for replacements being registered (at close). */
  settle(): Promise<void> {
    return this.renewal.settle();
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

  /** `volumes`: the app's, as resolveVolumes checked them on this host. */
  private containerSpec(app: App, entryId: string, volumes: string[]): ContainerSpec {
    return {
      name: `fc-${entryId}`,
      image: app.image,
      command: app.command,
      // Secrets are env the CoreAPI never shows; the CoreAPI refuses a key in both.
      env: { ...app.env, ...app.secrets },
      port: app.port,
      volumes,
      user: app.user ?? null,
      readOnlyRootfs: app.readOnlyRootfs === true,
      cpus: app.cpus,
      memory: app.memory,
      pidsLimit: this.ctx.s.pidsLimit,
      egress: app.egress ?? 'open',
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
        startedAt: t0, image: app.image, specHash: specHash(app), cpus, address: null, runtimeId: null, readyAt: null, expiresAt: null, frozenAt: null,
        lastError: null, lastErrorCode: null, retryAt: null,
      });
      if (starting === null) throw gone(entryId, 'was drained or removed before it could start');
      cache.observe(starting);
      const volumes = await resolveVolumes(app.name, app.volumes, ctx.s.volumeRoots ?? []);
      const runtimeId = await runtime.create({ ...this.containerSpec(app, entryId, volumes), cpus });
      local.runtimeId = runtimeId;
      // From t0, the entry's startedAt: what an adopting dispatcher counts from too.
      ctx.usage.started(local, app, t0);
      const info = await runtime.start(runtimeId);
      local.pid = info.pid;
      ctx.logs.follow(local, null);
      // A container that exits at once (a bad command, a crash at start) has no address either:
      // the operator needs its exit code and last output, not the missing address.
      const exited = async (): Promise<FcError | null> => {
        const now = await runtime.inspect(runtimeId);
        if (now !== null && now.running) return null;
        const logs = await runtime.logs(runtimeId, 20).catch(() => '');
        return new FcError('FC_ERR_START_FAILED', `${what} exited${now?.exitCode == null ? '' : ` with code ${now.exitCode}`} before listening on port ${app.port}${logs === '' ? '' : `; its last output: ${logs}`}`, { image: app.image, exitCode: now?.exitCode ?? null }, { retryAfter: 5 });
      };
      if (info.ip === null) {
        throw (await exited()) ?? new FcError('FC_ERR_START_FAILED', `${what} has no address on its network`, { image: app.image }, { retryAfter: 5 });
      }
      await waitReady({
        ip: info.ip, port: app.port, readinessPath: app.readinessPath, hostHeader: app.hostnames[0] ?? 'localhost',
        deadline: t0 + ctx.s.startTimeout, intervalMs: ctx.s.readyPollInterval, clock, what,
        check: async () => {
          const err = await exited();
          if (err !== null) throw err;
        },
      });
      const address = `${info.ip}:${app.port}`;
      const readyAt = clock.now();
      const expiresAt = expiryOf(readyAt, app.lifespan);
      const ready = await this.recordReady(entryId, { address, runtimeId, readyAt, expiresAt });
      if (ready === null) throw gone(entryId, 'was drained or removed while it started');
      if (ready !== undefined) cache.observe(ready);
      local.markReady(address, expiresAt, ctx.s.containerConnections, readyAt);
      // A quota set by hand while it started (react() leaves containers not yet ready alone).
      if (ready !== undefined && isNewManualQuota(ready, local)) this.quotas.byHand(local, ready);
      ctx.startTimes.record(app.name, readyAt - t0);
      ctx.metrics.coldStarts.inc({ app: app.name, result: 'ok' });
      ctx.usage.ready(local);
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
   * Writes a started container's entry ready. The entry when written, null when it was drained or
   * removed meanwhile, undefined when the CMDB did not answer: the container runs and answers, and
   * removing it for that would turn a CMDB outage into a site outage, so it serves, and
   * reconciliation writes it ready once the CMDB is back (its 'confirm' action).
   */
  private async recordReady(entryId: string, patch: ContainerPatch): Promise<ContainerEntry | null | undefined> {
    try {
      return await this.ctx.deps.store.transitionContainer(entryId, ['starting'], 'ready', patch);
    } catch (err) {
      const fc = toFcError(err);
      if (fc.code !== 'FC_ERR_STORE_UNAVAILABLE') throw err;
      this.ctx.log.warn({ container: entryId, err: fc.message }, 'started, but the CMDB did not hear it is ready; serving it anyway, reconciliation records it later');
      return undefined;
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
    // Its last usage, read while its cgroup still exists (it goes with its processes).
    await ctx.usage.final(local).catch((err: unknown) => ctx.log.warn({ err, container: local.id }, 'could not read the last usage'));
    // A frozen container cannot take its SIGTERM: thawed first, so it stops as any other.
    if (move.stop === true) await this.freezer.thawToStop(local);
    if (runtimeId !== null && move.stop === true) {
      await runtime.stop(runtimeId, ctx.s.stopTimeout).catch((err: unknown) => ctx.log.warn({ err, container: local.id }, 'stop failed'));
    }
    await local.closePool('close');
    // Its last lines, which its follow delivers as it ends, before it is removed.
    await ctx.logs.stop(local, move.stop === true);
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
      // WebSockets still open at the drain timeout are told the server goes away (1001).
      await local.tunnels.goingAway();
      await this.retire(local, { from: ['draining', 'ready'], to: 'gone', stop: true });
      ctx.metrics.drains.inc({ app: local.app, reason });
      ctx.log.info({ container: entryId, app: local.app, reason, ms: clock.now() - since }, 'container removed');
    });
  }

  drainLogged(entryId: string, reason: string): void {
    void this.drain(entryId, reason).catch((err: unknown) => this.ctx.log.error({ err, container: entryId }, 'drain failed'));
  }

  /** Lifespans, metabolism and freezing, every tick. */
  checkLifespans(): void {
    if (this.ctx.closed) return;
    const now = this.ctx.deps.clock.now();
    // With the CMDB away no replacement can be registered, so a container at the end of its
    // lifespan would be drained with nothing after it: lifespans wait for the CMDB's return.
    if (this.ctx.deps.cache.cmdbHealthy) this.renewal.tick(now);
    this.freezer.freezeIdle(now);
  }

  /**
   * An entry this dispatcher registered itself: into the cache, and started at once if it is for
   * this host (the CMDB's change for it is not news to this cache, so react() would not see it).
   */
  observeNew(entry: ContainerEntry): void {
    this.ctx.deps.cache.observe(entry);
    if (entry.host === this.ctx.s.hostId && entry.state === 'registered') this.warmStart(entry);
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
      this.quotas.byHand(local, change.value);
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
    // A drained host starts nothing ahead of a request: host-loops drops such entries instead.
    if ((ctx.deps.cache.host(ctx.s.hostId)?.drainedAt ?? null) !== null) return;
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
    // Its output from when the earlier process last wrote its usage (at its stop, for a clean one),
    // so what it printed between the two processes is kept too.
    const heardAt = ctx.usage.adopted(local, entry, app, now);
    ctx.logs.follow(local, heardAt ?? Date.now());
    ctx.log.info({ container: entry.id, app: app.name, address: local.address }, 'adopted running container');
    if ((entry.frozenAt ?? null) !== (frozen ? local.frozenSince : null)) this.freezer.sync(local);
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
        await local.tunnels.goingAway();
        await this.retire(local, { from: ['ready', 'draining', 'starting'], to: 'gone', stop: true });
      }),
    );
  }
}
