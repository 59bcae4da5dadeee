// A Redis primary, its replica and three sentinels of a test's own (Debian's redis-sentinel, free
// loopback ports, their own temp dirs, started and killed by pid), ready when the replica is in
// sync and every sentinel knows the replica and the other two. With passwords, the primary and
// replica require one (requirepass, masterauth) and the sentinels another (requirepass, and
// `sentinel auth-pass` to reach the primary).

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startOwnRedis, type OwnRedis } from './redis-server.js';
import { eventually } from './wait.js';

export interface SentinelGroup {
  primary: OwnRedis;
  replica: OwnRedis;
  sentinels: OwnRedis[];
  /** REDIS_SENTINELS for them. */
  list(): string;
  /** Stops every server of the group (sentinels first). */
  cleanup(): Promise<void>;
}

export interface SentinelGroupOptions {
  /** The name the sentinels monitor the primary under. */
  name: string;
  primaryPassword?: string;
  sentinelPassword?: string;
  /** `sentinel down-after-milliseconds` and `failover-timeout`. */
  downAfterMs: number;
  failoverTimeoutMs: number;
}

/** One command on a server of the test's, on a connection of its own that never retries. */
export async function askRedis<T>(port: number, password: string | undefined, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, ...(password === undefined ? {} : { password }), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

export async function startSentinelGroup(o: SentinelGroupOptions): Promise<SentinelGroup> {
  const started: OwnRedis[] = [];
  const cleanup = async () => {
    for (const s of started.reverse()) await s.cleanup();
  };
  try {
    const auth = o.primaryPassword === undefined ? [] : ['--requirepass', o.primaryPassword, '--masterauth', o.primaryPassword];
    const withPassword = o.primaryPassword === undefined ? {} : { password: o.primaryPassword };
    const primary = await startOwnRedis({ ...withPassword, args: auth });
    started.push(primary);
    const replica = await startOwnRedis({ ...withPassword, args: ['--replicaof', '127.0.0.1', String(primary.port), ...auth] });
    started.push(replica);
    const sentinels: OwnRedis[] = [];
    for (let i = 0; i < 3; i++) {
      const sentinel = await startOwnRedis({
        program: 'redis-sentinel',
        plain: true,
        ...(o.sentinelPassword === undefined ? {} : { password: o.sentinelPassword }),
        leading: (dir) => {
          const file = path.join(dir, 'sentinel.conf');
          writeFileSync(file, [
            // Clients and the other sentinels (which use their own requirepass) must authenticate.
            ...(o.sentinelPassword === undefined ? [] : [`requirepass ${o.sentinelPassword}`]),
            `sentinel monitor ${o.name} 127.0.0.1 ${primary.port} 2`,
            // How this sentinel authenticates to the primary and the replica.
            ...(o.primaryPassword === undefined ? [] : [`sentinel auth-pass ${o.name} ${o.primaryPassword}`]),
            `sentinel down-after-milliseconds ${o.name} ${o.downAfterMs}`,
            `sentinel failover-timeout ${o.name} ${o.failoverTimeoutMs}`,
            `sentinel parallel-syncs ${o.name} 1`,
            '',
          ].join('\n'));
          return [file];
        },
      });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    await eventually(async () => (await askRedis(replica.port, o.primaryPassword, (r) => r.info('replication'))).includes('master_link_status:up'), { timeout: 15_000, what: 'the replica to sync' });
    for (const s of sentinels) {
      await eventually(async () => {
        const replicas = (await askRedis(s.port, o.sentinelPassword, (r) => r.call('SENTINEL', 'REPLICAS', o.name))) as unknown[];
        const others = (await askRedis(s.port, o.sentinelPassword, (r) => r.call('SENTINEL', 'SENTINELS', o.name))) as unknown[];
        return replicas.length === 1 && others.length === 2;
      }, { timeout: 20_000, interval: 200, what: `sentinel ${s.port} to know the replica and the other sentinels` });
    }
    return { primary, replica, sentinels, list: () => sentinels.map((s) => `127.0.0.1:${s.port}`).join(','), cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
