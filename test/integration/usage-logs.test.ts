// Logs and usage through the whole stack (proxy, dispatcher, CoreAPI, embedded CMDB) on the fake
// runtime, over real HTTP on loopback: a container's output outlives it and streams to a
// follower; a flood is cut and counted; requests, bytes and cold starts reach the usage rollup
// and the Prometheus counters; and the API refuses what it should (no token, unknown app, huge
// or malformed bounds).

import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/api-client.js';
import { RedisStore } from '../../src/cmdb/redis-store.js';
import { zeroUsage } from '../../src/cmdb/usage.js';
import { silentLogger } from '../../src/shared/logger.js';
import { redisUrl, uniqueName } from '../helpers/env.js';
import { logsCommand } from '../../src/cli/commands/logs.js';
import { usageCommand } from '../../src/cli/commands/usage.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack | undefined;
let runtime: FakeRuntime;
const READ_TOKEN = 'read-token-0123456789abcdef';

async function stack(env: Record<string, string> = {}): Promise<TestStack> {
  runtime = new FakeRuntime();
  t = await startTestStack({ store: 'memory', runtime, env: { FC_API_READ_TOKEN: READ_TOKEN, FC_USAGE_INTERVAL: '1s', ...env } });
  return t;
}

afterEach(async () => {
  await t?.cleanup();
  await runtime?.close();
  t = undefined;
});

