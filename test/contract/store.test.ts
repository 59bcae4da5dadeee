// One contract, two CMDBs: every Store implementation must pass the same tests.

import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CmdbCache } from '../../src/cmdb/cache.js';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { RedisStore } from '../../src/cmdb/redis-store.js';
import type { AppEvent, Change, ContainerStats, Store } from '../../src/cmdb/types.js';
import type { NewLogLine } from '../../src/cmdb/logs.js';
import { zeroUsage, type UsageReport, type UsageTotals } from '../../src/cmdb/usage.js';
import { cmdbKeys } from '../../src/cmdb/keys.js';
import { FcError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { redisUrl, uniqueName } from '../helpers/env.js';
import { dropPrefix } from '../helpers/redis.js';
import { appSpec, newContainer } from '../helpers/specs.js';
import { startOwnRedis } from '../helpers/redis-server.js';
import { eventually } from '../helpers/wait.js';

interface Harness {
  store: Store;
  cleanup(): Promise<void>;
}

const implementations: [string, () => Promise<Harness>][] = [
  ['memory', async () => ({ store: new MemoryStore(), cleanup: async () => {} })],
  [
    'redis',
    async () => {
      const prefix = uniqueName('fctest');
      const store = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
      return { store, cleanup: async () => { await store.close(); await dropPrefix(prefix); } };
    },
  ],
];

function event(app: string, at: number, overrides: Partial<AppEvent> = {}): AppEvent {
  return { at, app, kind: 'scale-out', container: null, host: null, reason: `event at ${at}`, from: 1, to: 2, ...overrides };
}

function stats(id: string, host: string, overrides: Partial<ContainerStats> = {}): ContainerStats {
  return {
    id, app: 'a', host, cpus: 0.5, inflight: 1, held: 0, rps: 12.5, meanMs: 40, p95Ms: 90, throttledShare: 0.03, cpuUsage: 0.2,
    lastRequestAt: 900, at: 1_000, ...overrides,
  };
}

/** Subscribes, runs `act`, then makes one write that publishes and returns what came before its change. */
async function changesDuring(store: Store, act: () => Promise<void>): Promise<Change[]> {
  const changes: Change[] = [];
  const sub = await store.subscribe({ onChange: (c) => changes.push(c), onResync: () => {} });
  try {
    await act();
    await store.heartbeatHost({ id: 'marker', dispatcherUrl: 'http://x:1', capacity: 1, startedAt: 1, heartbeatAt: 1 });
    await eventually(() => changes.some((c) => c.kind === 'host'), { what: 'the marker change' });
    return changes.filter((c) => c.kind !== 'host');
  } finally {
    await sub.unsubscribe();
  }
}

/** Every change (hosts too) published while `act` runs, up to a marker app's creation. */
async function changesDuringAll(store: Store, act: () => Promise<void>): Promise<Change[]> {
  const changes: Change[] = [];
  const sub = await store.subscribe({ onChange: (c) => changes.push(c), onResync: () => {} });
  try {
    await act();
    await store.createApp(appSpec({ name: 'marker', hostnames: ['marker.test'] }), 1);
    await eventually(() => changes.some((c) => c.kind === 'app' && c.value.name === 'marker'), { what: 'the marker change' });
    return changes;
  } finally {
    await sub.unsubscribe();
  }
}

async function rejection(p: Promise<unknown>): Promise<FcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof FcError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

describe.each(implementations)('Store contract: %s', (_name, make) => {
  let h: Harness;
  let store: Store;
  beforeEach(async () => {
    h = await make();
    store = h.store;
  });
  afterEach(async () => h.cleanup());

  describe('apps', () => {
    it('creates an app with a revision and finds it by name and hostname', async () => {
      const app = await store.createApp(appSpec({ name: 'blog', hostnames: ['blog.test', 'www.blog.test'], env: {}, volumes: [] }), 5_000);
      expect(app).toMatchObject({ name: 'blog', createdAt: 5_000, updatedAt: 5_000, env: {}, volumes: [] });
      expect(app.rev).toBeGreaterThan(0);
      expect(await store.getApp('blog')).toEqual(app);
      expect(await store.appForHostname('www.blog.test')).toEqual(app);
      expect(await store.appForHostname('other.test')).toBeNull();
      expect((await store.listApps()).map((a) => a.name)).toEqual(['blog']);
    });

    it('keeps empty objects and arrays, unicode and commands exactly', async () => {
      const spec = appSpec({ name: 'exact', env: { GREETING: 'héllo "wörld"', EMPTY: '' }, command: ['sh', '-c', 'echo {} []'], volumes: [] });
      await store.createApp(spec, 1);
      const back = await store.getApp('exact');
      expect(back).toMatchObject({ env: spec.env, command: spec.command, volumes: [] });
    });

    it('refuses a second app with the same name', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      const err = await rejection(store.createApp(appSpec({ name: 'a', hostnames: ['other.test'] }), 2));
      expect(err.code).toBe('FC_ERR_APP_EXISTS');
    });

    it('refuses a hostname another app serves, naming both, and stores nothing', async () => {
      await store.createApp(appSpec({ name: 'a', hostnames: ['shared.test'] }), 1);
      const err = await rejection(store.createApp(appSpec({ name: 'b', hostnames: ['b.test', 'shared.test'] }), 2));
      expect(err.code).toBe('FC_ERR_HOSTNAME_TAKEN');
      expect(err.details).toMatchObject({ value: 'shared.test', app: 'a' });
      expect(await store.getApp('b')).toBeNull();
      expect(await store.appForHostname('b.test')).toBeNull();
    });

    it('updates an app, releasing hostnames it dropped', async () => {
      const first = await store.createApp(appSpec({ name: 'a', hostnames: ['one.test', 'two.test'] }), 1);
      const updated = await store.updateApp(appSpec({ name: 'a', hostnames: ['two.test', 'three.test'], image: 'img:2' }), 9);
      expect(updated.rev).toBeGreaterThan(first.rev);
      expect(updated).toMatchObject({ createdAt: 1, updatedAt: 9, image: 'img:2' });
      expect(await store.appForHostname('one.test')).toBeNull();
      expect((await store.appForHostname('three.test'))?.name).toBe('a');
      await store.createApp(appSpec({ name: 'b', hostnames: ['one.test'] }), 10);
      const err = await rejection(store.updateApp(appSpec({ name: 'a', hostnames: ['one.test'] }), 11));
      expect(err.code).toBe('FC_ERR_HOSTNAME_TAKEN');
      expect((await rejection(store.updateApp(appSpec({ name: 'nope' }), 1))).code).toBe('FC_ERR_APP_NOT_FOUND');
    });

    it('deletes an app: hostnames freed, unstarted entries gone, running ones draining', async () => {
      await store.createApp(appSpec({ name: 'a', hostnames: ['a.test'] }), 1);
      const registered = (await store.registerContainer(newContainer('a'))).entry;
      const running = (await store.registerContainer(newContainer('a'))).entry;
      await store.transitionContainer(running.id, ['registered'], 'ready', { address: '10.0.0.2:8080' });
      await store.deleteApp('a');
      expect(await store.getApp('a')).toBeNull();
      expect(await store.appForHostname('a.test')).toBeNull();
      expect(await store.getContainer(registered.id)).toBeNull();
      expect((await store.getContainer(running.id))?.state).toBe('draining');
      expect((await rejection(store.deleteApp('a'))).code).toBe('FC_ERR_APP_NOT_FOUND');
    });
  });

  describe('container entries', () => {
    beforeEach(async () => {
      await store.createApp(appSpec({ name: 'a', maxContainers: 2 }), 1);
    });

    it('registers within maxContainers, not counting draining entries', async () => {
      const one = await store.registerContainer(newContainer('a'));
      expect(one.created).toBe(true);
      expect(one.entry.rev).toBeGreaterThan(0);
      await store.registerContainer(newContainer('a'));
      const err = await rejection(store.registerContainer(newContainer('a')));
      expect(err.code).toBe('FC_ERR_MAX_CONTAINERS');
      expect(err.details).toMatchObject({ app: 'a', live: 2, maxContainers: 2 });
      await store.transitionContainer(one.entry.id, ['registered'], 'draining');
      expect((await store.registerContainer(newContainer('a'))).created).toBe(true);
    });

    it('with a guard, drains only while the app keeps more ready entries than asked, however many race', async () => {
      await store.updateApp(appSpec({ name: 'a', maxContainers: 4 }), 2);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { entry } = await store.registerContainer(newContainer('a'));
        await store.transitionContainer(entry.id, ['registered'], 'ready');
        ids.push(entry.id);
      }
      const starting = (await store.registerContainer(newContainer('a'))).entry;
      await store.transitionContainer(starting.id, ['registered'], 'starting');
      // Three ready, one starting (which does not count): at most two may go with a floor of one.
      const results = await Promise.all(ids.map((id) => store.transitionContainer(id, ['ready'], 'draining', {}, { appReadyAbove: 1 })));
      expect(results.filter((r) => r !== null)).toHaveLength(2);
      const states = (await store.listContainers({ app: 'a' })).map((e) => e.state).sort();
      expect(states).toEqual(['draining', 'draining', 'ready', 'starting']);
      // Without a guard the same move goes through.
      const last = ids.find((id) => results[ids.indexOf(id)] === null) as string;
      expect(await store.transitionContainer(last, ['ready'], 'draining')).toMatchObject({ state: 'draining' });
    });

    it('refuses entries for an unknown app', async () => {
      expect((await rejection(store.registerContainer(newContainer('ghost')))).code).toBe('FC_ERR_APP_NOT_FOUND');
    });

    it('with ifFewerThan returns an existing live entry, ready first, once there are enough', async () => {
      const first = (await store.registerContainer(newContainer('a'))).entry;
      const second = (await store.registerContainer(newContainer('a'))).entry;
      await store.transitionContainer(second.id, ['registered'], 'ready');
      const again = await store.registerContainer(newContainer('a'), { ifFewerThan: 1 });
      expect(again.created).toBe(false);
      expect(again.entry.id).toBe(second.id);
      expect(first.id).not.toBe(second.id);
      expect((await store.registerContainer(newContainer('a'), { ifFewerThan: 2 })).created).toBe(false);
      await store.transitionContainer(first.id, ['registered'], 'draining');
      expect((await store.registerContainer(newContainer('a'), { ifFewerThan: 2 })).created).toBe(true);
    });

    it('with ifFewerThan returns the oldest of equally ranked entries', async () => {
      await store.registerContainer(newContainer('a', { createdAt: 50 }));
      const oldest = (await store.registerContainer(newContainer('a', { createdAt: 10 }))).entry;
      for (let i = 0; i < 5; i++) {
        expect((await store.registerContainer(newContainer('a'), { ifFewerThan: 1 })).entry.id).toBe(oldest.id);
      }
    });

    it('creates exactly one entry when many register with ifFewerThan 1 at once', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, () => store.registerContainer(newContainer('a'), { ifFewerThan: 1 })));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.entry.id)).size).toBe(1);
      expect(await store.listContainers({ app: 'a' })).toHaveLength(1);
    });

    it('transitions only from the expected states, applying the patch', async () => {
      const c = (await store.registerContainer(newContainer('a', { lastError: 'earlier failure' }))).entry;
      expect(await store.transitionContainer(c.id, ['ready'], 'draining')).toBeNull();
      const starting = await store.transitionContainer(c.id, ['registered'], 'starting', { startedAt: 50, lastError: null, cpus: 0.3 });
      expect(starting).toMatchObject({ state: 'starting', startedAt: 50, lastError: null, cpus: 0.3, host: 'host-a' });
      expect(starting!.rev).toBeGreaterThan(c.rev);
      expect(await store.getContainer(c.id)).toEqual(starting);
      expect(await store.transitionContainer('missing', ['registered'], 'starting')).toBeNull();
    });

    it('lets exactly one of many concurrent transitions win', async () => {
      const c = (await store.registerContainer(newContainer('a'))).entry;
      const results = await Promise.all(Array.from({ length: 10 }, () => store.transitionContainer(c.id, ['registered'], 'starting')));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
    });

    it('deletes the entry when it goes', async () => {
      const c = (await store.registerContainer(newContainer('a'))).entry;
      const gone = await store.transitionContainer(c.id, ['registered'], 'gone');
      expect(gone?.state).toBe('gone');
      expect(await store.getContainer(c.id)).toBeNull();
      expect(await store.listContainers()).toEqual([]);
      expect(await store.listContainers({ app: 'a' })).toEqual([]);
    });

    it('with surge allows that many entries beyond maxContainers, and no more', async () => {
      await store.registerContainer(newContainer('a'));
      await store.registerContainer(newContainer('a'));
      expect((await rejection(store.registerContainer(newContainer('a'), { surge: 0 }))).code).toBe('FC_ERR_MAX_CONTAINERS');
      const extra = await store.registerContainer(newContainer('a'), { surge: 1 });
      expect(extra.created).toBe(true);
      const err = await rejection(store.registerContainer(newContainer('a'), { surge: 1 }));
      expect(err.code).toBe('FC_ERR_MAX_CONTAINERS');
      expect(err.details).toMatchObject({ app: 'a', live: 3, maxContainers: 2, surge: 1 });
      expect(err.message).toContain('surge of 1');
      expect((await store.listContainers({ app: 'a' })).filter((c) => c.state === 'registered')).toHaveLength(3);
      // Without a surge the app stays over its limit until entries go.
      expect((await rejection(store.registerContainer(newContainer('a')))).details).toMatchObject({ live: 3, maxContainers: 2 });
    });

    it('with surge still registers only one of many racing replacements', async () => {
      await store.registerContainer(newContainer('a'));
      await store.registerContainer(newContainer('a'));
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => store.registerContainer(newContainer('a'), { surge: 1 })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(await store.listContainers({ app: 'a' })).toHaveLength(3);
    });

    it('with ignoreHosts neither counts nor returns the entries on those hosts (a dead host\'s)', async () => {
      const dead1 = (await store.registerContainer(newContainer('a', { host: 'dead' }))).entry;
      await store.transitionContainer(dead1.id, ['registered'], 'ready', { address: '10.0.0.9:8080' });
      await store.registerContainer(newContainer('a', { host: 'dead' }));
      // maxContainers 2, both on the dead host: counted, the app is full.
      expect((await rejection(store.registerContainer(newContainer('a', { host: 'live' })))).code).toBe('FC_ERR_MAX_CONTAINERS');
      expect((await store.registerContainer(newContainer('a', { host: 'live' }), { ifFewerThan: 1 })).created).toBe(false);
      // Ignored: the ready one on the dead host is not handed back, and a replacement fits.
      const fresh = await store.registerContainer(newContainer('a', { host: 'live' }), { ifFewerThan: 1, ignoreHosts: ['dead'] });
      expect(fresh.created).toBe(true);
      expect(fresh.entry.host).toBe('live');
      // The one on the live host counts: the fewer-than guard still holds, and so does the limit.
      const again = await store.registerContainer(newContainer('a', { host: 'live' }), { ifFewerThan: 1, ignoreHosts: ['dead'] });
      expect(again).toMatchObject({ created: false, entry: { id: fresh.entry.id } });
      await store.registerContainer(newContainer('a', { host: 'live' }), { ignoreHosts: ['dead'] });
      const err = await rejection(store.registerContainer(newContainer('a', { host: 'live' }), { ignoreHosts: ['dead', 'other'] }));
      expect(err.details).toMatchObject({ live: 2, maxContainers: 2 });
      expect(await store.listContainers({ app: 'a' })).toHaveLength(4);
    });

    it('lists entries by app and by host', async () => {
      await store.createApp(appSpec({ name: 'b', hostnames: ['b.test'] }), 1);
      await store.registerContainer(newContainer('a', { host: 'h1' }));
      await store.registerContainer(newContainer('a', { host: 'h2' }));
      await store.registerContainer(newContainer('b', { host: 'h1' }));
      expect(await store.listContainers()).toHaveLength(3);
      expect(await store.listContainers({ app: 'a' })).toHaveLength(2);
      expect(await store.listContainers({ host: 'h1' })).toHaveLength(2);
      expect(await store.listContainers({ app: 'a', host: 'h1' })).toHaveLength(1);
    });
  });

  describe('app events', () => {
    it('lists an app\'s events newest first, up to the limit, exactly as appended', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      const exact = event('a', 3, { kind: 'scale-up', container: 'a-c1', host: 'h1', reason: 'p95 812 ms > target 500 ms — ünïcode', from: 0.5, to: 0.75 });
      await store.appendEvent(event('a', 1));
      await store.appendEvent(event('a', 2, { kind: 'manual', from: null, to: null }));
      await store.appendEvent(exact);
      await store.createApp(appSpec({ name: 'b' }), 1);
      await store.appendEvent(event('b', 4));
      expect((await store.listEvents('a', 10)).map((e) => e.at)).toEqual([3, 2, 1]);
      expect(await store.listEvents('a', 1)).toEqual([exact]);
      expect((await store.listEvents('a', 10))[1]).toMatchObject({ kind: 'manual', from: null, to: null, container: null, host: null });
      expect(await store.listEvents('a', 0)).toEqual([]);
      expect((await store.listEvents('b', 10)).map((e) => e.at)).toEqual([4]);
      expect(await store.listEvents('nobody', 10)).toEqual([]);
    });

    it('keeps only the newest 200 per app', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      for (let i = 0; i < 205; i++) await store.appendEvent(event('a', i));
      const all = await store.listEvents('a', 1000);
      expect(all).toHaveLength(200);
      expect(all[0]?.at).toBe(204);
      expect(all.at(-1)?.at).toBe(5);
    });

    it('publishes no change for an event', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      const changes = await changesDuring(store, () => store.appendEvent(event('a', 1)));
      expect(changes).toEqual([]);
      expect(await store.listEvents('a', 10)).toHaveLength(1);
    });

    it('forgets an app\'s events when the app is deleted', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      await store.appendEvent(event('a', 1));
      await store.deleteApp('a');
      expect(await store.listEvents('a', 10)).toEqual([]);
      // Its containers draining after the deletion bring nothing back.
      await store.appendEvent(event('a', 2, { kind: 'drain' }));
      await store.createApp(appSpec({ name: 'a' }), 2);
      expect(await store.listEvents('a', 10)).toEqual([]);
    });

    it('drops events of an app that does not exist', async () => {
      await store.appendEvent(event('ghost', 1));
      expect(await store.listEvents('ghost', 10)).toEqual([]);
    });
  });

  describe('usage for billing', () => {
    const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
    const u = (o: Partial<UsageTotals> = {}): UsageTotals => ({ ...zeroUsage(), ...o });
    const report = (container: string, app: string, o: Partial<UsageTotals>, final = false): UsageReport => ({ container, app, totals: u(o), final });
    const DAY = 24 * 3600 * 1000;

    it('adds what cumulative figures grew since the cursor to the minute reported in, and moves the cursor', async () => {
      await store.reportUsage('h1', [report('c1', 'a', { cpuUs: 1_000, requests: 3, coldStarts: 1 }), report('c2', 'b', { cpuUs: 50 })], T0 + 5_000, DAY);
      await store.reportUsage('h1', [report('c1', 'a', { cpuUs: 4_000, requests: 5, coldStarts: 1, bytesOut: 9_007_199_254_740 })], T0 + 65_000, DAY);
      const minutes = await store.readUsage('a', T0, T0 + 120_000);
      expect(minutes).toEqual([
        { at: T0, usage: u({ cpuUs: 1_000, requests: 3, coldStarts: 1 }) },
        { at: T0 + 60_000, usage: u({ cpuUs: 3_000, requests: 2, bytesOut: 9_007_199_254_740 }) },
      ]);
      expect(await store.readUsage('b', T0, T0 + 120_000)).toEqual([{ at: T0, usage: u({ cpuUs: 50 }) }]);
      const cursors = (await store.usageCursors('h1')).sort((x, y) => x.container.localeCompare(y.container));
      expect(cursors).toEqual([
        { container: 'c1', app: 'a', at: T0 + 65_000, totals: u({ cpuUs: 4_000, requests: 5, coldStarts: 1, bytesOut: 9_007_199_254_740 }) },
        { container: 'c2', app: 'b', at: T0 + 5_000, totals: u({ cpuUs: 50 }) },
      ]);
      expect(await store.usageCursors('h2')).toEqual([]);
    });

    it('counts a report applied twice once (a retry, or an adopting dispatcher reporting the same figures)', async () => {
      const r = report('c1', 'a', { cpuUs: 7_000, containerMs: 60_000 });
      await store.reportUsage('h1', [r], T0, DAY);
      await store.reportUsage('h1', [r], T0 + 1_000, DAY);
      await store.reportUsage('h1', [report('c1', 'a', { cpuUs: 6_000, containerMs: 61_000 })], T0 + 2_000, DAY);
      expect(await store.readUsage('a', T0, T0 + 60_000)).toEqual([{ at: T0, usage: u({ cpuUs: 7_000, containerMs: 61_000 }) }]);
      // A figure read short does not move the cursor back, so it is not counted again later.
      expect((await store.usageCursors('h1'))[0]?.totals).toMatchObject({ cpuUs: 7_000, containerMs: 61_000 });
    });

    it('a final report counts its growth and removes the cursor; dropped cursors are forgotten', async () => {
      await store.reportUsage('h1', [report('c1', 'a', { cpuUs: 10 }), report('c2', 'a', { cpuUs: 1 }), report('c3', 'a', { cpuUs: 1 })], T0, DAY);
      await store.reportUsage('h1', [report('c1', 'a', { cpuUs: 25 }, true)], T0, DAY);
      await store.dropUsageCursors('h1', ['c2']);
      expect((await store.usageCursors('h1')).map((c) => c.container)).toEqual(['c3']);
      expect(await store.readUsage('a', T0, T0 + 1)).toEqual([{ at: T0, usage: u({ cpuUs: 27 }) }]);
    });

    it('reads only the minutes in [from, to) across hours, and keeps them past the app\'s deletion', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      for (const [i, at] of [T0 - 60_000, T0, T0 + 3_600_000, T0 + 7_200_000].entries()) {
        await store.reportUsage('h1', [report('c1', 'a', { requests: (i + 1) * 10 })], at, DAY);
      }
      await store.deleteApp('a');
      expect((await store.readUsage('a', T0, T0 + 7_200_000)).map((m) => [m.at, m.usage.requests])).toEqual([[T0, 10], [T0 + 3_600_000, 10]]);
      expect(await store.readUsage('a', T0 + 10, T0 + 20)).toEqual([]);
      expect(await store.readUsage('nobody', T0, T0 + DAY)).toEqual([]);
    });

    it('publishes no change', async () => {
      const changes = await changesDuring(store, () => store.reportUsage('h1', [report('c1', 'a', { requests: 1 })], T0, DAY));
      expect(changes).toEqual([]);
    });
  });

  describe('app logs', () => {
    const line = (text: string, o: Partial<NewLogLine> = {}): NewLogLine => ({ at: 1_000, container: 'a-c1', host: 'h1', stream: 'stdout', text, ...o });

    it('keeps the newest lines per app with sequence numbers, and reads after a cursor, since a time, of a container', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      expect(await store.appendLogs('a', [line('one', { at: 1 }), line('two', { at: 2, stream: 'stderr' })], 100)).toBe(2);
      expect(await store.appendLogs('a', [line('three', { at: 3, container: 'a-c2' })], 100)).toBe(3);
      const all = await store.readLogs('a', { limit: 10, scan: 100 });
      expect(all.last).toBe(3);
      expect(all.lines.map((l) => [l.seq, l.text, l.stream, l.container])).toEqual([[1, 'one', 'stdout', 'a-c1'], [2, 'two', 'stderr', 'a-c1'], [3, 'three', 'stdout', 'a-c2']]);
      expect((await store.readLogs('a', { limit: 2, scan: 100 })).lines.map((l) => l.text)).toEqual(['two', 'three']);
      expect((await store.readLogs('a', { after: 1, limit: 10, scan: 100 })).lines.map((l) => l.text)).toEqual(['two', 'three']);
      expect((await store.readLogs('a', { after: 3, limit: 10, scan: 100 })).lines).toEqual([]);
      expect((await store.readLogs('a', { since: 2, limit: 10, scan: 100 })).lines.map((l) => l.text)).toEqual(['two', 'three']);
      expect((await store.readLogs('a', { container: 'a-c1', limit: 10, scan: 100 })).lines.map((l) => l.text)).toEqual(['one', 'two']);
      expect(await store.readLogs('nobody', { limit: 10, scan: 100 })).toEqual({ lines: [], last: 0 });
    });

    it('stores control characters, ANSI escapes, NUL and invalid surrogates exactly, and keeps only `keep` lines', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      const nasty = 'x\u0000y\u001b[31mred\u001b[0m\r\u0007 ünï "q" \\ \u2028\n';
      await store.appendLogs('a', [line(nasty)], 3);
      expect((await store.readLogs('a', { limit: 1, scan: 3 })).lines[0]?.text).toBe(nasty);
      for (let i = 0; i < 5; i++) await store.appendLogs('a', [line(`l${i}`)], 3);
      const page = await store.readLogs('a', { limit: 100, scan: 100 });
      expect(page.lines.map((l) => l.text)).toEqual(['l2', 'l3', 'l4']);
      expect(page.last).toBe(6);
    });

    it('drops lines of an app that does not exist, and forgets the log when the app is deleted (the sequence goes on)', async () => {
      expect(await store.appendLogs('ghost', [line('boo')], 10)).toBe(0);
      expect((await store.readLogs('ghost', { limit: 10, scan: 10 })).lines).toEqual([]);
      await store.createApp(appSpec({ name: 'a' }), 1);
      await store.appendLogs('a', [line('old')], 10);
      await store.deleteApp('a');
      expect(await store.appendLogs('a', [line('after delete')], 10)).toBe(0);
      await store.createApp(appSpec({ name: 'a' }), 2);
      expect((await store.readLogs('a', { limit: 10, scan: 10 })).lines).toEqual([]);
      expect(await store.appendLogs('a', [line('new')], 10)).toBe(2);
    });

    it('publishes no change', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      expect(await changesDuring(store, async () => { await store.appendLogs('a', [line('x')], 10); })).toEqual([]);
    });
  });

  describe('container stats', () => {
    it('replaces a host\'s stats with its latest report and lists every host\'s', async () => {
      await store.reportStats('h1', [stats('a-1', 'h1'), stats('a-2', 'h1')], 1_000, 5_000);
      await store.reportStats('h2', [stats('a-3', 'h2', { p95Ms: null, meanMs: null, throttledShare: null, cpuUsage: null, lastRequestAt: null })], 1_000, 5_000);
      await store.reportStats('h1', [stats('a-2', 'h1', { inflight: 7 })], 2_000, 5_000);
      const listed = (await store.listStats(2_000)).sort((x, y) => x.id.localeCompare(y.id));
      expect(listed.map((x) => `${x.id}@${x.host}`)).toEqual(['a-2@h1', 'a-3@h2']);
      expect(listed[0]).toEqual(stats('a-2', 'h1', { inflight: 7 }));
      expect(listed[1]).toMatchObject({ p95Ms: null, throttledShare: null, lastRequestAt: null });
    });

    it('lets a host\'s stats vanish once their time to live has passed', async () => {
      await store.reportStats('h1', [stats('a-1', 'h1')], 1_000, 5_000);
      await store.reportStats('h2', [stats('a-2', 'h2')], 3_000, 5_000);
      expect((await store.listStats(5_999)).map((x) => x.id).sort()).toEqual(['a-1', 'a-2']);
      expect((await store.listStats(6_000)).map((x) => x.id)).toEqual(['a-2']);
      expect(await store.listStats(8_000)).toEqual([]);
      await store.reportStats('h1', [], 9_000, 5_000);
      expect(await store.listStats(9_000)).toEqual([]);
    });

    it('publishes no change for a report', async () => {
      const changes = await changesDuring(store, () => store.reportStats('h1', [stats('a-1', 'h1')], 1_000, 5_000));
      expect(changes).toEqual([]);
    });
  });

  describe('hosts', () => {
    it('records heartbeats and removes hosts', async () => {
      await store.heartbeatHost({ id: 'h1', dispatcherUrl: 'http://10.0.0.1:8082', capacity: 10, startedAt: 1, heartbeatAt: 1 });
      const again = await store.heartbeatHost({ id: 'h1', dispatcherUrl: 'http://10.0.0.1:8082', capacity: 10, startedAt: 1, heartbeatAt: 5 });
      await store.heartbeatHost({ id: 'h2', dispatcherUrl: 'http://10.0.0.2:8082', capacity: 10, startedAt: 1, heartbeatAt: 5 });
      expect(again.heartbeatAt).toBe(5);
      expect((await store.listHosts()).map((x) => x.id).sort()).toEqual(['h1', 'h2']);
      await store.removeHost('h1');
      expect((await store.listHosts()).map((x) => x.id)).toEqual(['h2']);
    });
  });

  describe('cluster secret', () => {
    it('keeps the first secret offered; concurrent first callers agree on one', async () => {
      const offered = ['secret-a-0123456789', 'secret-b-0123456789', 'secret-c-0123456789'];
      const got = await Promise.all(offered.map((c) => store.clusterSecret(c)));
      expect(new Set(got).size).toBe(1);
      expect(offered).toContain(got[0]);
      expect(await store.clusterSecret('secret-d-0123456789')).toBe(got[0]);
    });
  });

  describe('host id leases', () => {
    it('claims a free host id, renews it for its owner and refuses another owner, saying for how long', async () => {
      expect(await store.claimHost('h1', 'owner-a', 5_000, Date.now())).toEqual({ held: true });
      expect(await store.claimHost('h1', 'owner-a', 5_000, Date.now())).toEqual({ held: true });
      const refused = await store.claimHost('h1', 'owner-b', 5_000, Date.now());
      expect(refused).toMatchObject({ held: false, owner: 'owner-a' });
      expect(refused.held === false && refused.ttlMs > 0 && refused.ttlMs <= 5_000).toBe(true);
      // Another host id is another lease.
      expect(await store.claimHost('h2', 'owner-b', 5_000, Date.now())).toEqual({ held: true });
    });

    it('a lease nobody renews runs out, and then another owner gets it', async () => {
      // A second: long enough that the refusal below is seen on a loaded machine, short enough to wait out.
      expect(await store.claimHost('h1', 'owner-a', 1_000, Date.now())).toEqual({ held: true });
      expect((await store.claimHost('h1', 'owner-b', 5_000, Date.now())).held).toBe(false);
      await eventually(async () => (await store.claimHost('h1', 'owner-b', 5_000, Date.now())).held, { timeout: 10_000, interval: 50, what: 'the lease to run out' });
      expect(await store.claimHost('h1', 'owner-a', 5_000, Date.now())).toMatchObject({ held: false, owner: 'owner-b' });
    });

    it('is released only by its owner', async () => {
      await store.claimHost('h1', 'owner-a', 5_000, Date.now());
      await store.releaseHost('h1', 'owner-b');
      expect((await store.claimHost('h1', 'owner-b', 5_000, Date.now())).held).toBe(false);
      await store.releaseHost('h1', 'owner-a');
      expect(await store.claimHost('h1', 'owner-b', 5_000, Date.now())).toEqual({ held: true });
    });
  });

  describe('probe', () => {
    it('answers one epoch every time, and the revision the writes reached', async () => {
      const first = await store.probe();
      expect(first.epoch).toMatch(/^[0-9a-f]{16}$/);
      const app = await store.createApp(appSpec({ name: 'p', hostnames: ['p.test'] }), 1);
      const second = await store.probe();
      expect(second.epoch).toBe(first.epoch);
      expect(second.rev).toBe(app.rev);
    });
  });

  describe('host drain mark', () => {
    const beat = (heartbeatAt: number) => ({ id: 'h1', dispatcherUrl: 'http://10.0.0.1:8082', capacity: 10, startedAt: 1, heartbeatAt });

    it('is set and cleared by setHostDrained, kept by heartbeats, and published', async () => {
      await store.heartbeatHost(beat(1));
      const changes = await changesDuringAll(store, async () => {
        const drained = await store.setHostDrained('h1', 500);
        expect(drained).toMatchObject({ id: 'h1', drainedAt: 500, heartbeatAt: 1 });
      });
      expect(changes.find((c) => c.kind === 'host' && c.value.id === 'h1')).toMatchObject({ op: 'put', value: { drainedAt: 500 } });
      // A heartbeat, even one that names a drain mark of its own, keeps the operator's.
      const beaten = await store.heartbeatHost({ ...beat(9), drainedAt: null } as never);
      expect(beaten).toMatchObject({ heartbeatAt: 9, drainedAt: 500 });
      expect((await store.listHosts())[0]).toMatchObject({ heartbeatAt: 9, drainedAt: 500 });
      const undrained = await store.setHostDrained('h1', null);
      expect(undrained?.drainedAt ?? null).toBeNull();
      expect((await store.heartbeatHost(beat(10))).drainedAt ?? null).toBeNull();
      expect(undrained!.rev).toBeGreaterThan(beaten.rev);
    });

    it('is null for an unknown host, which it does not create', async () => {
      expect(await store.setHostDrained('ghost', 5)).toBeNull();
      expect(await store.listHosts()).toEqual([]);
    });
  });

  describe('changes and snapshots', () => {
    it('publishes every write in revision order and snapshots at the latest revision', async () => {
      const changes: Change[] = [];
      const sub = await store.subscribe({ onChange: (c) => changes.push(c), onResync: () => {} });
      await store.createApp(appSpec({ name: 'a' }), 1);
      const c = (await store.registerContainer(newContainer('a'))).entry;
      await store.transitionContainer(c.id, ['registered'], 'starting');
      await store.transitionContainer(c.id, ['starting'], 'gone');
      await store.heartbeatHost({ id: 'h1', dispatcherUrl: 'http://x:1', capacity: 1, startedAt: 1, heartbeatAt: 1 });
      await eventually(() => changes.length >= 5, { what: 'five changes' });
      expect(changes.map((x) => `${x.kind}:${x.op}`)).toEqual(['app:put', 'container:put', 'container:put', 'container:delete', 'host:put']);
      const revs = changes.map((x) => x.rev);
      expect([...revs].sort((a, b) => a - b)).toEqual(revs);
      const snap = await store.snapshot();
      expect(snap.rev).toBe(revs.at(-1));
      expect(snap.apps.map((a) => a.name)).toEqual(['a']);
      expect(snap.containers).toEqual([]);
      expect(snap.hosts.map((x) => x.id)).toEqual(['h1']);
      await sub.unsubscribe();
    });

    it('keeps a cache in step with the store', async () => {
      await store.createApp(appSpec({ name: 'a', hostnames: ['a.test'] }), 1);
      const cache = await CmdbCache.open(store, silentLogger);
      try {
        expect(cache.appForHostname('a.test')?.name).toBe('a');
        const c = (await store.registerContainer(newContainer('a'))).entry;
        await eventually(() => cache.container(c.id), { what: 'the entry in the cache' });
        await store.transitionContainer(c.id, ['registered'], 'ready', { address: '1.2.3.4:8080' });
        await eventually(() => cache.container(c.id)?.state === 'ready', { what: 'ready in the cache' });
        expect([...cache.containersOf('a')].map((x) => x.address)).toEqual(['1.2.3.4:8080']);
        await store.updateApp(appSpec({ name: 'a', hostnames: ['b.test'] }), 2);
        await eventually(() => cache.appForHostname('b.test'), { what: 'the new hostname in the cache' });
        expect(cache.appForHostname('a.test')).toBeUndefined();
        await store.deleteApp('a');
        await eventually(() => cache.app('a') === undefined, { what: 'the app gone from the cache' });
        expect(cache.container(c.id)?.state).toBe('draining');
      } finally {
        await cache.close();
      }
    });

    it('syncs a cache exactly while the store is written to during its snapshot', async () => {
      const n = 5_000; // Redis reads this many apps in 50 chunks
      for (let at = 0; at < n; at += 500) {
        await Promise.all(Array.from({ length: 500 }, (_, k) => store.createApp(appSpec({ name: `t${at + k}`, hostnames: [`t${at + k}.test`] }), 1)));
      }
      await store.updateApp(appSpec({ name: 't0', hostnames: ['t0.test', 'moving.test'] }), 2);
      // Writers, until told to stop. One passes the name moving.test from app to app; four others
      // each change the names of apps of their own, delete apps and create them again, and add
      // and remove entries.
      let stop = false;
      const revs: number[] = [];
      const pick = (from: number, count: number) => from + Math.floor(Math.random() * count);
      // The memory store answers at once: let timers and the cache's sync run between writes.
      const breathe = () => new Promise((r) => setImmediate(r));
      const mover = async () => {
        let owner = 0;
        while (!stop) {
          const next = pick(1, n / 5 - 1);
          if (next === owner) continue;
          revs.push((await store.updateApp(appSpec({ name: `t${owner}`, hostnames: [`t${owner}.test`] }), 3)).rev);
          revs.push((await store.updateApp(appSpec({ name: `t${next}`, hostnames: [`t${next}.test`, 'moving.test'] }), 3)).rev);
          owner = next;
          await breathe();
        }
      };
      const changer = async (band: number) => {
        for (let w = 0; !stop; w++) {
          const i = pick((band * n) / 5, n / 5);
          const roll = Math.random();
          if (roll < 0.5) {
            revs.push((await store.updateApp(appSpec({ name: `t${i}`, hostnames: [`t${i}.test`, `v${w}.t${i}.test`] }), 3)).rev);
          } else if (roll < 0.8) {
            revs.push((await store.deleteApp(`t${i}`)).rev + 1);
            revs.push((await store.createApp(appSpec({ name: `t${i}`, hostnames: [`t${i}.test`, `again${w}.t${i}.test`] }), 4)).rev);
          } else {
            const entry = (await store.registerContainer(newContainer(`t${i}`))).entry;
            revs.push(entry.rev);
            if (Math.random() < 0.5) revs.push((await store.transitionContainer(entry.id, ['registered'], 'gone'))!.rev);
          }
          await breathe();
        }
      };
      const writers = Promise.all([mover(), changer(1), changer(2), changer(3), changer(4)]);
      let written: number[] = [];
      let cache: CmdbCache | undefined;
      try {
        await eventually(() => revs.length > 0, { what: 'the writers to begin' });
        cache = await CmdbCache.open(store, silentLogger);
        written = [...revs];
      } finally {
        stop = true;
        await writers;
      }
      try {
        // Writes the snapshot did not cover (newer than its revision) were made while it was read
        // (how many depends on the machine's load: 7 to dozens were seen).
        if (store.kind === 'redis') expect(written.filter((r) => r > cache!.snapshotRev).length).toBeGreaterThan(0);
        const marker = await store.heartbeatHost({ id: 'marker', dispatcherUrl: 'http://x:1', capacity: 1, startedAt: 1, heartbeatAt: 1 });
        await eventually(() => cache!.host('marker')?.rev === marker.rev, { what: 'the cache to catch up' });
        const apps = await store.listApps();
        expect(cache.allApps().length).toBe(apps.length);
        for (const a of apps) {
          expect(cache.app(a.name)).toEqual(a);
          for (const h of a.hostnames) expect(cache.appForHostname(h)?.name).toBe(a.name);
        }
        expect(cache.allContainers().map((c) => `${c.id}@${c.rev}`).sort()).toEqual((await store.listContainers()).map((c) => `${c.id}@${c.rev}`).sort());
      } finally {
        await cache.close();
      }
    });

    it('syncs a cache with an app of 100,000 host names and an app of 8 MB', async () => {
      const names = Array.from({ length: 100_000 }, (_, i) => `h${i}.many.test`);
      await store.createApp(appSpec({ name: 'many', hostnames: names }), 1);
      await store.createApp(appSpec({ name: 'huge', hostnames: ['huge.test'], env: { BIG: 'x'.repeat(8 * 2 ** 20) } }), 1);
      await store.createApp(appSpec({ name: 'plain', hostnames: ['plain.test'] }), 1);
      const cache = await CmdbCache.open(store, silentLogger);
      try {
        expect(cache.appForHostname('h0.many.test')?.name).toBe('many');
        expect(cache.appForHostname('h99999.many.test')?.name).toBe('many');
        expect(cache.app('huge')?.env.BIG?.length).toBe(8 * 2 ** 20);
        expect(cache.appForHostname('plain.test')?.name).toBe('plain');
        // Giving the names up releases them all.
        await store.updateApp(appSpec({ name: 'many', hostnames: ['few.test'] }), 2);
        await eventually(() => cache.appForHostname('few.test'), { what: 'the update in the cache' });
        expect(cache.appForHostname('h5.many.test')).toBeUndefined();
      } finally {
        await cache.close();
      }
    });

    it('never lets an older write undo a newer one in the cache', async () => {
      await store.createApp(appSpec({ name: 'a' }), 1);
      const cache = await CmdbCache.open(store, silentLogger);
      try {
        const c = (await store.registerContainer(newContainer('a'))).entry;
        const ready = (await store.transitionContainer(c.id, ['registered'], 'ready'))!;
        await eventually(() => cache.container(c.id)?.state === 'ready');
        cache.observe({ ...c, state: 'registered' });
        expect(cache.container(c.id)?.rev).toBe(ready.rev);
        const gone = (await store.transitionContainer(c.id, ['ready'], 'gone'))!;
        await eventually(() => cache.container(c.id) === undefined);
        cache.observe({ ...ready });
        expect(cache.container(c.id)).toBeUndefined();
        expect(gone.rev).toBeGreaterThan(ready.rev);
      } finally {
        await cache.close();
      }
    });
  });
});

