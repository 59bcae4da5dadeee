// The composition root: opens the CMDB and starts the roles a command asks for, in one process.
// `up` runs all three on one host (the embedded CMDB unless REDIS_URL is set); `proxy`,
// `dispatcher` and `coreapi` run one each, sharing a Redis CMDB with the others.

import { CmdbCache } from '../cmdb/cache.js';
import { openStore, usesRedis } from '../cmdb/index.js';
import type { Store } from '../cmdb/types.js';
import type { CoreApiRole } from '../coreapi/index.js';
import type { DispatcherRole } from '../dispatcher/index.js';
import type { ContainerRuntime } from '../dispatcher/container-runtime.js';
import type { ProxyRole } from '../proxy/index.js';
import { systemClock, type Clock } from '../shared/clock.js';
import type { Config } from '../shared/config.js';
import { startAdmin, type AdminSource } from '../shared/admin.js';
import { FcError } from '../shared/errors.js';
import { HopAuth } from '../shared/hop-auth.js';
import type { Listening } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { clusterSecret, type ClusterSecret } from './cluster-secret.js';

export type StackRole = 'proxy' | 'dispatcher' | 'coreapi';

export interface Stack {
  store: Store;
  cache: CmdbCache | undefined;
  coreapi: CoreApiRole | undefined;
  dispatcher: DispatcherRole | undefined;
  proxy: ProxyRole | undefined;
  /** The process's admin listener (/healthz, /metrics, the dispatcher's /v1/containers). */
  admin: Listening | undefined;
  /** Drains every server, then closes the CMDB connection. */
  close(): Promise<void>;
  /** Cuts every connection at once. */
  destroy(): Promise<void>;
}

export interface StackOptions {
  config: Config;
  roles: readonly StackRole[];
  logger: Logger;
  clock?: Clock;
  runtime?: ContainerRuntime;
  /** An already open store (tests); otherwise one is opened from the config. */
  store?: Store;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const { config, roles, logger } = o;
  const clock = o.clock ?? systemClock;
  if (roles.length < 3 && !usesRedis(config) && o.store === undefined) {
    throw new FcError('FC_ERR_CONFIG', `REDIS_URL is required to run the ${roles.join(' and ')} role on its own: the embedded CMDB lives inside one process. Set REDIS_URL, or run all roles with \`fastcontainer up\`.`);
  }
  const store = o.store ?? (await openStore({
    redisUrl: config.redisUrl, redisPrefix: config.redisPrefix, logger,
    cmdbTimeout: config.cmdbTimeout, redisSentinels: config.redisSentinels, redisSentinelName: config.redisSentinelName,
    redisSentinelPassword: config.redisSentinelPassword, redisSentinelUsername: config.redisSentinelUsername,
  }));
  let secret: ClusterSecret | undefined;
  const stack: Stack = {
    store,
    cache: undefined,
    coreapi: undefined,
    dispatcher: undefined,
    proxy: undefined,
    admin: undefined,
    async close() {
      secret?.stop();
      await stack.admin?.close();
      await stack.proxy?.close();
      await stack.dispatcher?.close();
      await stack.coreapi?.close();
      await stack.cache?.close();
      if (o.store === undefined) await store.close();
    },
    async destroy() {
      secret?.stop();
      await stack.admin?.destroy();
      await stack.proxy?.destroy();
      await stack.dispatcher?.destroy();
      await stack.coreapi?.destroy();
      await stack.cache?.close();
      if (o.store === undefined) await store.close();
    },
  };
  try {
    let hopAuth: HopAuth | undefined;
    if (roles.includes('proxy') || roles.includes('dispatcher')) {
      stack.cache = await CmdbCache.open(store, logger, { clock });
      secret = await clusterSecret(config, store, clock, logger);
      hopAuth = new HopAuth(secret.secret, config.hopAuthWindow);
    }
    // Each role's code is loaded only when the process runs that role: a proxy on its own does
    // not carry the Docker client and the CoreAPI (about 7 MB of a proxy process's memory).
    if (roles.includes('dispatcher')) {
      const { startDispatcher } = await import('../dispatcher/index.js');
      stack.dispatcher = await startDispatcher(config, { store, cache: stack.cache as CmdbCache, clock, logger, hopAuth: hopAuth as HopAuth, ...(o.runtime ? { runtime: o.runtime } : {}) });
    }
    if (roles.includes('proxy')) {
      // With the dispatcher in this process, the proxy calls it directly for this host's entries.
      const local = stack.dispatcher?.dispatcher.local;
      const { startProxy } = await import('../proxy/index.js');
      stack.proxy = await startProxy(config, { store, cache: stack.cache as CmdbCache, clock, logger, hopAuth: hopAuth as HopAuth, ...(local ? { local } : {}) });
    }
    // Last, so that a CoreAPI answering means every role of this process is up.
    if (roles.includes('coreapi')) {
      const { startCoreApi } = await import('../coreapi/index.js');
      stack.coreapi = await startCoreApi(config, { store, clock, logger });
    }
    stack.admin = await startAdmin(adminSources(stack), config.adminPort, config.adminListen);
    logger.info({ url: stack.admin.url }, 'admin listener (/healthz, /metrics) listening');
  } catch (err) {
    await stack.destroy().catch(() => undefined);
    throw err;
  }
  return stack;
}

function adminSources(stack: Stack): AdminSource[] {
  const out: AdminSource[] = [];
  const { proxy, dispatcher, coreapi, store } = stack;
  if (proxy !== undefined) out.push({ role: 'proxy', registry: proxy.registry, health: () => proxy.proxy.health() });
  if (dispatcher !== undefined) {
    const d = dispatcher.dispatcher;
    out.push({ role: 'dispatcher', registry: dispatcher.registry, health: () => d.health(), routes: { '/v1/containers': () => ({ host: d.hostId, containers: d.localView() }) } });
  }
  if (coreapi !== undefined) {
    // Degraded, not failed, without the CMDB: the other roles of the process may still serve (the
    // CoreAPI's own /healthz answers 503 then, as it can do nothing).
    out.push({ role: 'coreapi', registry: coreapi.registry, health: async () => {
      try {
        await store.ping();
        return { status: 'ok', store: store.kind };
      } catch (err) {
        return { status: 'degraded', store: store.kind, error: err instanceof Error ? err.message : String(err) };
      }
    } });
  }
  return out;
}
