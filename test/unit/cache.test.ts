// The CMDB cache against snapshots read in pieces (as RedisStore reads them): each object may be
// of a different moment, and the changes made while the snapshot was read arrive around it. The
// cache must end up exactly where the CMDB is.

import { describe, expect, it } from 'vitest';
import { CmdbCache } from '../../src/cmdb/cache.js';
import type { App, Change, ChangeListener, Snapshot, Store } from '../../src/cmdb/types.js';
import { ManualClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { appSpec } from '../helpers/specs.js';

const app = (name: string, rev: number, hostnames: string[], overrides: Partial<App> = {}): App => ({
  ...appSpec({ name, hostnames }), rev, createdAt: 1, updatedAt: rev, ...overrides,
});

const put = (value: App): Change => ({ kind: 'app', op: 'put', rev: value.rev, value });
const del = (value: App, rev: number): Change => ({ kind: 'app', op: 'delete', rev, id: value.name, value });

/** A store whose snapshot is `snapshot`, with `during` published while it is read. */
function scriptedStore(snapshot: Snapshot, during: Change[]): Store & { publish(c: Change): void } {
  let listener: ChangeListener | undefined;
  return {
    kind: 'memory',
    async subscribe(l: ChangeListener) {
      listener = l;
      return { unsubscribe: async () => {} };
    },
    async snapshot() {
      for (const c of during) listener?.onChange(structuredClone(c));
      return structuredClone(snapshot);
    },
    publish(c: Change) {
      listener?.onChange(structuredClone(c));
    },
  } as unknown as Store & { publish(c: Change): void };
}

describe('CmdbCache with a snapshot read in pieces', () => {
  // At rev 10 the snapshot begins. Then a (rev 11) gives up shop.test and b (rev 12) takes it.
  // The snapshot read a before its change and b after its own.
  const aBefore = app('a', 8, ['shop.test']);
  const aAfter = app('a', 11, ['a.test']);
  const bAfter = app('b', 12, ['shop.test', 'b.test']);

  it.each([
    ['a read first', [aBefore, bAfter]],
    ['b read first', [bAfter, aBefore]],
  ])('a host name moved between apps meanwhile ends with its new app (%s)', async (_name, apps) => {
    const store = scriptedStore({ rev: 10, apps, containers: [], hosts: [] }, [put(aAfter), put(bAfter)]);
    const cache = await CmdbCache.open(store, silentLogger);
    expect(cache.appForHostname('shop.test')?.name).toBe('b');
    expect(cache.appForHostname('a.test')?.name).toBe('a');
    expect(cache.appForHostname('b.test')?.name).toBe('b');
    expect(cache.app('a')?.hostnames).toEqual(['a.test']);
    // Later, b is deleted: the name goes with it, a keeps its own.
    store.publish(del(bAfter, 13));
    expect(cache.appForHostname('shop.test')).toBeUndefined();
    expect(cache.appForHostname('a.test')?.name).toBe('a');
    await cache.close();
  });

  it('drops an app deleted before its piece was read, and ignores a late write of it', async () => {
    const gone = app('gone', 9, ['gone.test']);
    const store = scriptedStore({ rev: 10, apps: [], containers: [], hosts: [] }, [del(gone, 11)]);
    const cache = await CmdbCache.open(store, silentLogger);
    store.publish(put(gone));
    expect(cache.app('gone')).toBeUndefined();
    expect(cache.appForHostname('gone.test')).toBeUndefined();
    await cache.close();
  });

  it('keeps an app read newer than its change, and adds one created meanwhile', async () => {
    const updated = app('u', 12, ['u2.test']);
    const created = app('c', 11, ['c.test']);
    const store = scriptedStore({ rev: 10, apps: [updated], containers: [], hosts: [] }, [put(created), put(updated)]);
    const cache = await CmdbCache.open(store, silentLogger);
    expect(cache.app('u')?.rev).toBe(12);
    expect(cache.appForHostname('u2.test')?.name).toBe('u');
    expect(cache.appForHostname('c.test')?.name).toBe('c');
    // An older write of u arriving late does not undo the newer one.
    store.publish(put(app('u', 10, ['u1.test'])));
    expect(cache.appForHostname('u1.test')).toBeUndefined();
    expect(cache.app('u')?.hostnames).toEqual(['u2.test']);
    await cache.close();
  });
});

describe('CmdbCache holds apps compactly', () => {
  it('shares an empty env, frozen, and keeps an app\'s own env as it is', async () => {
    const apps = [app('a', 1, ['a.test']), app('b', 2, ['b.test']), app('e', 3, ['e.test'], { env: { APP_ENV: 'production' } })];
    const cache = await CmdbCache.open(scriptedStore({ rev: 3, apps, containers: [], hosts: [] }, []), silentLogger);
    const [a, b, e] = ['a', 'b', 'e'].map((n) => cache.app(n) as App) as [App, App, App];
    expect(a.env).toBe(b.env);
    expect(Object.isFrozen(a.env)).toBe(true);
    expect(() => {
      a.env.X = '1';
    }).toThrow(TypeError);
    expect(b.env).toEqual({});
    expect(e.env).toEqual({ APP_ENV: 'production' });
    expect(Object.isFrozen(e.env)).toBe(false);
    expect(a.volumes).toEqual([]);
    expect(a.volumes).toBe(b.volumes);
    expect({ ...a, rev: 0, name: '', hostnames: [], updatedAt: 0 }).toEqual({ ...appSpec(), rev: 0, name: '', hostnames: [], createdAt: 1, updatedAt: 0 });
    await cache.close();
  });
});

describe('CmdbCache views without copies', () => {
  it('counts and walks the apps it holds, following puts and deletes', async () => {
    const a = app('a', 2, ['a.test']);
    const b = app('b', 3, ['b.test']);
    const store = scriptedStore({ rev: 3, apps: [a, b], containers: [], hosts: [] }, []);
    const cache = await CmdbCache.open(store, silentLogger);
    expect(cache.appCount).toBe(2);
    expect([...cache.eachApp()].map((x) => x.name).sort()).toEqual(['a', 'b']);
    store.publish(del(a, 4));
    store.publish(put(app('c', 5, ['c.test'])));
    expect(cache.appCount).toBe(2);
    expect([...cache.eachApp()].map((x) => x.name).sort()).toEqual(['b', 'c']);
    expect([...cache.eachContainer()]).toEqual([]);
    await cache.close();
  });
});

describe('CmdbCache probes the CMDB', () => {
  /** A store whose probe answers what the test says, or fails; counts its snapshots. */
  function probedStore() {
    let listener: ChangeListener | undefined;
    const state = { epoch: 'e1', rev: 5, down: false, snapshots: 0, subscriptions: 0, apps: [app('a', 5, ['a.test'])] };
    const store = {
      kind: 'memory',
      async subscribe(l: ChangeListener) {
        listener = l;
        state.subscriptions += 1;
        return { unsubscribe: async () => {} };
      },
      async snapshot() {
        if (state.down) throw new Error('down');
        state.snapshots += 1;
        return { rev: state.rev, apps: structuredClone(state.apps), containers: [], hosts: [] };
      },
      async probe() {
        if (state.down) throw new Error('Command timed out');
        return { epoch: state.epoch, rev: state.rev };
      },
      publish: (c: Change) => listener?.onChange(structuredClone(c)),
    };
    return { store: store as unknown as Store, state, publish: store.publish };
  }

  it('marks the CMDB down when a probe fails, keeps what it holds, and resyncs before marking it up', async () => {
    const { store, state } = probedStore();
    const clock = new ManualClock(1_000);
    const cache = await CmdbCache.open(store, silentLogger, { clock, probeIntervalMs: 0 });
    const events: boolean[] = [];
    cache.on('health', (h) => events.push(h));
    await cache.probe();
    expect(cache.cmdbHealthy).toBe(true);
    clock.advance(1_000);
    state.down = true;
    await cache.probe();
    expect(cache.cmdbHealthy).toBe(false);
    // The outage began when the CMDB last answered.
    expect(cache.health.outages).toEqual([{ from: 1_000, to: null }]);
    expect(cache.app('a')?.name).toBe('a');
    await cache.probe();
    expect(events).toEqual([false]);
    state.down = false;
    state.apps = [app('a', 5, ['a.test']), app('b', 6, ['b.test'])];
    state.rev = 6;
    const before = state.snapshots;
    clock.advance(5_000);
    await cache.probe();
    expect(state.snapshots).toBe(before + 1);
    expect(cache.app('b')?.name).toBe('b');
    expect(cache.cmdbHealthy).toBe(true);
    expect(events).toEqual([false, true]);
    expect(cache.health.outages).toEqual([{ from: 1_000, to: 7_000 }]);
    await cache.close();
  });

  it('resyncs and says so when the CMDB has a new epoch (it lost its data)', async () => {
    const { store, state } = probedStore();
    const cache = await CmdbCache.open(store, silentLogger, { clock: new ManualClock(), probeIntervalMs: 0 });
    const epochs: string[] = [];
    cache.on('epoch', (e) => epochs.push(e));
    await cache.probe();
    expect(epochs).toEqual([]);
    state.epoch = 'e2';
    state.apps = [];
    state.rev = 0;
    await cache.probe();
    expect(epochs).toEqual(['e2']);
    expect(cache.app('a')).toBeUndefined();
    await cache.probe();
    expect(epochs).toEqual(['e2']);
    await cache.close();
  });

  it('resyncs when a revision the CMDB reached has not arrived by the next probe (a lost subscription)', async () => {
    const { store, state, publish } = probedStore();
    const cache = await CmdbCache.open(store, silentLogger, { clock: new ManualClock(), probeIntervalMs: 0 });
    await cache.probe();
    const base = state.snapshots;
    // A change that arrives: no resync.
    state.rev = 6;
    await cache.probe();
    publish({ kind: 'app', op: 'put', rev: 6, value: app('c', 6, ['c.test']) });
    await cache.probe();
    expect(state.snapshots).toBe(base);
    // One that never arrives: resync at the probe after the one that saw it.
    state.rev = 7;
    state.apps = [app('a', 5, ['a.test']), app('c', 6, ['c.test']), app('d', 7, ['d.test'])];
    await cache.probe();
    expect(state.snapshots).toBe(base);
    await cache.probe();
    expect(state.snapshots).toBe(base + 1);
    expect(cache.app('d')?.name).toBe('d');
    await cache.close();
  });

  it('subscribes afresh when changes are still missed after a resync (a silently dead subscription)', async () => {
    const { store, state } = probedStore();
    const cache = await CmdbCache.open(store, silentLogger, { clock: new ManualClock(), probeIntervalMs: 0 });
    await cache.probe();
    expect(state.subscriptions).toBe(1);
    // Writes go on, none is delivered: a resync at the probe after the one that saw the first;
    // the same again right after it: a new subscription (and a resync).
    const base = state.snapshots;
    for (const rev of [7, 8, 9]) {
      state.rev = rev;
      await cache.probe();
    }
    expect([state.snapshots - base, state.subscriptions]).toEqual([1, 1]);
    state.rev = 10;
    await cache.probe();
    expect([state.snapshots - base, state.subscriptions]).toEqual([2, 2]);
    // Delivered again from now on: no more of either.
    for (const rev of [11, 12, 13]) {
      state.rev = rev;
      await cache.probe();
      (store as unknown as { publish(c: Change): void }).publish({ kind: 'app', op: 'put', rev, value: app(`n${rev}`, rev, [`n${rev}.test`]) });
    }
    await cache.probe();
    expect([state.snapshots - base, state.subscriptions]).toEqual([2, 2]);
    await cache.close();
  });
});