describe('Redis store: events and stats expire in Redis too', () => {
  it('sets a 7-day expiry on an app\'s events and the stats\' time to live on a host\'s stats', async () => {
    const prefix = uniqueName('fctest');
    const store = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
    const admin = new Redis(redisUrl);
    try {
      const keys = cmdbKeys(prefix);
      await store.createApp(appSpec({ name: 'a' }), 1);
      await store.appendEvent(event('a', Date.now()));
      const eventsTtl = await admin.pttl(keys.events('a'));
      expect(eventsTtl).toBeGreaterThan(7 * 24 * 3600 * 1000 - 60_000);
      expect(eventsTtl).toBeLessThanOrEqual(7 * 24 * 3600 * 1000);
      await store.reportStats('h1', [stats('a-1', 'h1')], Date.now(), 4_000);
      const statsTtl = await admin.pttl(keys.stats('h1'));
      expect(statsTtl).toBeGreaterThan(0);
      expect(statsTtl).toBeLessThanOrEqual(4_000);
      await store.reportStats('h2', [stats('a-2', 'h2')], Date.now(), 1);
      await eventually(async () => (await admin.exists(keys.stats('h2'))) === 0, { what: 'the short-lived stats to expire' });
      expect((await store.listStats(Date.now())).map((x) => x.id)).toEqual(['a-1']);
    } finally {
      admin.disconnect();
      await store.close();
      await dropPrefix(prefix);
    }
  });
});

