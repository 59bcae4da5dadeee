// The CMDB: apps, container entries and compute hosts. Roles see it only through the Store
// interface (types.ts) and a CmdbCache of it; Redis (redis-store.ts) serves many hosts, the
// in-process store (memory-store.ts) serves one.

import type { Logger } from '../shared/logger.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './types.js';

export * from './types.js';
export { CmdbCache } from './cache.js';
export { CmdbHealth, heartbeatAge, type Outage } from './cmdb-health.js';
export { MemoryStore } from './memory-store.js';
export { RedisStore } from './redis-store.js';

export interface OpenStoreOptions {
  redisUrl: string;
  redisPrefix: string;
  logger: Logger;
  /** FC_CMDB_TIMEOUT: the deadline of every CMDB call. */
  cmdbTimeout?: number;
  /** REDIS_SENTINELS and FC_REDIS_SENTINEL_NAME. */
  redisSentinels?: readonly { host: string; port: number }[];
  redisSentinelName?: string;
  /** REDIS_SENTINEL_PASSWORD and REDIS_SENTINEL_USERNAME: the sentinels' own credentials. */
  redisSentinelPassword?: string;
  redisSentinelUsername?: string;
}

/** Whether these options name a Redis CMDB (a URL or sentinels); otherwise the embedded one. */
export function usesRedis(options: Pick<OpenStoreOptions, 'redisUrl' | 'redisSentinels'>): boolean {
  return options.redisUrl !== '' || (options.redisSentinels?.length ?? 0) > 0;
}

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  if (!usesRedis(options)) return new MemoryStore();
  return RedisStore.connect({
    url: options.redisUrl, prefix: options.redisPrefix, logger: options.logger,
    ...(options.cmdbTimeout === undefined ? {} : { commandTimeoutMs: options.cmdbTimeout }),
    ...(options.redisSentinels === undefined ? {} : { sentinels: options.redisSentinels }),
    ...(options.redisSentinelName === undefined ? {} : { sentinelName: options.redisSentinelName }),
    ...(options.redisSentinelPassword === undefined ? {} : { sentinelPassword: options.redisSentinelPassword }),
    ...(options.redisSentinelUsername === undefined ? {} : { sentinelUsername: options.redisSentinelUsername }),
  });
}
export { chooseHost, isHostLive, isHostSchedulable, uncountedHosts, newContainerEntry, newContainerId, placeContainer, scaleInOrder } from './placement.js';
