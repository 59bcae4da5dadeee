// Where the tests find the real services; the setup script starts them.

import { randomBytes } from 'node:crypto';

export const redisUrl = process.env.FC_TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A name no other test run uses: key prefixes, host ids, container labels. */
export function uniqueName(stem: string): string {
  return `${stem}-${randomBytes(4).toString('hex')}`;
}
