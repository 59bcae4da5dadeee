// The request side of the dispatcher, a chain of small steps: admit (a ready container, or hold
// the request while its container starts, within a cap and a deadline), forward (stream the
// answer back over the container's keep-alive pool), then record the outcome.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ContainerEntry } from '../cmdb/types.js';
import { options } from '../shared/config.js';
import { FcError, toFcError, type ErrorCode, errorCatalog } from '../shared/errors.js';
import { forward, upstreamRequestHeaders } from '../shared/forward.js';
import { requestIdOf, sendPublicProblem } from '../shared/public-problem.js';
import type { ForwardBody } from '../shared/protocol.js';
import { gone, type DispatcherContext } from './context.js';
import { HeldRequests } from './held-requests.js';
import type { ContainerLifecycle } from './lifecycle.js';
import type { LocalContainer } from './local-container.js';

export class RequestPath {
  constructor(
    private readonly ctx: DispatcherContext,
    private readonly lifecycle: ContainerLifecycle,
    /** Told of every request slower than its app's target, so the autoscaler looks at once. */
    private readonly onSlow: (app: string) => void,
  ) {}

  /**
   * One request for a container entry. Over HTTP the headers are the request's own; in process
   * (the proxy's LocalDispatch) the proxy's, and a container found gone may be left to the proxy
   * to retry elsewhere (retryIfGone) instead of answered.
   */
  async serve(entryId: string, req: IncomingMessage, res: ServerResponse, headers?: string[], retryIfGone = false, body?: ForwardBody): Promise<{ status: number; retry: boolean }> {
    const { ctx } = this;
    const begin = performance.now();
    // Only a request that may be held (its container starting or frozen) needs to hear of its
    // client going away meanwhile; one for a ready container goes straight on (forward() notices).
    let abort: AbortController | undefined;
    const onClose = () => {
      if (!res.writableFinished) abort?.abort(new Error('client went away'));
    };
    let app = '';
    let status: number;
    let retry = false;
    try {
      let local = this.readyNow(entryId);
      if (local === undefined) {
        app = ctx.deps.cache.container(entryId)?.app ?? '';
        abort = new AbortController();
        res.once('close', onClose);
        local = await this.admit(entryId, abort.signal);
        res.off('close', onClose);
      }
      app = local.app;
      status = await this.forwardTo(local, req, res, headers, body);
    } catch (err) {
      res.off('close', onClose);
      if (abort?.signal.aborted === true) {
        // The client went away while its request was held: nobody to answer, nothing wrong.
        status = 499;
      } else {
        const fc = toFcError(err);
        status = fc.status;
        if (retryIfGone && fc.code === 'FC_ERR_CONTAINER_GONE' && !res.headersSent) retry = true;
        // The answer goes to the public: the details (container, address, the runtime's words)
        // only to the log, under the request id the proxy gave it.
        else sendPublicProblem(res, fc, requestIdOf(req, headers), ctx.log, { container: entryId, app });
      }
    }
    ctx.metrics.recorder.record(app, status, (performance.now() - begin) / 1000);
    return { status, retry };
  }

  /** How long the app may take to start its answer: its upstreamTimeout, else FC_UPSTREAM_TIMEOUT; past it, 504. */
  private upstreamTimeoutOf(app: string): number {
    const seconds = this.ctx.deps.cache.app(app)?.upstreamTimeout;
    return seconds != null ? seconds * 1000 : (this.ctx.s.upstreamTimeout ?? options.upstreamTimeout.default);
  }

  /** Admission for an upgrade (upgrade.ts): the same as a request's, cold start and hold included. */
  async admitted(entryId: string, signal: AbortSignal): Promise<LocalContainer> {
    return this.readyNow(entryId) ?? (await this.admit(entryId, signal));
  }

  /** The container, if it is ready and awake: the common case, which needs no admission. */
  private readyNow(entryId: string): LocalContainer | undefined {
    const local = this.ctx.locals.get(entryId);
    return local !== undefined && local.phase === 'ready' && !local.frozen && local.freezing === null ? local : undefined;
  }

