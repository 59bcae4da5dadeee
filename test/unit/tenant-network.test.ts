// TenantNetwork.close() against a stand-in for the engine: the network and its rules go once no
// container is left, even while the engine still lists, for a moment, the endpoint of a container
// just removed; they stay while a container remains. iptables is replaced by a recorder.

import type Docker from 'dockerode';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { TenantNetwork, networkLabels } from '../../src/dispatcher/runtime/tenant-network.js';

const iptables = vi.hoisted(() => ({ removed: 0 }));
vi.mock('../../src/dispatcher/runtime/iptables.js', () => ({
  applyRuleset: async () => undefined,
  iptablesProblem: async () => null,
  removeRuleset: async () => {
    iptables.removed += 1;
  },
}));

const name = 'fc-unit-host';
const hostId = 'unit-host';

/** An engine holding one network whose endpoints are `endpoints()` and the containers in `containers`. */
function engine(endpoints: () => string[], containers: Map<string, string>) {
  const e = { inspects: 0, removed: false };
  const notFound = () => Object.assign(new Error('no such object'), { statusCode: 404 });
  const docker = {
    getNetwork: () => ({
      inspect: async () => {
        if (e.removed) throw notFound();
        e.inspects += 1;
        return {
          Id: 'abcdef0123456789', Driver: 'bridge',
          Labels: { [networkLabels.managed]: 'true', [networkLabels.host]: hostId },
          Options: { 'com.docker.network.bridge.name': 'fcbr-unit' },
          Containers: Object.fromEntries(endpoints().map((id) => [id, {}])),
        };
      },
      remove: async () => {
        if (endpoints().length > 0) throw Object.assign(new Error('network has active endpoints'), { statusCode: 403 });
        e.removed = true;
      },
    }),
    getContainer: (id: string) => ({
      inspect: async () => {
        const status = containers.get(id);
        if (status === undefined) throw notFound();
        return { Id: id, State: { Status: status } };
      },
    }),
  };
  return { docker: docker as unknown as Docker, e };
}

async function prepared(docker: Docker, warnings: string[] = []): Promise<TenantNetwork> {
  const n = new TenantNetwork(docker, {
    name, hostId, policy: { blockedNetworks: [], services: [] }, warn: (m) => warnings.push(m), settle: { tries: 10, intervalMs: 20 },
  });
  await n.prepare(new Map());
  return n;
}

beforeEach(() => {
  iptables.removed = 0;
});

describe('TenantNetwork.close()', () => {
  it('removes rules and network at once when no endpoint is left', async () => {
    const { docker, e } = engine(() => [], new Map());
    await (await prepared(docker)).close();
    expect(e.removed).toBe(true);
    expect(iptables.removed).toBe(1);
  });

  it('waits for the engine to let go of the endpoint of a container just removed, then removes rules and network', async () => {
    // The first two looks of close() still list the endpoint of a sandbox removed just before.
    let closingAt: number | null = null;
    const { docker, e } = engine(() => (closingAt !== null && e.inspects - closingAt <= 2 ? ['sandbox-just-removed'] : []), new Map());
    const n = await prepared(docker);
    closingAt = e.inspects;
    await n.close();
    expect(e.inspects - closingAt).toBeGreaterThan(2);
    expect(e.removed).toBe(true);
    expect(iptables.removed).toBe(1);
  });

  it('leaves rules and network in place while a container is still on the network', async () => {
    const { docker, e } = engine(() => ['tenant-1'], new Map([['tenant-1', 'running']]));
    const warnings: string[] = [];
    const n = await prepared(docker, warnings);
    const before = e.inspects;
    await n.close();
    expect(e.removed).toBe(false);
    expect(iptables.removed).toBe(0);
    expect(e.inspects - before).toBe(1);
    expect(warnings).toEqual([]);
  });

  it('gives up waiting after its bound: the rules go (no container needs them), the network stays, with a warning', async () => {
    const { docker, e } = engine(() => ['ep-0123456789ab'], new Map());
    const warnings: string[] = [];
    const n = await prepared(docker, warnings);
    const before = e.inspects;
    await n.close();
    // 10 looks by close(), one more by the removal.
    expect(e.inspects - before).toBe(11);
    expect(e.removed).toBe(false);
    expect(iptables.removed).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`docker network rm ${name}`);
  });

  it('counts a container being removed as gone', async () => {
    let removing = true;
    const containers = new Map([['tenant-1', 'removing']]);
    const { docker, e } = engine(() => (removing ? ['tenant-1'] : []), containers);
    const n = await prepared(docker);
    setTimeout(() => {
      removing = false;
      containers.delete('tenant-1');
    }, 50);
    await n.close();
    expect(e.removed).toBe(true);
    expect(iptables.removed).toBe(1);
  });
});
