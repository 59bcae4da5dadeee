// The proxy's side of a WebSocket (HTTP Upgrade): routed like any request (Host, target rules,
// the app for the host, 404 for an unknown one), admitted through the app's slot (app-gate.ts)
// until its container answers, then tunnelled; signed for the dispatcher's hop gate like any
// request. Bounded: at most FC_UPGRADE_MAX_PER_APP open per app through this proxy, each closed
// after FC_UPGRADE_IDLE_TIMEOUT without a byte. Only WebSockets are tunnelled: another upgrade
// (h2c: `curl --http2` on http://) without a body is served as the plain request it also is; one
// with a body is refused (its body would have to be parsed here).

import type { IncomingMessage } from 'node:http';
import { Gauge } from 'prom-client';
import type { Duplex } from 'node:stream';
import type { App, ContainerEntry } from '../cmdb/types.js';
import { options } from '../shared/config.js';
import { FcError, toFcError } from '../shared/errors.js';
import { hasBody, upstreamRequestHeaders } from '../shared/forward.js';
import { newRequestId, sendPublicProblem } from '../shared/public-problem.js';
import { AUTH_HEADER, CONTAINER_HEADER, ERROR_HEADER } from '../shared/protocol.js';
import { isWebSocketSwitch, isWebSocketUpgrade, relayAnswer, requestUpgrade, responseOn, switchProtocols, Tunnel, Tunnels } from '../shared/tunnel.js';
import { neverSent } from '../shared/upstream-errors.js';
import type { UserProxy } from './proxy.js';
import { routePublicRequest } from './request-target.js';
import { chooseEntry } from './routing.js';

/** Sends to at most this many containers before giving up on an upgrade (as the proxy's requests). */
const MAX_ATTEMPTS = 3;

export interface UpgradeSettings {
  idleMs: number;
  maxPerApp: number;
  /** Longest wait for the dispatcher's answer to the upgrade (cold start included). */
  answerTimeoutMs: (app: App) => number;
}

export class ProxyUpgrades {
  readonly tunnels = new Tunnels();
  /** WebSockets per app through this proxy, handshakes included. */
  private readonly perApp = new Map<string, number>();