  /** Step 1: a ready (or still draining) container, starting it if needed. */
  private async admit(entryId: string, signal: AbortSignal): Promise<LocalContainer> {
    const { ctx } = this;
    const local = ctx.locals.get(entryId);
    if (local !== undefined) {
      if (local.phase === 'ready' && (local.frozen || local.freezing !== null)) return this.afterThaw(entryId, local, signal);
      if (local.phase === 'ready') return local;
      // A draining container still takes requests routed to it before the proxies heard, for the
      // grace period; later ones go elsewhere (the proxy retries them).
      if (local.phase === 'draining') {
        if (ctx.deps.clock.now() - (local.drainingSince ?? 0) <= ctx.s.drainGrace) {
          if (local.frozen || local.freezing !== null) return this.afterThaw(entryId, local, signal);
          return local;
        }
        throw gone(entryId, 'is draining');
      }
      if (local.phase === 'stopping') throw gone(entryId, 'is being stopped');
    }
    const entry = ctx.deps.cache.container(entryId) ?? (await ctx.deps.store.getContainer(entryId));
    if (entry === null || entry === undefined) throw gone(entryId, 'no longer exists');
    if (entry.host !== ctx.s.hostId) throw gone(entryId, `belongs to host ${entry.host}, not ${ctx.s.hostId}`);
    if (entry.state === 'draining' || entry.state === 'gone') throw gone(entryId, `is ${entry.state}`);
    if (!this.lifecycle.starting(entryId)) this.failFastAfterFailedStart(entry);
    let queue = ctx.held.get(entryId);
    if (queue === undefined) {
      queue = new HeldRequests(`container ${entryId} of app ${entry.app}`, ctx.s.queueLimit, ctx.s.queueTimeout, ctx.deps.clock);
      ctx.held.set(entryId, queue);
    }
    try {
      return await queue.hold(this.lifecycle.ensureStarted(entryId), signal);
    } finally {
      if (queue.size === 0 && !this.lifecycle.starting(entryId)) ctx.held.delete(entryId);
    }
  }

  /**
   * Thaws a frozen container, then admits the request again from the start: while it waited, the
   * container may have begun draining or been retired, or the client may have gone.
   */
  private async afterThaw(entryId: string, local: LocalContainer, signal: AbortSignal): Promise<LocalContainer> {
    await this.lifecycle.freezer.thaw(local);
    if (signal.aborted) throw signal.reason;
    return this.admit(entryId, signal);
  }

  /** Within the back-off after a failed start, answer with that failure instead of trying again. */
  private failFastAfterFailedStart(entry: ContainerEntry): void {
    const now = this.ctx.deps.clock.now();
    if (entry.retryAt === null || entry.retryAt <= now || entry.lastError === null) return;
    const code = (entry.lastErrorCode ?? 'FC_ERR_START_FAILED') as ErrorCode;
    const known = code in errorCatalog ? code : 'FC_ERR_START_FAILED';
    throw new FcError(known, entry.lastError, { container: entry.id, image: entry.image }, { retryAfter: Math.max(1, Math.ceil((entry.retryAt - now) / 1000)) });
  }

  /**
   * Step 2: forward to the container and stream its answer back. Step 3: its latency (to the
   * first byte and to the end) and status go into the container's window, counters only. The
   * autoscaler judges the time to the first byte: the time to the end is also the client's own
   * download speed, which a visitor could slow down on purpose. A client gone before any answer
   * leaves nothing to measure.
   */
  private async forwardTo(local: LocalContainer, req: IncomingMessage, res: ServerResponse, given?: string[], body?: ForwardBody): Promise<number> {
    const pool = local.pool;
    if (pool === null) throw gone(local.id, 'has no connection pool');
    local.enter();
    const begin = performance.now();
    let status = 502;
    let headersAt = 0;
    let bytesOut = 0;
    try {
      const headers = given ?? upstreamRequestHeaders(req, (name) => name.startsWith('x-fc-'), []);
      ({ status, headersAt, bytesOut } = await forward({
        pool, req, res, headers, upstream: `container ${local.id} (app ${local.app}) at ${local.address ?? '?'}`,
        headersTimeout: this.upstreamTimeoutOf(local.app),
        buffering: this.ctx.answers,
        ...(body === undefined ? {} : { body }),
      }));
      return status;
    } finally {
      local.leave();
      // Usage for billing: counters only (usage-meter.ts reads them every FC_USAGE_INTERVAL).
      const usage = local.usage;
      usage.requests += 1;
      usage.bytesIn += Buffer.isBuffer(body) ? body.length : declaredLength(req);
      usage.bytesOut += bytesOut;
      if (headersAt !== 0 || status !== 499) {
        const end = performance.now();
        const ttfbMs = (headersAt === 0 ? end : headersAt) - begin;
        local.requests.record(this.ctx.deps.clock.now(), ttfbMs, end - begin, status);
        if (ttfbMs > local.slowMs) this.onSlow(local.app);
      }
    }
  }
}

/**
 * The request body's length as declared (Content-Length). A body streamed without one (chunked)
 * is not counted unless the proxy read it whole (then its Buffer's length is): counting a stream
 * would put a step on every chunk of every upload.
 */
function declaredLength(req: IncomingMessage): number {
  const raw = req.headers['content-length'];
  const n = raw === undefined ? 0 : Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}