async function app(s: TestStack, name: string): Promise<void> {
  const res = await s.api('POST', '/v1/apps', { name, hostnames: [`${name}.test`], image: 'fastcontainer/hello', freezeAfter: 0 });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

async function get(s: TestStack, path: string, token: string | null = READ_TOKEN): Promise<{ status: number; body: any }> {
  const res = await request(`${s.apiUrl}${path}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? undefined : JSON.parse(text) };
}

const runningIds = () => [...runtime.containers.values()].filter((c) => c.running).map((c) => c.id);

describe('logs', () => {
  it('keeps a container\'s output past its removal, exactly (escapes and NUL included), and streams new lines to a follower', async () => {
    const s = await stack();
    await app(s, 'talk');
    expect((await s.get('talk.test')).status).toBe(200);
    const [id] = runningIds();
    const nasty = 'evil \u001b[2J\u001b]0;title\u0007 nul\u0000 bidi\u202e';
    runtime.print(id as string, 'stdout', 'hello from the app');
    runtime.print(id as string, 'stderr', nasty);
    const page = await eventually(async () => {
      const r = await get(s, '/v1/apps/talk/logs');
      return r.body.lines?.length === 2 ? r.body : undefined;
    }, { what: 'the lines in the CMDB' });
    expect(page.lines.map((l: any) => [l.stream, l.text])).toEqual([['stdout', 'hello from the app'], ['stderr', nasty]]);
    expect(page.lines[0]).toMatchObject({ seq: 1, host: s.hostId });
    // The CLI prints them with every control character shown, none acted on.
    let printed = '';
    expect(await logsCommand(new ApiClient(s.apiUrl, READ_TOKEN), 'talk', { follow: false }, (x) => { printed += x; })).toBe(0);
    const rows = printed.split('\n').filter((x) => x !== '');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/ hello from the app$/);
    expect(rows[1]).toContain('[stderr] evil \\x1b[2J\\x1b]0;title\\x07 nul\\x00 bidi\\u{202e}');
    expect(printed).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);

    // The CLI's follow: the last line, then what comes, until stopped.
    let followed = '';
    const stop = new AbortController();
    const cli = logsCommand(new ApiClient(s.apiUrl, READ_TOKEN), 'talk', { follow: true, limit: '1', signal: stop.signal }, (x) => { followed += x; });
    await eventually(() => followed.includes('nul\\x00'), { what: 'the CLI\'s first line' });
    runtime.print(id as string, 'stdout', 'cli sees this');
    await eventually(() => followed.includes(' cli sees this\n'), { timeout: 5000, what: 'the CLI to print a new line' });
    stop.abort();
    expect(await cli).toBe(0);

    // Follow: the page, then what comes.
    const follow = await request(`${s.apiUrl}/v1/apps/talk/logs?follow=1&limit=1`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
    expect(follow.statusCode).toBe(200);
    expect(follow.headers['content-type']).toContain('application/x-ndjson');
    const seen: any[] = [];
    const reading = (async () => {
      let rest = '';
      for await (const chunk of follow.body) {
        rest += chunk.toString();
        let nl;
        while ((nl = rest.indexOf('\n')) !== -1) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (line.trim() !== '') seen.push(JSON.parse(line));
        }
      }
    })();
    await eventually(() => seen.length === 1, { what: 'the first page of the follow' });
    expect(seen[0].text).toBe('cli sees this');
    runtime.print(id as string, 'stdout', 'later 1', 'later 2');
    await eventually(() => seen.length === 3, { timeout: 5000, what: 'new lines on the follow' });
    expect(seen.map((l) => l.text)).toEqual(['cli sees this', 'later 1', 'later 2']);

    // The container goes; its lines stay.
    const containers = (await s.api('GET', '/v1/apps/talk/containers')).body.containers as { id: string }[];
    expect((await s.api('DELETE', `/v1/containers/${containers[0]?.id}`)).status).toBe(202);
    await eventually(() => runtime.containers.size === 0, { what: 'the container to be removed' });
    const after = await get(s, `/v1/apps/talk/logs?container=${containers[0]?.id}&limit=10`);
    expect(after.body.lines.map((l: any) => l.text)).toEqual(['hello from the app', nasty, 'cli sees this', 'later 1', 'later 2']);
    follow.body.destroy();
    await reading.catch(() => undefined);
  });

  it('drops a flood beyond FC_LOG_RATE and counts it, keeping at most FC_LOG_LINES', async () => {
    const s = await stack({ FC_LOG_RATE: '5', FC_LOG_LINES: '30' });
    await app(s, 'flood');
    expect((await s.get('flood.test')).status).toBe(200);
    const [id] = runningIds();
    runtime.print(id as string, 'stdout', ...Array.from({ length: 400 }, (_, i) => `line ${i}`));
    // A burst of 50 (10 s at 5/s) is kept; the next 51 (ten times the rate within a second) are
    // dropped and counted, and the follow is cut for a second: the rest is never read at all.
    await eventually(async () => {
      const m = await (await request(`${s.adminUrl}/metrics`)).body.text();
      return /fc_dispatcher_log_lines_dropped_total\{app="flood",reason="rate"[^}]*\} 51\n/.test(m) && /fc_dispatcher_log_lines_dropped_total\{app="flood",reason="paused"[^}]*\} 1\n/.test(m);
    }, { timeout: 5000, what: 'the dropped lines and the pause counted' });
    const page = await eventually(async () => {
      const r = await get(s, '/v1/apps/flood/logs?limit=100000');
      return r.body.lines.filter((l: any) => l.stream === 'system').length === 2 ? r.body : undefined;
    }, { what: 'the lines saying what was dropped' });
    expect(page.lines).toHaveLength(30);
    const system = page.lines.filter((l: any) => l.stream === 'system').map((l: any) => l.text).join('\n');
    expect(system).toContain('51 lines dropped');
    expect(system).toContain('not read');
    expect(page.lines.filter((l: any) => l.stream === 'stdout').at(-1).text).toBe('line 49');
    // Read again after the pause: a line printed now is kept.
    runtime.print(id as string, 'stdout', 'calm again');
    await eventually(async () => (await get(s, '/v1/apps/flood/logs?limit=1')).body.lines[0]?.text === 'calm again', { timeout: 5000, what: 'the line after the pause' });
  });

  it('takes a follow that broke up again from its last line, the container running on', async () => {
    const s = await stack();
    await app(s, 'steady');
    expect((await s.get('steady.test')).status).toBe(200);
    const [id] = runningIds();
    runtime.print(id as string, 'stdout', 'before');
    await eventually(async () => (await get(s, '/v1/apps/steady/logs')).body.lines.length === 1, { what: 'the first line' });
    runtime.breakLogFollows(id as string);
    // A later millisecond than 'before': lines are taken up from the millisecond after the last seen.
    await new Promise((r) => setTimeout(r, 5));
    runtime.print(id as string, 'stdout', 'while broken');
    const texts = await eventually(async () => {
      const lines = (await get(s, '/v1/apps/steady/logs')).body.lines as { text: string }[];
      return lines.length >= 2 ? lines.map((l) => l.text) : undefined;
    }, { timeout: 5000, what: 'the line printed while the follow was broken' });
    // Once each: taken up from after the last line seen.
    expect(texts).toEqual(['before', 'while broken']);
  });

  it('refuses without a token, answers 404 for an unknown app, bounds limit and since', async () => {
    const s = await stack();
    await app(s, 'quiet');
    expect((await get(s, '/v1/apps/quiet/logs', null)).status).toBe(401);
    expect((await get(s, '/v1/apps/quiet/logs', 'wrong-token-0123456789')).status).toBe(401);
    expect((await get(s, '/v1/apps/quiet/logs')).status).toBe(200);
    expect((await get(s, '/v1/apps/nobody/logs')).body).toMatchObject({ code: 'FC_ERR_APP_NOT_FOUND' });
    expect((await get(s, '/v1/apps/nobody/logs?follow=1')).status).toBe(404);
    for (const q of ['limit=99999999999', 'limit=0', 'limit=-1', 'since=yesterday', 'since=' + '9'.repeat(100), 'after=x', 'follow=maybe', 'container=../etc']) {
      const r = await get(s, `/v1/apps/quiet/logs?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.code, q).toBe('FC_ERR_INVALID_FIELD');
    }
    // Within the bounds, but more than is kept: answered, bounded by FC_LOG_LINES.
    expect((await get(s, '/v1/apps/quiet/logs?limit=100000&since=99999d')).status).toBe(200);
  });
});

