import { describe, expect, it } from 'vitest';
import { chooseHost, newContainerEntry, newContainerId } from '../../src/cmdb/placement.js';
import type { ComputeHost, ContainerEntry } from '../../src/cmdb/types.js';
import { appSpec, newContainer } from '../helpers/specs.js';

const NOW = 1_000_000;
const host = (id: string, capacity = 10, heartbeatAt = NOW): ComputeHost => ({ id, dispatcherUrl: `http://${id}:8082`, capacity, startedAt: 0, heartbeatAt, rev: 1 });
const on = (hostId: string, app = 'other', state: ContainerEntry['state'] = 'ready'): ContainerEntry => ({ ...newContainer(app, { host: hostId, state }), rev: 1 });

describe('chooseHost', () => {
  it('has nothing when no host is live', () => {
    expect(chooseHost('a', [host('h1', 10, NOW - 20_000)], [], NOW, 10_000)).toBeNull();
  });

  it('prefers the host with the most room', () => {
    const chosen = chooseHost('a', [host('h1'), host('h2')], [on('h1'), on('h1'), on('h2')], NOW, 10_000);
    expect(chosen?.id).toBe('h2');
  });

  it('spreads one app over hosts before filling the roomiest', () => {
    const chosen = chooseHost('a', [host('h1', 100), host('h2', 10)], [on('h1', 'a')], NOW, 10_000);
    expect(chosen?.id).toBe('h2');
  });

  it('skips full hosts and silent ones, and breaks ties by id', () => {
    expect(chooseHost('a', [host('h2'), host('h1')], [], NOW, 10_000)?.id).toBe('h1');
    expect(chooseHost('a', [host('h1', 1), host('h2', 10, 0)], [on('h1')], NOW, 10_000)).toBeNull();
  });

  it('does not count gone entries', () => {
    expect(chooseHost('a', [host('h1', 1)], [on('h1', 'x', 'gone')], NOW, 10_000)?.id).toBe('h1');
  });
});

describe('newContainerEntry', () => {
  it('starts registered, with the app\'s image and cpus, and an id naming the app', () => {
    const app = { ...appSpec({ name: 'blog', cpus: 0.3 }), rev: 1, createdAt: 0, updatedAt: 0 };
    const e = newContainerEntry(app, 'h1', NOW, 'blog-1');
    expect(e).toMatchObject({ id: 'blog-1', app: 'blog', host: 'h1', state: 'registered', image: 'fastcontainer/hello', cpus: 0.3, createdAt: NOW, address: null });
    expect(newContainerId('blog')).toMatch(/^blog-[0-9a-f]{8}$/);
    expect(newContainerId('blog')).not.toBe(newContainerId('blog'));
  });
});
