// Fails the run early, with the fix, when the services the tests need are not there.

import { Redis } from 'ioredis';
import { redisUrl } from './env.js';

export default async function setup(): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`Redis is not answering at ${redisUrl} (${(err as Error).message}); run \`bash scripts/setup.sh\` first`);
  } finally {
    redis.disconnect();
  }
}
