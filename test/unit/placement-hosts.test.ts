// Placement across hosts: anti-affinity first, then room; dead, drained and unknown hosts.

import { describe, expect, it } from 'vitest';
import { chooseHost, isHostLive, isHostSchedulable, placeContainer, uncountedHosts } from '../../src/cmdb/placement.js';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import type { ComputeHost, ContainerEntry } from '../../src/cmdb/types.js';
import { appSpec, newContainer } from '../helpers/specs.js';

const NOW = 1_000_000;
const TIMEOUT = 10_000;

interface HostRow { id: string; capacity?: number; silentFor?: number; drained?: boolean }
const host = (h: HostRow): ComputeHost => ({
  id: h.id, dispatcherUrl: `http://${h.id}:8082`, capacity: h.capacity ?? 10, startedAt: 0, heartbeatAt: NOW - (h.silentFor ?? 0), rev: 1,
  ...(h.drained === true ? { drainedAt: NOW - 1 } : {}),
});
/** "h1:a:ready" — an entry of app a on h1 in state ready. */
const entry = (spec: string): ContainerEntry => {
  const [hostId, app, state] = spec.split(':') as [string, string, ContainerEntry['state']];
  return { ...newContainer(app, { host: hostId, state }), rev: 1 };
};

describe('chooseHost', () => {
  const cases: { name: string; hosts: HostRow[]; entries: string[]; want: string | null }[] = [
    { name: 'an app with one container on h1 gets its second on h2, though h1 has more room', hosts: [{ id: 'h1', capacity: 100 }, { id: 'h2', capacity: 3 }], entries: ['h1:a:ready', 'h2:x:ready'], want: 'h2' },
    { name: 'a registered or starting entry of the app counts as much as a ready one', hosts: [{ id: 'h1' }, { id: 'h2' }], entries: ['h1:a:registered', 'h2:a:starting', 'h2:a:ready'], want: 'h1' },
    { name: 'a draining entry of the app does not count for spreading, but takes room', hosts: [{ id: 'h1', capacity: 2 }, { id: 'h2', capacity: 5 }], entries: ['h1:a:draining', 'h2:a:ready'], want: 'h1' },
    { name: 'a draining entry fills a host', hosts: [{ id: 'h1', capacity: 1 }, { id: 'h2', capacity: 5 }], entries: ['h1:a:draining', 'h2:a:ready'], want: 'h2' },
    { name: 'equal spread: the most room wins', hosts: [{ id: 'h1' }, { id: 'h2' }], entries: ['h1:a:ready', 'h2:a:ready', 'h1:x:ready'], want: 'h2' },
    { name: 'equal spread and room: the lower id wins', hosts: [{ id: 'h2' }, { id: 'h1' }], entries: [], want: 'h1' },
    { name: 'a silent host gets nothing, even with none of the app', hosts: [{ id: 'h1' }, { id: 'h2', silentFor: TIMEOUT + 1 }], entries: ['h1:a:ready'], want: 'h1' },
    { name: 'a drained host gets nothing, even with none of the app', hosts: [{ id: 'h1' }, { id: 'h2', drained: true }], entries: ['h1:a:ready'], want: 'h1' },
    { name: 'a full host gets nothing: the app doubles up on another', hosts: [{ id: 'h1' }, { id: 'h2', capacity: 1 }], entries: ['h1:a:ready', 'h2:x:ready'], want: 'h1' },
    { name: 'none when every host is drained, silent or full', hosts: [{ id: 'h1', drained: true }, { id: 'h2', silentFor: TIMEOUT * 2 }, { id: 'h3', capacity: 1 }], entries: ['h3:x:ready'], want: null },
    { name: 'a heartbeat exactly at the timeout is still live', hosts: [{ id: 'h1', silentFor: TIMEOUT }], entries: [], want: 'h1' },
  ];
  it.each(cases)('$name', ({ hosts, entries, want }) => {
    expect(chooseHost('a', hosts.map(host), entries.map(entry), NOW, TIMEOUT)?.id ?? null).toBe(want);
  });
});

describe('isHostLive and isHostSchedulable', () => {
  it.each([
    { row: { id: 'h' }, live: true, schedulable: true },
    { row: { id: 'h', drained: true }, live: true, schedulable: false },
    { row: { id: 'h', silentFor: TIMEOUT + 1 }, live: false, schedulable: false },
  ])('$row', ({ row, live, schedulable }) => {
    expect(isHostLive(host(row), NOW, TIMEOUT)).toBe(live);
    expect(isHostSchedulable(host(row), NOW, TIMEOUT)).toBe(schedulable);
  });
});

describe('uncountedHosts', () => {
  it.each([
    { name: 'none when every host of the app is live', hosts: [{ id: 'h1' }, { id: 'h2' }], entries: ['h1:a:ready', 'h2:a:ready'], want: [] },
    { name: 'a silent host', hosts: [{ id: 'h1' }, { id: 'h2', silentFor: TIMEOUT + 1 }], entries: ['h1:a:ready', 'h2:a:ready', 'h2:a:registered'], want: ['h2'] },
    { name: 'a host missing from the list (unknown, or left out as suspect)', hosts: [{ id: 'h1' }], entries: ['h1:a:ready', 'h9:a:ready'], want: ['h9'] },
    { name: 'a drained host still counts: its containers serve until replaced', hosts: [{ id: 'h1' }, { id: 'h2', drained: true }], entries: ['h2:a:ready'], want: [] },
    { name: 'only hosts holding entries of this app', hosts: [{ id: 'h1' }], entries: ['h1:a:ready', 'h7:x:ready'], want: [] },
  ])('$name', ({ hosts, entries, want }) => {
    expect(uncountedHosts('a', hosts.map(host), entries.map(entry), NOW, TIMEOUT)).toEqual(want);
  });
});

describe('placeContainer on a host that died', () => {
  it('places the replacement on the live host at once, within maxContainers counted on live hosts only', async () => {
    const store = new MemoryStore();
    const app = await store.createApp(appSpec({ name: 'a', minContainers: 2, maxContainers: 2 }), 1);
    const hosts = [host({ id: 'h1' }), host({ id: 'h2', silentFor: TIMEOUT + 1 })];
    const onDead = [
      (await store.registerContainer({ ...newContainer('a', { host: 'h2' }) })).entry,
      (await store.registerContainer({ ...newContainer('a', { host: 'h2' }) })).entry,
    ];
    const first = await placeContainer(store, app, hosts, onDead, NOW, TIMEOUT, { ifFewerThan: 1 });
    expect(first).toMatchObject({ created: true, entry: { host: 'h1' } });
    const second = await placeContainer(store, app, hosts, [...onDead, first.entry], NOW, TIMEOUT, { ifFewerThan: 2 });
    expect(second).toMatchObject({ created: true, entry: { host: 'h1' } });
    // Two live on live hosts: the limit holds.
    const third = await placeContainer(store, app, hosts, [...onDead, first.entry, second.entry], NOW, TIMEOUT).catch((e: { code: string }) => e.code);
    expect(third).toBe('FC_ERR_MAX_CONTAINERS');
    // With both hosts live, the dead host's entries count again: nothing more fits.
    const bothLive = [host({ id: 'h1' }), host({ id: 'h2' })];
    expect(await placeContainer(store, app, bothLive, [], NOW, TIMEOUT).catch((e: { code: string }) => e.code)).toBe('FC_ERR_MAX_CONTAINERS');
  });
});
