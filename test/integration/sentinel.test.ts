// High availability with Redis Sentinel (REDIS_SENTINELS): a primary, a replica and three
// sentinels of the test's own (Debian's redis-sentinel, free loopback ports, their own temp dirs,
// started and killed by pid). The primary is killed (SIGKILL) under load on warm apps. Asserted:
// no warm request fails, and no app ends with a second container. Reported (not asserted, the
// machine is shared): how long after the kill writes and cold starts work again (goal: 5 s).

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { liveStates } from '../../src/cmdb/types.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startOwnRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const NAME = 'fcmaster';
let primary: OwnRedis | undefined;
let replica: OwnRedis | undefined;
const sentinels: OwnRedis[] = [];
let t: TestStack | undefined;

async function ask<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, commandTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

beforeAll(async () => {
  primary = await startOwnRedis();
  replica = await startOwnRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
  const primaryPort = primary.port;
  for (let i = 0; i < 3; i++) {
    sentinels.push(await startOwnRedis({
      program: 'redis-sentinel',
      plain: true,
      leading: (dir) => {
        const file = path.join(dir, 'sentinel.conf');
        writeFileSync(file, [
          `sentinel monitor ${NAME} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${NAME} 1000`,
          `sentinel failover-timeout ${NAME} 5000`,
          `sentinel parallel-syncs ${NAME} 1`,
          '',
        ].join('\n'));
        return [file];
      },
    }));
  }
  // Ready when the replica is in sync and every sentinel knows the replica and the other two.
  await eventually(async () => (await ask(replica?.port ?? 0, (r) => r.info('replication'))).includes('master_link_status:up'), { timeout: 15_000, what: 'the replica to sync' });
  for (const s of sentinels) {
    await eventually(async () => {
      const replicas = (await ask(s.port, (r) => r.call('SENTINEL', 'REPLICAS', NAME))) as unknown[];
      const others = (await ask(s.port, (r) => r.call('SENTINEL', 'SENTINELS', NAME))) as unknown[];
      return replicas.length === 1 && others.length === 2;
    }, { timeout: 20_000, interval: 200, what: `sentinel ${s.port} to know the replica and the other sentinels` });
  }
}, 60_000);

afterAll(async () => {
  await t?.cleanup();
  for (const s of sentinels) await s.cleanup();
  await replica?.cleanup();
  await primary?.cleanup();
});

describe('Redis Sentinel failover under load', () => {
  it('loses no warm request and makes no second container when the primary is killed', async () => {
    const runtime = new FakeRuntime();
    t = await startTestStack({
      runtime,
      env: {
        REDIS_URL: '',
        REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
        FC_REDIS_SENTINEL_NAME: NAME,
        FC_HEARTBEAT_INTERVAL: '200ms',
        FC_HOST_TIMEOUT: '2s',
        FC_CMDB_TIMEOUT: '500ms',
      },
    });
    const s = t;
    const apps = ['w1', 'w2', 'w3'];
    for (const name of apps) {
      expect((await s.api('POST', '/v1/apps', { name, hostnames: [`${name}.test`], image: 'fastcontainer/hello', maxContainers: 1 })).status).toBe(201);
      expect((await s.get(`${name}.test`)).status).toBe(200);
    }

    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const worker = async (i: number) => {
      while (!stop) {
        const host = `${apps[(sent + i) % apps.length]}.test`;
        sent += 1;
        try {
          const res = await request(`${s.proxyUrl}/`, { headers: { host }, headersTimeout: 5000, bodyTimeout: 5000 });
          await res.body.dump();
          if (res.statusCode !== 200) failures.push(`${host} ${res.statusCode} ${String(res.headers['x-fc-error'])}`);
        } catch (err) {
          failures.push(`${host} ${(err as Error).message}`);
        }
      }
    };
    const load = [0, 1, 2, 3].map(worker);

    await new Promise((r) => setTimeout(r, 500));
    const killedAt = Date.now();
    await primary?.kill();

    // Writes back: the app can be created; cold starts back: its first request is served.
    let writesAt = 0;
    await eventually(async () => {
      const res = await s.api('POST', '/v1/apps', { name: 'after', hostnames: ['after.test'], image: 'fastcontainer/hello', maxContainers: 1 });
      return res.status === 201 || res.status === 409;
    }, { timeout: 30_000, interval: 100, what: 'a write after the failover' });
    writesAt = Date.now();
    await eventually(async () => (await s.get('after.test')).status === 200, { timeout: 30_000, interval: 100, what: 'a cold start after the failover' });
    const coldAt = Date.now();
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(load);

    const promoted = await ask(sentinels[0]?.port ?? 0, (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as string[];
    console.log(`Sentinel failover: primary killed; writes back after ${writesAt - killedAt} ms, cold starts after ${coldAt - killedAt} ms (goal: 5000 ms); ` +
      `${sent} warm requests, ${failures.length} failed; new primary ${promoted.join(':')} (the replica was ${replica?.port})`);
    expect(promoted[1]).toBe(String(replica?.port));
    // The stack's CMDB is this Redis, found through the sentinels: the promoted replica holds its apps.
    expect(s.stack.store.kind).toBe('redis');
    expect(await ask(replica?.port ?? 0, (r) => r.exists(`${s.prefix}:app:after`, `${s.prefix}:app:w1`))).toBe(2);
    expect(failures).toEqual([]);

    // No app has two containers, in the engine or in the CMDB.
    for (const name of [...apps, 'after']) {
      const running = [...runtime.containers.values()].filter((c) => c.running && c.spec.labels[labelKeys.app] === name).length;
      const entries = (await s.stack.store.listContainers({ app: name })).filter((e) => liveStates.includes(e.state)).length;
      expect({ name, running, entries }).toEqual({ name, running: 1, entries: 1 });
    }
  });
});