describe('Redis store: usage rollups and logs expire', () => {
  it('sets the retention past its hour on a rollup, and a 7-day expiry on a log', async () => {
    const prefix = uniqueName('fctest');
    const store = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
    const admin = new Redis(redisUrl);
    try {
      const keys = cmdbKeys(prefix);
      const now = Date.now();
      await store.reportUsage('h1', [{ container: 'c1', app: 'a', totals: { ...zeroUsage(), requests: 1 }, final: false }], now, 60_000);
      const ttl = await admin.pttl(keys.usage('a', now - (now % 3_600_000)));
      expect(ttl).toBeGreaterThan(60_000);
      expect(ttl).toBeLessThanOrEqual(60_000 + 3_600_000);
      await store.createApp(appSpec({ name: 'a' }), 1);
      await store.appendLogs('a', [{ at: now, container: 'c1', host: 'h1', stream: 'stdout', text: 'x' }], 10);
      expect(await admin.pttl(keys.logs('a'))).toBeGreaterThan(7 * 24 * 3600 * 1000 - 60_000);
    } finally {
      admin.disconnect();
      await store.close();
      await dropPrefix(prefix);
    }
  });
});

describe('Redis store: the cache resyncs after the subscriber reconnects', () => {
  it('catches up on a change published while it was disconnected', async () => {
    const prefix = uniqueName('fctest');
    const store = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
    const admin = new Redis(redisUrl);
    const cache = await CmdbCache.open(store, silentLogger);
    try {
      await store.createApp(appSpec({ name: 'a', hostnames: ['a.test'] }), 1);
      await eventually(() => cache.app('a'));
      let resyncs = 0;
      cache.on('resync', () => (resyncs += 1));
      // Cut every pub/sub connection; the app is deleted before the subscriber is back.
      await admin.client('KILL', 'TYPE', 'pubsub');
      await store.deleteApp('a');
      await store.createApp(appSpec({ name: 'b', hostnames: ['b.test'] }), 2);
      await eventually(() => resyncs > 0 && cache.app('b') !== undefined && cache.app('a') === undefined, {
        what: 'the cache to resync',
      });
      expect(cache.appForHostname('a.test')).toBeUndefined();
    } finally {
      await cache.close();
      admin.disconnect();
      await store.close();
      await dropPrefix(prefix);
    }
  });
});

