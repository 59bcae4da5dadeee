// The dispatcher's side of a WebSocket (HTTP Upgrade): admitted like any request (a cold start
// holds it within the same cap and deadline as requests: request-path.ts), sent to the container
// as an upgrade, and after the container's 101 tunnelled (src/shared/tunnel.ts). A tunnel counts
// as a request in flight of its container, so a drain waits for it up to FC_DRAIN_TIMEOUT and the
// container is neither frozen nor retired as idle meanwhile; then it is closed with 1001.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { options } from '../shared/config.js';
import { FcError, toFcError } from '../shared/errors.js';
import { upstreamRequestHeaders } from '../shared/forward.js';
import { requestIdOf, sendPublicProblem } from '../shared/public-problem.js';
import { isWebSocketSwitch, isWebSocketUpgrade, relayAnswer, requestUpgrade, responseOn, switchProtocols, Tunnel } from '../shared/tunnel.js';
import { gone, type DispatcherContext } from './context.js';
import type { RequestPath } from './request-path.js';

export interface UpgradeResult {
  status: number;
  /** The container was gone before anything was sent (retryIfGone): nothing answered, try another. */
  retry?: boolean;
  /** The tunnel, once the container switched to WebSocket. */
  tunnel?: Tunnel;
}

export class UpgradePath {
  constructor(
    private readonly ctx: DispatcherContext,
    private readonly requests: RequestPath,
    /** FC_UPGRADE_IDLE_TIMEOUT. */
    private readonly idleMs: number = options.upgradeIdleTimeout.default,
  ) {}

  /**
   * An upgrade for a container entry. Over HTTP the headers are the request's own (x-fc-* left
   * out); in process, the proxy's. Resolves once the client has its answer (101 or another).
   */
  async serve(entryId: string, req: IncomingMessage, socket: Duplex, head: Buffer, headers?: string[], retryIfGone = false): Promise<UpgradeResult> {
    const { ctx } = this;
    const begin = performance.now();
    const requestId = requestIdOf(req, headers);
    const abort = new AbortController();
    const onClose = () => abort.abort(new Error('client went away'));
    socket.once('close', onClose);
    socket.on('error', () => undefined);
    let app = ctx.deps.cache.container(entryId)?.app ?? '';
    let status = 502;
    let entered: { leave(): void } | undefined;
    try {
      if (!isWebSocketUpgrade(req)) throw new FcError('FC_ERR_UPGRADE_REFUSED', 'only WebSocket upgrades (GET with Upgrade: websocket) are forwarded');
      const local = await this.requests.admitted(entryId, abort.signal);
      app = local.app;
      const address = local.address;
      if (address === null || local.pool === null) throw gone(entryId, 'has no address');
      // In flight from here: a drain that begins during the handshake waits for it too.
      local.enter();
      entered = local;
      const colon = address.lastIndexOf(':');
      const sent = headers ?? upstreamRequestHeaders(req, (name) => name.startsWith('x-fc-'), []);
      const seconds = ctx.deps.cache.app(local.app)?.upstreamTimeout;
      const outcome = await requestUpgrade({
        host: address.slice(0, colon), port: Number(address.slice(colon + 1)), path: req.url ?? '/', headers: sent,
        timeoutMs: seconds != null ? seconds * 1000 : (ctx.s.upstreamTimeout ?? options.upstreamTimeout.default),
        upstream: `container ${local.id} (app ${local.app}) at ${address}`, signal: abort.signal,
      });
      socket.off('close', onClose);
      if (outcome.kind === 'answered' || !isWebSocketSwitch(outcome.res)) {
        // Not switched: the answer goes back as an answer and the connection closes, so whatever
        // the client sent after its upgrade request is never read as a request (smuggling).
        if (outcome.kind === 'upgraded') {
          outcome.socket.destroy();
          throw new FcError('FC_ERR_UPSTREAM', `container ${local.id} switched to a protocol other than websocket`);
        }
        status = outcome.res.statusCode ?? 502;
        relayAnswer(outcome.res, responseOn(req, socket));
        local.leave();
        entered = undefined;
        return { status };
      }
      status = 101;
      switchProtocols(socket, outcome, head);
      const tunnel = new Tunnel(socket, outcome.socket, { idleMs: this.idleMs });
      local.tunnels.add(tunnel);
      entered = undefined;
      void tunnel.closed.then(() => local.leave());
      return { status, tunnel };
    } catch (err) {
      socket.off('close', onClose);
      entered?.leave();
      if (abort.signal.aborted || socket.destroyed) {
        status = 499;
        socket.destroy();
      } else {
        const fc = toFcError(err);
        status = fc.status;
        if (retryIfGone && fc.code === 'FC_ERR_CONTAINER_GONE') return { status, retry: true };
        sendPublicProblem(responseOn(req, socket), fc, requestId, ctx.log, { container: entryId, app });
      }
      return { status };
    } finally {
      ctx.metrics.recorder.record(app, status, (performance.now() - begin) / 1000);
    }
  }
}