  constructor(private readonly proxy: UserProxy, private readonly s: UpgradeSettings) {
    const perApp = this.perApp;
    new Gauge({
      name: 'fc_proxy_websockets_open', help: 'WebSockets open through this proxy (handshakes included), by app', labelNames: ['app'], registers: [proxy.deps.registry],
      collect() {
        this.reset();
        for (const [app, n] of perApp) this.set({ app }, n);
      },
    });
  }

  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    if (!isWebSocketUpgrade(req)) {
      // Not a WebSocket: the upgrade is not done, the request is served as plain HTTP/1.1.
      if (!hasBody(req) && head.length === 0) {
        this.proxy.handle(req, responseOn(req, socket));
        return;
      }
      sendPublicProblem(responseOn(req, socket), new FcError('FC_ERR_UPGRADE_REFUSED', 'only WebSocket upgrades are forwarded'), newRequestId(), this.proxy.log);
      return;
    }
    void this.serve(req, socket, head);
  };

  /** The open WebSockets of an app through this proxy. */
  openOf(app: string): number {
    return this.perApp.get(app) ?? 0;
  }

  private async serve(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const begin = performance.now();
    const requestId = newRequestId();
    const proxy = this.proxy;
    let app: App | undefined;
    let status = 502;
    let counted = false;
    try {
      const { authority, host } = routePublicRequest(req);
      app = host === undefined ? undefined : await proxy.appForHost(host);
      if (app === undefined) throw new FcError('FC_ERR_UNKNOWN_HOST', `no app serves the host "${host ?? ''}"`, { host: host ?? null });
      const open = this.openOf(app.name);
      if (open >= this.s.maxPerApp) {
        throw new FcError('FC_ERR_UPGRADE_LIMIT', `app "${app.name}" has ${open} WebSockets open through this proxy (FC_UPGRADE_MAX_PER_APP)`, { app: app.name }, { retryAfter: 5 });
      }
      this.perApp.set(app.name, open + 1);
      counted = true;
      const result = await this.throughGate(app, req, socket, head, requestId, authority as string);
      status = result.status;
      if (result.tunnel !== undefined) {
        this.tunnels.add(result.tunnel);
        const name = app.name;
        counted = false;
        void result.tunnel.closed.then(() => this.release(name));
      }
    } catch (err) {
      if (socket.destroyed) {
        status = 499;
      } else {
        const fc = toFcError(err);
        status = fc.status;
        sendPublicProblem(responseOn(req, socket), fc, requestId, proxy.log, { app: app?.name });
      }
    } finally {
      if (counted && app !== undefined) this.release(app.name);
      proxy.metrics.recorder.record(app?.name ?? '', status, (performance.now() - begin) / 1000);
    }
  }

  private release(app: string): void {
    const n = (this.perApp.get(app) ?? 1) - 1;
    if (n <= 0) this.perApp.delete(app);
    else this.perApp.set(app, n);
  }

  /** The app's slot is held until the container answered the upgrade, not for the WebSocket's life. */
  private async throughGate(app: App, req: IncomingMessage, socket: Duplex, head: Buffer, requestId: string, authority: string): Promise<{ status: number; tunnel?: Tunnel }> {
    const release = await this.proxy.enterGate(app, socket);
    try {
      return await this.toContainer(app, req, socket, head, requestId, authority);
    } finally {
      release();
    }
  }

  /**
   * To one of the app's containers; to another (at most MAX_ATTEMPTS in all, never the same entry
   * twice) only when it provably did not reach the app: the dispatcher said the chosen container
   * was gone (drained a moment ago, which this proxy had not heard of yet), or its dispatcher
   * refused the connection (its host is then passed over for a few seconds, as for requests).
   */
  private async toContainer(app: App, req: IncomingMessage, socket: Duplex, head: Buffer, requestId: string, authority: string): Promise<{ status: number; tunnel?: Tunnel }> {
    const proxy = this.proxy;
    const { cache, clock } = proxy.deps;
    const headers = ['Host', authority, ...upstreamRequestHeaders(req, (name) => name === 'host' || proxy.untrusted(name), proxy.forwardedHeaders(req, authority, requestId))];
    const tried = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const now = clock.now();
      const decision = chooseEntry(cache.containersOf(app.name), proxy.random, (e: ContainerEntry) => !tried.has(e.id) && proxy.hostUsable(e.host, now));
      const entry = decision.kind === 'forward' ? decision.entry : await proxy.registerFor(app, tried);
      if (tried.has(entry.id)) throw new FcError('FC_ERR_APP_AT_CAPACITY', `none of app "${app.name}"'s containers took the upgrade`, { app: app.name }, { retryAfter: 5 });
      tried.add(entry.id);
      const result = await this.toEntry(app, entry, req, socket, head, headers, attempt < MAX_ATTEMPTS);
      if (result.retry !== true) return result;
    }
  }

  private async toEntry(app: App, entry: ContainerEntry, req: IncomingMessage, socket: Duplex, head: Buffer, headers: string[], retryIfGone: boolean): Promise<{ status: number; tunnel?: Tunnel; retry?: boolean }> {
    const proxy = this.proxy;
    const { cache, clock, hopAuth } = proxy.deps;
    const local = proxy.deps.local;
    if (local?.upgrade !== undefined && local.hostId === entry.host) return local.upgrade(entry.id, req, socket, head, headers, retryIfGone);
    const host = cache.host(entry.host);
    if (host === undefined) throw new FcError('FC_ERR_NO_COMPUTE_HOST', `host "${entry.host}" of container ${entry.id} is unknown`, { host: entry.host });
    const url = new URL(host.dispatcherUrl);
    const abort = new AbortController();
    const onClose = () => abort.abort(new Error('client went away'));
    socket.once('close', onClose);
    let outcome;
    try {
      outcome = await requestUpgrade({
        host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80), path: req.url ?? '/',
        headers: [CONTAINER_HEADER, entry.id, AUTH_HEADER, hopAuth.sign({ method: 'GET', target: req.url ?? '/', entryId: entry.id }, clock.now()), ...headers],
        timeoutMs: this.s.answerTimeoutMs(app), upstream: `the dispatcher of host ${host.id} (${host.dispatcherUrl})`, signal: abort.signal,
      });
    } catch (err) {
      proxy.dispatcherFailed(host.id, err);
      // Never sent (the connection was refused): another container may take it, as a GET would.
      if (retryIfGone && !socket.destroyed && err instanceof FcError && err.code === 'FC_ERR_UPSTREAM' && neverSent(err.cause)) {
        proxy.metrics.retries.inc({ reason: 'not-sent' });
        return { status: 502, retry: true };
      }
      throw err;
    } finally {
      socket.off('close', onClose);
    }
    if (outcome.kind === 'answered' && retryIfGone && outcome.res.statusCode === 503 && outcome.res.headers[ERROR_HEADER] === 'FC_ERR_CONTAINER_GONE') {
      outcome.res.resume();
      return { status: 503, retry: true };
    }
    if (outcome.kind === 'answered' || !isWebSocketSwitch(outcome.res)) {
      // Not switched: answered and closed; what the client sent after the upgrade is dropped.
      if (outcome.kind === 'upgraded') {
        outcome.socket.destroy();
        throw new FcError('FC_ERR_UPSTREAM', 'the upstream switched to a protocol other than websocket');
      }
      relayAnswer(outcome.res, responseOn(req, socket));
      return { status: outcome.res.statusCode ?? 502 };
    }
    switchProtocols(socket, outcome, head);
    return { status: 101, tunnel: new Tunnel(socket, outcome.socket, { idleMs: this.s.idleMs }) };
  }
}

export function upgradeSettings(s: { upgradeIdleTimeout?: number; upgradeMaxPerApp?: number }, answerTimeoutMs: (app: App) => number): UpgradeSettings {
  return {
    idleMs: s.upgradeIdleTimeout ?? options.upgradeIdleTimeout.default,
    maxPerApp: s.upgradeMaxPerApp ?? options.upgradeMaxPerApp.default,
    answerTimeoutMs,
  };
}
