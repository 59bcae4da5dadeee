// Freezing idle containers: a ready container without a request for its app's freezeAfter is
// frozen (the cgroup freezer, `docker pause`): no CPU, its memory and sockets kept. The next
// request thaws it in milliseconds instead of a cold start. The CMDB's `frozenAt` follows.

import { withScalingDefaults } from '../cmdb/app-defaults.js';
import { FcError } from '../shared/errors.js';
import { gone, type DispatcherContext } from './context.js';
import { recordEvent } from './events.js';
import { dueForFreeze, freezeBackoffAfterThaw, type FreezableContainer } from './lifespan.js';
import type { LocalContainer } from './local-container.js';

/** How long a thaw may take before the container is given up. */
const THAW_TIMEOUT_MS = 5_000;

export class Freezer {
  constructor(
    private readonly ctx: DispatcherContext,
    /** Retires a container that could not be thawed (it serves nobody). */
    private readonly giveUp: (local: LocalContainer, why: string) => Promise<void>,
  ) {}

  /** Freezes the ready containers idle for their app's freezeAfter (0: never). */
  freezeIdle(now: number): void {
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
    const byId = new Map(idle.map((c) => [c.id, c]));
    for (const id of dueForFreeze(idle, now)) {
      const local = ctx.locals.get(id);
      if (local !== undefined) this.freeze(local, now - (byId.get(id)?.lastActiveAt ?? now));
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
      this.sync(local);
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
        void this.giveUp(local, `it could not be thawed: ${(err as Error).message}`);
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
      this.sync(local);
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
  sync(local: LocalContainer): void {
    const { store, cache } = this.ctx.deps;
    local.frozenSync = local.frozenSync.then(async () => {
      const frozenAt = local.frozen ? local.frozenSince : null;
      if ((cache.container(local.id)?.frozenAt ?? null) === frozenAt) return;
      const next = await store.transitionContainer(local.id, ['ready'], 'ready', { frozenAt }).catch(() => null);
      if (next !== null) cache.observe(next);
    }).catch((err: unknown) => this.ctx.log.warn({ err, container: local.id }, 'could not record the container\'s frozen state'));
  }

  /**
   * Thaws a container only so that it can take its SIGTERM and stop: no event, no metric, no
   * CMDB write, and no deadline (a container that will not thaw is removed anyway).
   */
  async thawToStop(local: LocalContainer): Promise<void> {
    const runtimeId = local.runtimeId;
    if (runtimeId === null || (!local.frozen && local.freezing === null)) return;
    if (local.freezing !== null) await local.freezing;
    await this.ctx.deps.runtime.thaw(runtimeId).catch(() => undefined);
    local.frozen = false;
  }
}
