// The UserProxy role: the front door for tenants' HTTP traffic. See proxy.ts.

import type { Registry } from 'prom-client';
import type { CmdbCache } from '../cmdb/cache.js';
import { registerCmdbMetrics } from '../cmdb/cache-metrics.js';
import type { Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import type { Config } from '../shared/config.js';
import { listen, type Listening } from '../shared/http.js';
import type { HopAuth } from '../shared/hop-auth.js';
import { PUBLIC_MAX_HEADERS, type LocalDispatch } from '../shared/protocol.js';
import type { Logger } from '../shared/logger.js';
import { createRegistry } from '../shared/metrics.js';
import { UserProxy } from './proxy.js';
import { listenTls, type TlsListening } from './tls.js';

export { UserProxy } from './proxy.js';
export { chooseEntry, routingHost } from './routing.js';

export interface ProxyRole {
  proxy: UserProxy;
  registry: Registry;
  listening: Listening;
  /** The HTTPS listener, when FC_TLS_DIR is set. */
  secure: TlsListening | undefined;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startProxy(
  config: Pick<
    Config,
    | 'proxyPort' | 'proxyListen' | 'hostTimeout' | 'upstreamConnections' | 'bufferBody' | 'bufferTotal' | 'bodyMinRate' | 'bodyTimeout'
    | 'bufferAnswer' | 'bufferAnswerTotal' | 'sendTimeout'
    | 'requestTimeout' | 'upstreamTimeout' | 'queueTimeout' | 'appConcurrency' | 'appQueue' | 'appQueueTimeout' | 'drainTimeout'
    | 'upgradeIdleTimeout' | 'upgradeMaxPerApp' | 'tlsPort' | 'tlsDir' | 'tlsReload'
  >,
  deps: { store: Store; cache: CmdbCache; clock: Clock; logger: Logger; hopAuth: HopAuth; local?: LocalDispatch },
): Promise<ProxyRole> {
  const logger = deps.logger.child({ role: 'proxy' });
  const registry = createRegistry('proxy');
  registerCmdbMetrics(registry, deps.cache);
  const proxy = new UserProxy({ ...deps, logger, registry }, config);
  // One header more than it accepts, so that the proxy sees a request with too many (431).
  const listening = await listen(proxy.handle, config.proxyPort, config.proxyListen, {
    maxHeadersCount: PUBLIC_MAX_HEADERS + 1, drainTimeout: config.drainTimeout,
    // WebSockets (upgrade.ts); those still open at the end of a shutdown's drain are closed with 1001.
    onUpgrade: proxy.upgrades.handle, beforeCut: () => proxy.upgrades.tunnels.goingAway(),
  });
  logger.info({ url: listening.url }, 'proxy listening');
  // HTTPS beside it when a certificate directory is given (tls.ts).
  let secure: TlsListening | undefined;
  if (config.tlsDir !== '') {
    try {
      secure = await listenTls(proxy.handle, config.tlsDir, config.tlsPort, config.proxyListen, {
        drainTimeout: config.drainTimeout, reloadMs: config.tlsReload,
        onUpgrade: proxy.upgrades.handle, beforeCut: () => proxy.upgrades.tunnels.goingAway(),
      }, { clock: deps.clock, logger, registry });
    } catch (err) {
      await listening.destroy();
      throw err;
    }
    proxy.httpsPort = secure.port;
    logger.info({ url: secure.url, certificates: secure.certs.names }, 'proxy listening for HTTPS');
  }
  return {
    proxy,
    registry,
    listening,
    secure,
    async close() {
      await Promise.all([listening.close(), secure?.close()]);
      await proxy.close();
    },
    async destroy() {
      await Promise.all([listening.destroy(), secure?.destroy()]);
      await proxy.destroy();
    },
  };
}