describe('log follows, bounded', () => {
  it('streams at most 100 follows per CoreAPI; the next is a 503 with Retry-After until one ends', async () => {
    const s = await stack();
    await app(s, 'watched');
    const open = async () => request(`${s.apiUrl}/v1/apps/watched/logs?follow=1`, { headers: { authorization: `Bearer ${READ_TOKEN}` } });
    const follows = await Promise.all(Array.from({ length: 100 }, open));
    for (const f of follows) f.body.on('error', () => undefined);
    expect(follows.map((f) => f.statusCode)).toEqual(Array(100).fill(200));
    const refused = await open();
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();
    expect(JSON.parse(await refused.body.text())).toMatchObject({ code: 'FC_ERR_TOO_MANY_FOLLOWERS' });
    // Reads without follow still answer.
    expect((await get(s, '/v1/apps/watched/logs')).status).toBe(200);
    follows[0]?.body.destroy();
    const again = await eventually(async () => {
      const f = await open();
      if (f.statusCode === 200) return f;
      await f.body.text();
      return undefined;
    }, { timeout: 5000, interval: 100, what: 'a follow accepted once one ended' });
    again.body.on('error', () => undefined);
    for (const f of [...follows.slice(1), again]) f.body.destroy();
  });
});

describe('usage', () => {
  it('counts requests, bytes and the cold start into the rollup and the Prometheus counters', async () => {
    const s = await stack();
    await app(s, 'busy');
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const r = await request(`${s.proxyUrl}/`, { method: 'POST', headers: { host: 'busy.test', 'content-type': 'text/plain' }, body: 'x'.repeat(100) });
      bytes += (await r.body.text()).length;
      expect(r.statusCode).toBe(200);
    }
    const usage = await eventually(async () => {
      const r = await get(s, '/v1/apps/busy/usage?from=1h');
      return r.body.totals?.requests === 5 ? r.body : undefined;
    }, { what: 'the requests in the rollup' });
    expect(usage.totals).toMatchObject({ requests: 5, bytesIn: 500, bytesOut: bytes, coldStarts: 1 });
    expect(usage.totals.containerSeconds).toBeGreaterThan(0);
    expect(usage.totals.memoryLimitGiBSeconds).toBeGreaterThan(0);
    expect(usage.step).toBe('minute');
    expect(usage.series.reduce((n: number, m: any) => n + m.requests, 0)).toBe(5);
    const metrics = await (await request(`${s.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(new RegExp(`fc_usage_requests_total\\{app="busy",host="${s.hostId}"[^}]*\\} 5`));
    expect(metrics).toMatch(new RegExp(`fc_usage_cold_starts_total\\{app="busy",host="${s.hostId}"[^}]*\\} 1`));
    expect(metrics).toMatch(new RegExp(`fc_usage_bytes_out_total\\{app="busy",host="${s.hostId}"[^}]*\\} ${bytes}`));

    // The CLI's table: every app, one row each.
    const tables: string[][][] = [];
    expect(await usageCommand(new ApiClient(s.apiUrl, READ_TOKEN), undefined, { since: '1h' }, (head, rows) => tables.push([head, ...rows]))).toBe(0);
    expect(tables[0]?.[0]).toContain('CPU-S');
    expect(tables[0]?.slice(1).map((r) => [r[0], r[5], r[8]])).toEqual([['busy', '5', '1']]);

    // The container's end reports its last figures: still 5, nothing counted twice.
    const containers = (await s.api('GET', '/v1/apps/busy/containers')).body.containers as { id: string }[];
    await s.api('DELETE', `/v1/containers/${containers[0]?.id}`);
    await eventually(() => runtime.containers.size === 0, { what: 'the container to be removed' });
    // Its final report applied: its cursor is gone.
    await eventually(async () => (await s.stack.store.usageCursors(s.hostId)).length === 0, { timeout: 5000, what: 'the final usage report' });
    expect((await get(s, '/v1/apps/busy/usage?from=1h')).body.totals).toMatchObject({ requests: 5, coldStarts: 1 });
    // The app deleted: its usage stays readable (it is billed).
    expect((await s.api('DELETE', '/v1/apps/busy')).status).toBe(200);
    expect((await get(s, '/v1/apps/busy/usage?from=1h')).body.totals.requests).toBe(5);
  });

  it('refuses without a token, answers 404 for an unknown app, bounds from and to', async () => {
    const s = await stack({ FC_USAGE_RETENTION: '2h' });
    await app(s, 'idle');
    expect((await get(s, '/v1/apps/idle/usage', null)).status).toBe(401);
    expect((await get(s, '/v1/apps/idle/usage')).status).toBe(200);
    expect((await get(s, '/v1/apps/nobody/usage')).body).toMatchObject({ code: 'FC_ERR_APP_NOT_FOUND' });
    // From long before the retention: read from the retention's start only.
    const old = await get(s, '/v1/apps/idle/usage?from=1970-01-01T00:00:00Z&step=hour');
    expect(old.status).toBe(200);
    expect(Date.now() - old.body.from).toBeLessThanOrEqual(2 * 3_600_000 + 60_000);
    for (const q of ['from=1h&to=2h', 'from=soon', 'step=second', 'from=30d&step=minute', 'to=' + 'x'.repeat(50)]) {
      const r = await get(s, `/v1/apps/idle/usage?${q}`);
      if (q === 'from=30d&step=minute') {
        // Clamped to the 2 h retention: a minute step is fine then.
        expect(r.status, q).toBe(200);
        continue;
      }
      expect(r.status, q).toBe(400);
      expect(r.body.code, q).toBe('FC_ERR_INVALID_FIELD');
    }
  });
});

describe('usage cursors at a dispatcher\'s start', () => {
  it('forgets the cursors of containers the engine no longer runs (they died while no dispatcher ran)', async () => {
    const prefix = uniqueName('fctest');
    const hostId = uniqueName('fctest-host');
    const before = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
    try {
      await before.reportUsage(hostId, [{ container: 'gone-1', app: 'a', totals: { ...zeroUsage(), requests: 4 }, final: false }], Date.now(), 3_600_000);
      await before.reportUsage('other-host', [{ container: 'elsewhere-1', app: 'a', totals: zeroUsage(), final: false }], Date.now(), 3_600_000);
    } finally {
      await before.close();
    }
    runtime = new FakeRuntime();
    t = await startTestStack({ runtime, prefix, hostId, env: { FC_USAGE_INTERVAL: '1s' } });
    expect(await t.stack.store.usageCursors(hostId)).toEqual([]);
    // Another host's are not this dispatcher's to touch; the usage already counted stays.
    expect((await t.stack.store.usageCursors('other-host')).map((c) => c.container)).toEqual(['elsewhere-1']);
    expect((await t.stack.store.readUsage('a', Date.now() - 3_600_000, Date.now() + 60_000)).reduce((n, m) => n + m.usage.requests, 0)).toBe(4);
  });
});
