// The cluster secret kept in Redis: shared by every process of one prefix, put back by the
// running processes when Redis loses it, and a process that holds another one is told so.

import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterSecret, KEEP_INTERVAL_MS, type ClusterSecret } from '../../src/cli/cluster-secret.js';
import { RedisStore } from '../../src/cmdb/redis-store.js';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { redisUrl, uniqueName } from '../helpers/env.js';
import { dropPrefix } from '../helpers/redis.js';
import { eventually } from '../helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function redisStore(prefix: string): Promise<RedisStore> {
  const store = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
  cleanups.push(() => store.close());
  return store;
}

function keep(s: ClusterSecret): ClusterSecret {
  cleanups.push(() => s.stop());
  return s;
}

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } }));
  return { logger, lines };
}

describe('the cluster secret', () => {
  it('is the configured one when FC_CLUSTER_SECRET is set, and nothing is kept in Redis', async () => {
    const prefix = uniqueName('fctest');
    cleanups.push(() => dropPrefix(prefix));
    const store = await redisStore(prefix);
    const s = keep(await clusterSecret({ clusterSecret: 'c'.repeat(32) }, store, new ManualClock(), silentLogger));
    expect(s.secret).toBe('c'.repeat(32));
    const redis = new Redis(redisUrl);
    cleanups.push(() => redis.disconnect());
    expect(await redis.get(`${prefix}:cluster-secret`)).toBeNull();
  });

  it('is made once and shared by every process of one prefix, not another', async () => {
    const prefix = uniqueName('fctest');
    const other = uniqueName('fctest');
    cleanups.push(() => dropPrefix(prefix), () => dropPrefix(other));
    const clock = new ManualClock();
    const [a, b, c] = await Promise.all([redisStore(prefix), redisStore(prefix), redisStore(other)]);
    const sa = keep(await clusterSecret({ clusterSecret: '' }, a!, clock, silentLogger));
    const sb = keep(await clusterSecret({ clusterSecret: '' }, b!, clock, silentLogger));
    const sc = keep(await clusterSecret({ clusterSecret: '' }, c!, clock, silentLogger));
    expect(sa.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sb.secret).toBe(sa.secret);
    expect(sc.secret).not.toBe(sa.secret);
  });

  it('is put back by a running process when Redis loses it, so a process started later agrees', async () => {
    const prefix = uniqueName('fctest');
    cleanups.push(() => dropPrefix(prefix));
    const clock = new ManualClock();
    const running = keep(await clusterSecret({ clusterSecret: '' }, await redisStore(prefix), clock, silentLogger));
    await dropPrefix(prefix);
    await clock.advance(KEEP_INTERVAL_MS);
    const redis = new Redis(redisUrl);
    cleanups.push(() => redis.disconnect());
    await eventually(async () => (await redis.get(`${prefix}:cluster-secret`)) === running.secret, { what: 'the secret to be back' });
    const later = keep(await clusterSecret({ clusterSecret: '' }, await redisStore(prefix), clock, silentLogger));
    expect(later.secret).toBe(running.secret);
  });

  it('says so, once, when the CMDB holds a secret other than the process\'s', async () => {
    const prefix = uniqueName('fctest');
    cleanups.push(() => dropPrefix(prefix));
    const clock = new ManualClock();
    const { logger, lines } = capturingLogger();
    const store = await redisStore(prefix);
    keep(await clusterSecret({ clusterSecret: '' }, store, clock, logger));
    const redis = new Redis(redisUrl);
    cleanups.push(() => redis.disconnect());
    await redis.set(`${prefix}:cluster-secret`, 'another-process-made-this-one-0123456789');
    await clock.advance(KEEP_INTERVAL_MS);
    await eventually(() => lines.some((l) => l.includes('restart this process')), { what: 'the error line' });
    await clock.advance(KEEP_INTERVAL_MS * 3);
    // Redis answers in order on the store's one connection: once this ping is answered, so are the
    // three offers before it (and their callbacks have run).
    await store.ping();
    expect(lines.filter((l) => l.includes('restart this process'))).toHaveLength(1);
  });

  it('stays in the process with the embedded CMDB', async () => {
    const clock = new ManualClock();
    const s = keep(await clusterSecret({ clusterSecret: '' }, new MemoryStore(), clock, silentLogger));
    expect(s.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
