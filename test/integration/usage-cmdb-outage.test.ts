// Usage and logs while the CMDB stalls (a Redis of the test's own, SIGSTOP): the writes fail and
// are carried by the next ones, so once it answers again the rollup has every request exactly
// once, a container removed meanwhile included (its final report waited), and the lines printed
// meanwhile are kept.

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startOwnRedis, type OwnRedis } from '../helpers/redis-server.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let redis: OwnRedis | undefined;
let t: TestStack | undefined;

afterEach(async () => {
  await t?.cleanup();
  await redis?.cleanup();
  t = undefined;
  redis = undefined;
});

describe('usage and logs through a CMDB stall', () => {
  it('counts every request once and keeps the lines once the CMDB answers again', async () => {
    redis = await startOwnRedis({ persistent: false });
    const runtime = new FakeRuntime();
    t = await startTestStack({ runtime, env: { REDIS_URL: redis.url, FC_CMDB_TIMEOUT: '300ms', FC_USAGE_INTERVAL: '1s', FC_HEARTBEAT_INTERVAL: '200ms' } });
    const s = t;
    const created = await s.api('POST', '/v1/apps', { name: 'steady', hostnames: ['steady.test'], image: 'fastcontainer/hello', freezeAfter: 0 });
    expect(created.status).toBe(201);
    const hit = async () => {
      const r = await request(`${s.proxyUrl}/`, { headers: { host: 'steady.test' }, headersTimeout: 4000 });
      await r.body.text();
      return r.statusCode;
    };
    for (let i = 0; i < 3; i++) expect(await hit()).toBe(200);
    const [id] = [...runtime.containers.keys()];
    await eventually(async () => (await s.api('GET', '/v1/apps/steady/usage?from=1h')).body?.totals?.requests === 3, { what: 'the first requests counted' });

    redis.pause();
    try {
      // Warm requests go on (the caches serve them); the usage writes fail meanwhile.
      for (let i = 0; i < 4; i++) expect(await hit()).toBe(200);
      runtime.print(id as string, 'stdout', 'printed while the CMDB stalled');
      // The dispatcher knows the CMDB is away…
      await eventually(async () => {
        const r = await request(`${s.adminUrl}/healthz`, { headersTimeout: 4000 });
        return JSON.stringify(await r.body.json()).includes('degraded');
      }, { what: 'the stall noticed' });
      // …and one usage interval (1 s) and a CMDB deadline pass: writes of both kinds are tried and fail.
      await new Promise((r) => setTimeout(r, 1_500));
    } finally {
      redis.resume();
    }
    const usage = await eventually(async () => {
      const r = await s.api('GET', '/v1/apps/steady/usage?from=1h');
      return r.body?.totals?.requests === 7 ? r.body.totals : undefined;
    }, { timeout: 10_000, what: 'the requests of the stall counted' });
    expect(usage).toMatchObject({ requests: 7, coldStarts: 1 });
    const lines = await eventually(async () => {
      const r = await s.api('GET', '/v1/apps/steady/logs');
      return r.body?.lines?.length === 1 ? r.body.lines : undefined;
    }, { timeout: 10_000, what: 'the line printed during the stall' });
    expect(lines[0].text).toBe('printed while the CMDB stalled');
    // Nothing counted twice by the writes that were retried.
    await eventually(async () => {
      const cursors = await s.stack.store.usageCursors(s.hostId);
      return cursors.length === 1 && cursors[0]?.totals.requests === 7;
    }, { what: 'the cursor at 7' });
    expect((await s.api('GET', '/v1/apps/steady/usage?from=1h')).body.totals.requests).toBe(7);
  });
});
