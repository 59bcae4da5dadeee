// A proxy process for the many-tenants benchmark: the proxy role of the build under test, started
// as `fastcontainer proxy` starts it (startStack), its CMDB cache synced from Redis. It reports
// (over the IPC channel it is forked with) how long the sync took and the process's memory after
// it and after a full GC, optionally times host name lookups, and then either exits or stays up
// reporting the revision of every change its cache applies. Run with --expose-gc.

import path from 'node:path';
import { importDist, type CmdbModule, type ConfigModule, type LoggerModule, type ProxyModule, type StackModule } from '../lib/dist.js';
import { tenantHostnames, type ChangeReport, type MemoryReport, type SyncReport, type TenantProxyOptions } from '../lib/tenants.js';

const o = JSON.parse(process.env.FC_BENCH_TENANT_PROXY ?? '{}') as TenantProxyOptions;
const send = (m: SyncReport | ChangeReport | MemoryReport) => process.send?.(m);
const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => { throw new Error('run with --expose-gc'); });

// What `fastcontainer proxy` loads.
const { startStack } = await importDist<StackModule>(path.join('cli', 'stack.js'));
const { RedisStore } = await importDist<CmdbModule>(path.join('cmdb', 'index.js'));
const { loadConfig } = await importDist<ConfigModule>(path.join('shared', 'config.js'));
const { silentLogger } = await importDist<LoggerModule>(path.join('shared', 'logger.js'));
// Loaded by startStack when it starts the role; loaded here already, so that the sync's time is
// the sync's.
await importDist<ProxyModule>(path.join('proxy', 'index.js'));

const config = loadConfig({
  env: {
    REDIS_URL: o.redisUrl, FC_REDIS_PREFIX: o.prefix, FC_LISTEN_HOST: '127.0.0.1', FC_PROXY_PORT: '0', FC_ADMIN_PORT: '0', FC_HOST_ID: `tenant-proxy-${process.pid}`,
    FC_STATE_DIR: path.join(process.env.TMPDIR ?? '/tmp', `fcbench-tenant-proxy-${process.pid}`), FC_LOG_LEVEL: 'silent',
  },
});
gc();
const rssBefore = process.memoryUsage().rss;
const store = await RedisStore.connect({ url: o.redisUrl, prefix: o.prefix, logger: silentLogger });
// The proxy role as `fastcontainer proxy` starts it, on a store opened beforehand so that the time
// is the cache's sync (and the listen, well under a millisecond).
const t0 = performance.now();
const stack = await startStack({ config, roles: ['proxy'], logger: silentLogger, store });
const syncMs = performance.now() - t0;
const after = process.memoryUsage();
const cache = stack.cache as NonNullable<typeof stack.cache>;
// Twice: the first may leave what finalizers free for the second.
gc();
gc();
await new Promise((r) => setTimeout(r, 200));
const afterGc = process.memoryUsage();

/**
 * ns per lookup of a host name the cache knows, each a fresh flat string as the HTTP parser makes
 * them (never hashed before), over apps chosen at random.
 */
function timeLookups(n: number): number {
  const names = Array.from({ length: n }, () => (tenantHostnames(Math.floor(Math.random() * o.apps)) as [string, string])[Math.random() < 0.5 ? 0 : 1]);
  const text = Buffer.from(names.join('\n'), 'latin1');
  const fresh: string[] = [];
  let at = 0;
  for (const name of names) {
    fresh.push(text.toString('latin1', at, at + name.length));
    at += name.length + 1;
  }
  let hits = 0;
  const t = performance.now();
  for (const h of fresh) if (cache.appForHostname(h) !== undefined) hits += 1;
  const ns = ((performance.now() - t) * 1e6) / n;
  if (hits !== n) throw new Error(`only ${hits} of ${n} host names found`);
  return ns;
}

let lookupNs: number | null = null;
if (o.lookups > 0) {
  timeLookups(Math.min(o.lookups, 10_000)); // warm up the code
  lookupNs = timeLookups(o.lookups);
}

send({
  type: 'synced',
  syncMs,
  apps: cache.allApps().length,
  containers: cache.allContainers().length,
  rssBeforeMb: mb(rssBefore),
  rssMb: mb(after.rss),
  heapUsedMb: mb(after.heapUsed),
  heapTotalMb: mb(after.heapTotal),
  externalMb: mb(after.external),
  rssGcMb: mb(afterGc.rss),
  heapUsedGcMb: mb(afterGc.heapUsed),
  externalGcMb: mb(afterGc.external),
  lookupNs,
  proxyUrl: stack.proxy?.listening.url ?? '',
});

async function shutdown(): Promise<void> {
  await stack.destroy();
  await store.close();
  process.exit(0);
}

if (o.stay) {
  cache.on('change', (change) => send({ type: 'change', rev: change.rev }));
  // Asked later: memory as the process has settled, no GC forced.
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'memory') return;
    const u = process.memoryUsage();
    send({ type: 'memory', rssMb: mb(u.rss), heapUsedMb: mb(u.heapUsed), sinceSyncS: (performance.now() - t0 - syncMs) / 1000 });
  });
  process.on('SIGTERM', () => void shutdown());
  process.on('disconnect', () => void shutdown());
} else {
  await shutdown();
}