describe('Redis store: a CMDB that lost its data has a new epoch', () => {
  it('writes a new epoch at the first probe after its keys are gone', async () => {
    const prefix = uniqueName('fctest');
    const store = await RedisStore.connect({ url: redisUrl, prefix, logger: silentLogger });
    try {
      const before = await store.probe();
      expect((await store.probe()).epoch).toBe(before.epoch);
      await dropPrefix(prefix);
      const after = await store.probe();
      expect(after.epoch).not.toBe(before.epoch);
      expect(after.rev).toBe(0);
      expect((await store.probe()).epoch).toBe(after.epoch);
    } finally {
      await store.close();
      await dropPrefix(prefix);
    }
  });
});

describe('Redis store: every call has a deadline', () => {
  it('fails calls to a stalled Redis (SIGSTOP) with FC_ERR_STORE_UNAVAILABLE instead of waiting out the stall', async () => {
    const own = await startOwnRedis();
    const store = await RedisStore.connect({ url: own.url, prefix: 'fctest', logger: silentLogger, commandTimeoutMs: 300 });
    try {
      await store.createApp(appSpec({ name: 'd', hostnames: ['d.test'] }), 1);
      own.pause();
      for (const call of [store.getApp('d'), store.createApp(appSpec({ name: 'e', hostnames: ['e.test'] }), 2), store.snapshot(), store.ping(), store.probe(), store.claimHost('h', 'o', 1000)]) {
        expect((await rejection(call)).code).toBe('FC_ERR_STORE_UNAVAILABLE');
      }
      own.resume();
      await eventually(async () => (await store.getApp('d'))?.name === 'd', { what: 'Redis to answer again' });
    } finally {
      own.resume();
      await store.close();
      await own.cleanup();
    }
  });
});

describe('Redis store: a write answered unavailable is not applied later', () => {
  it('does not send a command again once Redis is back (its caller was told 503)', async () => {
    const own = await startOwnRedis({ persistent: true });
    const store = await RedisStore.connect({ url: own.url, prefix: 'fctest', logger: silentLogger, commandTimeoutMs: 300 });
    try {
      await own.kill();
      const late = store.createApp(appSpec({ name: 'late', hostnames: ['late.test'] }), 1);
      const restart = own.restart();
      expect((await rejection(late)).code).toBe('FC_ERR_STORE_UNAVAILABLE');
      await restart;
      await eventually(async () => (await store.ping().then(() => true, () => false)), { what: 'Redis to answer again' });
      // A command queued for the reconnection would have gone out first on this connection, before
      // the ping that answered and this read.
      expect(await store.getApp('late')).toBeNull();
    } finally {
      await store.close();
      await own.cleanup();
    }
  });
});
