// Metabolism without a gap (make before break): a container still wanted when its lifespan nears
// its end gets a replacement registered a lead time before, and is drained only once that
// replacement is ready (or failed, or took too long). The decisions are metabolism() in
// lifespan.ts; this applies them.

import { withScalingDefaults } from '../cmdb/app-defaults.js';
import { placeContainer } from '../cmdb/placement.js';
import { liveStates, type App, type ContainerEntry } from '../cmdb/types.js';
import { toFcError } from '../shared/errors.js';
import type { DispatcherContext } from './context.js';
import { recordEvent } from './events.js';
import { metabolism, replacementLead, type MortalContainer } from './lifespan.js';
import { rolloutCandidate, specHash } from './rollout.js';

/** After a replacement could not be registered (no room, the CMDB away), the next try. */
const REPLACE_RETRY_MS = 1_000;

export class Renewal {
  private replacing: Promise<void> | null = null;
  /** Containers whose end was brought forward by an app update (rollout.ts): why, for the event. */
  private readonly updating = new Map<string, string>();

  constructor(
    private readonly ctx: DispatcherContext,
    private readonly hooks: { drain(entryId: string, reason: string): void; observeNew(entry: ContainerEntry): void },
  ) {}

  /** Waits for replacements being registered (at close). */
  async settle(): Promise<void> {
    await this.replacing;
  }

  /**
   * Every tick: replacements registered ahead of the end of containers still wanted, and
   * containers whose lifespan is over drained once their replacement is ready.
   */
  tick(now: number): void {
    const { ctx } = this;
    const { cache } = ctx.deps;
    const mortal: MortalContainer[] = [];
    // A drained host's containers end now, each replaced elsewhere before it goes (lifespan.ts).
    const drainedAt = cache.host(ctx.s.hostId)?.drainedAt ?? null;
    const rolling = this.rolloutCandidates(now);
    for (const id of this.updating.keys()) if (!ctx.locals.has(id)) this.updating.delete(id);
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
        const others = this.lastingOthers(app, l.id, now);
        // Never replaced while the others already make maxContainers: an app that went over it
        // (a host judged dead came back with its containers) comes back to it as lifespans end.
        wanted = (busy || others < app.minContainers) && others < app.maxContainers;
      }
      // A drained host's containers, and the one an app update replaces now, end early; while
      // wanted they serve until their replacement is ready, or at most until their own end.
      const early = rolling.has(l.id) ? now : drainedAt;
      const ends = early === null ? { expiresAt: l.expiresAt } : { expiresAt: Math.min(l.expiresAt, early), holdUntil: l.expiresAt + ctx.s.startTimeout };
      if (rolling.has(l.id) && !this.updating.has(l.id)) {
        this.updating.set(l.id, 'the app\'s spec changed (app update)');
        ctx.log.info({ container: l.id, app: l.app }, 'app updated: replacing this container (make before break, one at a time)');
      }
      mortal.push({ id: l.id, app: l.app, phase: l.phase, successor, wanted, ...ends });
    }
    const plan = metabolism(mortal, now, { leadMs: (app) => this.leadMs(app), maxOverstayMs: ctx.s.startTimeout });
    if (plan.replace.length > 0 && this.replacing === null) {
      this.replacing = this.replaceAll(plan.replace)
        .catch((err: unknown) => ctx.log.error({ err }, 'registering replacements failed'))
        .finally(() => {
          this.replacing = null;
        });
    }
    for (const id of plan.drain) this.hooks.drain(id, 'lifespan');
  }

  /**
   * The containers of this host that an app update replaces now: per app with a local ready
   * container, the single one rolloutCandidate picks over all hosts (often on another host).
   */
  private rolloutCandidates(now: number): Set<string> {
    const { cache } = this.ctx.deps;
    const out = new Set<string>();
    const seen = new Set<string>();
    for (const l of this.ctx.locals.values()) {
      if (l.phase !== 'ready' || seen.has(l.app)) continue;
      seen.add(l.app);
      const app = cache.app(l.app);
      if (app === undefined) continue;
      const id = rolloutCandidate(cache.containersOf(app.name), app, this.hashOf(app), (h) => {
        const host = cache.host(h);
        return host !== undefined && cache.isHostLive(host, now, this.ctx.s.hostTimeout);
      });
      if (id !== null && this.ctx.locals.get(id)?.phase === 'ready') out.add(id);
    }
    return out;
  }

  private readonly hashes = new Map<string, { rev: number; hash: string }>();

  /** specHash of the cached app, computed once per revision. */
  private hashOf(app: App): string {
    const known = this.hashes.get(app.name);
    if (known !== undefined && known.rev === app.rev) return known.hash;
    const hash = specHash(app);
    this.hashes.set(app.name, { rev: app.rev, hash });
    // Bounded: apps long gone are forgotten once the map grows past the apps this host runs.
    if (this.hashes.size > 4 * Math.max(64, this.ctx.locals.size)) {
      for (const name of this.hashes.keys()) if (this.ctx.deps.cache.app(name) === undefined) this.hashes.delete(name);
    }
    return hash;
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
   * counts for the container it replaces, so two containers ending together both get one. Those
   * on a drained host (this one's neighbours) are ending too, and those on a host not live serve
   * nobody.
   */
  private lastingOthers(app: App, selfId: string, now: number): number {
    const lead = this.leadMs(app.name);
    const { cache } = this.ctx.deps;
    let n = 0;
    for (const e of cache.containersOf(app.name)) {
      if (e.id === selfId || !liveStates.includes(e.state)) continue;
      const host = cache.host(e.host);
      if (host === undefined || !cache.isHostLive(host, now, this.ctx.s.hostTimeout) || (host.drainedAt ?? null) !== null) continue;
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
      const { entry, created } = await placeContainer(ctx.deps.store, app, cache.allHosts(), cache.allContainers(), clock.now(), ctx.s.hostTimeout, { ifFewerThan: live.length + 1, surge }, cache.health.outages);
      this.hooks.observeNew(entry);
      if (!created) return;
      local.successor = entry.id;
      const left = Math.max(0, (local.expiresAt ?? 0) - clock.now());
      const why = this.updating.get(entryId) ?? `lifespan ends in ${left} ms`;
      recordEvent(ctx, { app: app.name, kind: 'replace', container: entryId, reason: `${why}; replacement ${entry.id} on host ${entry.host}`, from: live.length, to: live.length + 1 });
    } catch (err) {
      local.replaceRetryAt = clock.now() + REPLACE_RETRY_MS;
      const fc = toFcError(err);
      ctx.log.warn({ container: entryId, app: app.name, code: fc.code, err: fc.message }, 'could not register a replacement; trying again shortly (the container is drained at its end if none comes)');
    }
  }
}
