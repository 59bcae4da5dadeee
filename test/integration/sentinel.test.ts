// High availability with Redis Sentinel (REDIS_SENTINELS): a primary, a replica and three
// sentinels of the test's own (Debian's redis-sentinel, free loopback ports, their own temp dirs,
// started and killed by pid). The primary is killed (SIGKILL) under load on warm apps. Asserted:
// no warm request fails, and no app ends with a second container. Reported (not asserted, the
// machine is shared): how long after the kill writes and cold starts work again (goal: 5 s).

import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { liveStates } from '../../src/cmdb/types.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { askRedis, startSentinelGroup, type SentinelGroup } from '../helpers/sentinel-group.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const NAME = 'fcmaster';
let group: SentinelGroup | undefined;
let t: TestStack | undefined;
const ask = <T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> => askRedis(port, undefined, fn);

beforeAll(async () => {
  group = await startSentinelGroup({ name: NAME, downAfterMs: 1000, failoverTimeoutMs: 5000 });
}, 60_000);

afterAll(async () => {
  await t?.cleanup();
  await group?.cleanup();
});

describe('Redis Sentinel failover under load', () => {
  it('loses no warm request and makes no second container when the primary is killed', async () => {
    const runtime = new FakeRuntime();
    t = await startTestStack({
      runtime,
      env: {
        REDIS_URL: '',
        REDIS_SENTINELS: group?.list() ?? '',
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
    await group?.primary.kill();

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

    const promoted = await ask(group?.sentinels[0]?.port ?? 0, (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as string[];
    console.log(`Sentinel failover: primary killed; writes back after ${writesAt - killedAt} ms, cold starts after ${coldAt - killedAt} ms (goal: 5000 ms); ` +
      `${sent} warm requests, ${failures.length} failed; new primary ${promoted.join(':')} (the replica was ${group?.replica.port})`);
    expect(promoted[1]).toBe(String(group?.replica.port));
    // The stack's CMDB is this Redis, found through the sentinels: the promoted replica holds its apps.
    expect(s.stack.store.kind).toBe('redis');
    expect(await ask(group?.replica.port ?? 0, (r) => r.exists(`${s.prefix}:app:after`, `${s.prefix}:app:w1`))).toBe(2);
    expect(failures).toEqual([]);

    // No app has two containers, in the engine or in the CMDB.
    for (const name of [...apps, 'after']) {
      const running = [...runtime.containers.values()].filter((c) => c.running && c.spec.labels[labelKeys.app] === name).length;
      const entries = (await s.stack.store.listContainers({ app: name })).filter((e) => liveStates.includes(e.state)).length;
      expect({ name, running, entries }).toEqual({ name, running: 1, entries: 1 });
    }
  });
});
