// The CMDB: apps, container entries and compute hosts. Roles see it only through the Store
// interface (types.ts) and a CmdbCache of it; Redis (redis-store.ts) serves many hosts, the
// in-process store (memory-store.ts) serves one.

import type { Logger } from '../shared/logger.js';
import { MemoryStore } from './memory-store.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './types.js';

export * from './types.js';
export { CmdbCache } from './cache.js';
export { MemoryStore } from './memory-store.js';
export { RedisStore } from './redis-store.js';

export async function openStore(options: { redisUrl: string; redisPrefix: string; logger: Logger }): Promise<Store> {
  if (options.redisUrl === '') return new MemoryStore();
  return RedisStore.connect({ url: options.redisUrl, prefix: options.redisPrefix, logger: options.logger });
}
export { chooseHost, isHostLive, isHostSchedulable, uncountedHosts, newContainerEntry, newContainerId, placeContainer, scaleInOrder } from './placement.js';
