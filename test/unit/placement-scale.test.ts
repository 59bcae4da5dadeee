import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/cmdb/memory-store.js';
import { placeContainer, scaleInOrder } from '../../src/cmdb/placement.js';
import type { ComputeHost, ContainerEntry } from '../../src/cmdb/types.js';
import { FcError } from '../../src/shared/errors.js';
import { appSpec, newContainer } from '../helpers/specs.js';

const NOW = 1_000_000;
const host = (id: string, capacity = 10, heartbeatAt = NOW): ComputeHost => ({ id, dispatcherUrl: `http://${id}:8082`, capacity, startedAt: 0, heartbeatAt, rev: 1 });
const entry = (id: string, state: ContainerEntry['state'], o: Partial<ContainerEntry> = {}): ContainerEntry =>
  ({ ...newContainer('a', { id, state, ...o }), rev: 1 });

describe('scaleInOrder', () => {
  it('takes never-started entries first, then ready ones by expiry, then starting ones, newest first', () => {
    const order = scaleInOrder([
      entry('s-old', 'starting', { createdAt: 1 }),
      entry('ready-late', 'ready', { expiresAt: NOW + 90_000 }),
      entry('drain', 'draining'),
      entry('s-new', 'starting', { createdAt: 5 }),
      entry('ready-soon', 'ready', { expiresAt: NOW + 30_000 }),
      entry('ready-never', 'ready', { expiresAt: null }),
      entry('r1', 'registered', { createdAt: 2 }),
      entry('r2', 'registered', { createdAt: 3 }),
    ]);
    expect(order.map((e) => e.id)).toEqual(['r2', 'r1', 'ready-soon', 'ready-late', 'ready-never', 's-new', 's-old']);
  });

  it('is empty without live entries', () => {
    expect(scaleInOrder([entry('d', 'draining')])).toEqual([]);
  });
});

describe('placeContainer', () => {
  it('registers an entry for the app on the host chooseHost picks', async () => {
    const store = new MemoryStore();
    const app = await store.createApp(appSpec({ name: 'a', cpus: 0.3 }), 1);
    const { entry: placed, created } = await placeContainer(store, app, [host('h1'), host('h2')], [entry('x', 'ready', { host: 'h1' })], NOW, 10_000);
    expect(created).toBe(true);
    expect(placed).toMatchObject({ app: 'a', host: 'h2', state: 'registered', cpus: 0.3, createdAt: NOW });
    expect(await store.getContainer(placed.id)).toEqual(placed);
  });

  it('passes the register options on, and fails with FC_ERR_NO_COMPUTE_HOST when no host is live', async () => {
    const store = new MemoryStore();
    const app = await store.createApp(appSpec({ name: 'a', maxContainers: 1 }), 1);
    const first = await placeContainer(store, app, [host('h1')], [], NOW, 10_000);
    const again = await placeContainer(store, app, [host('h1')], [first.entry], NOW, 10_000, { ifFewerThan: 1 });
    expect(again).toEqual({ entry: first.entry, created: false });
    expect((await placeContainer(store, app, [host('h1')], [first.entry], NOW, 10_000, { surge: 1 })).created).toBe(true);
    const err = await placeContainer(store, app, [host('h1', 10, NOW - 20_000)], [], NOW, 10_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FcError);
    expect(err).toMatchObject({ code: 'FC_ERR_NO_COMPUTE_HOST', status: 503, details: { app: 'a' } });
  });
});
