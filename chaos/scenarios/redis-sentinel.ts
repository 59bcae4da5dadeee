// Redis Sentinel failover under load (issue 8, section 4): a primary, a replica and three
// sentinels on loopback, every one a process of this run; the cluster reaches the CMDB through
// the sentinels (REDIS_SENTINELS); the primary is killed (-9) under load. Goals: zero failed
// requests to the warm app, writes and cold starts back within 5 s of the failover, no duplicated
// container. Skips itself ("not available", which is not a pass) when the build has no
// REDIS_SENTINELS option or no Sentinel binary is installed.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { freePort } from '../../test/helpers/net.js';
import { bin, chaosApp, startCluster } from '../lib/cluster.js';
import { once, secs, startLoad, summarize } from '../lib/load.js';
import { pollUntil, sleep, startProc, type Proc } from '../lib/proc.js';
import { startOwnRedis } from '../lib/redis.js';
import { Marks, type Outcome, type Scenario } from '../lib/scenario.js';

const MASTER = 'fcchaos';

function sentinelBinary(): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin'])) {
    if (existsSync(path.join(dir, 'redis-sentinel'))) return path.join(dir, 'redis-sentinel');
  }
  return null;
}

/**
 * The env names of the build's Sentinel options: the list, and the master's name if it has one
 * (FC_REDIS_SENTINEL_NAME; not REDIS_SENTINEL_USERNAME, which would send the name as an ACL user).
 */
async function sentinelOptions(): Promise<{ list: string; name: string | undefined } | null> {
  const config = pathToFileURL(path.resolve(path.dirname(bin), '../dist/shared/config.js')).href;
  const { options } = (await import(config)) as { options: Record<string, { env: string }> };
  const envs = Object.values(options).map((o) => o.env);
  if (!envs.includes('REDIS_SENTINELS')) return null;
  return { list: 'REDIS_SENTINELS', name: envs.find((e) => e !== 'REDIS_SENTINELS' && /SENTINEL/.test(e) && /(^|_)NAME$|MASTER/.test(e)) };
}

const unavailable = (why: string): Outcome => ({
  did: 'primary killed under load behind 3 sentinels',
  sent: 0,
  failed: 0,
  sideEffects: '—',
  recovery: '—',
  goal: '0 failed warm; writes and cold starts back ≤ 5 s after failover; no duplicate',
  verdict: 'unavailable',
  notes: [`not available: ${why}`],
});

export const redisSentinel: Scenario = {
  name: 'redis-sentinel',
  quick: false,
  async run() {
    const sentinelBin = sentinelBinary();
    if (sentinelBin === null) return unavailable('no redis-sentinel binary (Debian package redis-sentinel; scripts/setup.sh installs it once the Sentinel support lands)');
    const opts = await sentinelOptions();
    if (opts === null) return unavailable('this build has no REDIS_SENTINELS option');
    const primary = await startOwnRedis('redis-sentinel-primary');
    const replica = await startOwnRedis('redis-sentinel-replica', { extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)] });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fcchaos-sentinel-'));
    const sentinels: { port: number; proc: Proc }[] = [];
    let c: Awaited<ReturnType<typeof startCluster>> | undefined;
    try {
      for (let i = 0; i < 3; i++) {
        const port = await freePort();
        const conf = path.join(dir, `sentinel-${i}.conf`);
        writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${MASTER} 127.0.0.1 ${primary.port} 2`, `sentinel down-after-milliseconds ${MASTER} 1000`, `sentinel failover-timeout ${MASTER} 5000`, ''].join('\n'));
        sentinels.push({ port, proc: startProc(`sentinel-${i}`, sentinelBin, [conf], { PATH: process.env.PATH }) });
      }
      const masterOf = async (): Promise<number | undefined> => {
        const r = new Redis({ host: '127.0.0.1', port: sentinels[0]!.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: 500 });
        r.on('error', () => undefined);
        try {
          await r.connect();
          const addr = (await r.call('SENTINEL', 'get-master-addr-by-name', MASTER)) as string[] | null;
          return addr === null ? undefined : Number(addr[1]);
        } finally {
          r.disconnect();
        }
      };
      if ((await pollUntil(10_000, masterOf, 200)) !== primary.port) throw new Error('the sentinels did not see the primary within 10 s');
      const list = sentinels.map((s) => `127.0.0.1:${s.port}`).join(',');
      c = await startCluster('redis-sentinel', { hosts: 1, redis: primary, env: { [opts.list]: list, ...(opts.name === undefined ? {} : { [opts.name]: MASTER }) } });
      await c.createApp(chaosApp('warm', { minContainers: 1, maxContainers: 1 }));
      await c.createApp(chaosApp('cold'));
      if ((await c.untilReady('warm', 1, 30_000)) === undefined) throw new Error('the warm app did not get a ready container within 30 s');
      const load = startLoad({ url: c.proxyUrl, host: 'warm.chaos.test', concurrency: 8, timeoutMs: 5000 });
      await sleep(2000);
      const tKill = Date.now();
      await primary.kill9();
      const failover = await pollUntil(20_000, async () => ((await masterOf()) === replica.port ? Date.now() : undefined), 100);
      const tFail = failover ?? Date.now();
      const [writeAt, coldAt] = await Promise.all([
        pollUntil(15_000, async () => ((await c!.api('POST', '/v1/apps', chaosApp('after'), 2000)).status === 201 ? Date.now() : undefined), 100),
        pollUntil(15_000, async () => ((await once({ url: c!.proxyUrl, host: 'cold.chaos.test', timeoutMs: 10_000 })).status === 200 ? Date.now() : undefined), 200),
      ]);
      await sleep(2000);
      await load.stop();
      const all = summarize(load.recs);
      const dup = (await c.running('warm')).length + (await c.running('cold')).length;
      const m = new Marks();
      m.check('the sentinels failed over within 20 s', failover !== undefined);
      m.check('zero failed warm requests', all.failed === 0);
      m.check('writes back within 5 s of the failover', writeAt !== undefined && writeAt - tFail <= 5000);
      m.check('a cold start serves within 5 s of the failover', coldAt !== undefined && coldAt - tFail <= 5000);
      m.check('no duplicated container (warm 1 + cold 1)', dup <= 2);
      return {
        did: 'primary (kill -9) under 8 clients; replica + 3 sentinels on loopback',
        sent: all.sent,
        failed: all.failed,
        sideEffects: `containers of warm+cold: ${dup} (max 2)`,
        recovery: `failover ${secs(failover === undefined ? undefined : failover - tKill)} after kill; writes ${secs(writeAt === undefined ? undefined : writeAt - tFail)}, cold start ${secs(coldAt === undefined ? undefined : coldAt - tFail)} after failover`,
        goal: '0 failed warm; writes and cold starts back ≤ 5 s after failover; no duplicate',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`${opts.list}=${list}${opts.name === undefined ? '' : `, ${opts.name}=${MASTER}`}; failures: ${all.kinds || 'none'}`, ...m.missed()],
      };
    } finally {
      await c?.cleanup();
      await Promise.all(sentinels.map((s) => s.proc.stop(2000)));
      await replica.destroy();
      await primary.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
