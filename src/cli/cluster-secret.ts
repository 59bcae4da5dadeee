// The cluster secret a process signs (proxy) and checks (dispatcher) the hop with: FC_CLUSTER_SECRET,
// or the one kept in the CMDB, made by the first process that needed one, so every proxy and
// dispatcher of one Redis agrees without configuration. With the embedded CMDB it never leaves
// the process.
//
// A Redis restored empty (or flushed) loses the kept secret while the processes still hold it in
// memory; a process started then would make a new one, and its signatures would be "forged" to
// every other. So each process offers its secret again every KEEP_INTERVAL_MS (SET NX: a no-op
// while it is there): after a loss the running processes put the same secret back within
// seconds, and a process started later reads it. One that started in between and made another
// is told in the log, loudly, to be restarted.

import type { Store } from '../cmdb/types.js';
import type { Clock, Timer } from '../shared/clock.js';
import type { Config } from '../shared/config.js';
import { newClusterSecret } from '../shared/hop-auth.js';
import type { Logger } from '../shared/logger.js';

export const KEEP_INTERVAL_MS = 5_000;

export interface ClusterSecret {
  readonly secret: string;
  /** Stops offering it again. */
  stop(): void;
}

export async function clusterSecret(config: Pick<Config, 'clusterSecret'>, store: Store, clock: Clock, logger: Logger): Promise<ClusterSecret> {
  if (config.clusterSecret !== '') return { secret: config.clusterSecret, stop: () => undefined };
  const secret = await store.clusterSecret(newClusterSecret());
  if (store.kind === 'memory') return { secret, stop: () => undefined };
  let warned = false;
  const timer: Timer = clock.setInterval(() => {
    store.clusterSecret(secret).then((kept) => {
      if (kept === secret) {
        warned = false;
      } else if (!warned) {
        warned = true;
        logger.error('the cluster secret in the CMDB is not the one this process signs or checks with (the CMDB lost it and another process made a new one): restart this process, or set FC_CLUSTER_SECRET on every proxy and dispatcher');
      }
    }, () => undefined);
  }, KEEP_INTERVAL_MS);
  return { secret, stop: () => timer.cancel() };
}
