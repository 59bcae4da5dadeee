// Direct access to the Docker engine for tests: find and remove exactly the containers a test's
// dispatcher created (by its unique host label).

import Docker from 'dockerode';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { sandboxLabels } from '../../src/dispatcher/runtime/network-sandboxes.js';
import { removeTenantNetwork } from '../../src/dispatcher/runtime/tenant-network.js';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** The app containers of a test's host; with `sandboxes`, its network sandboxes too. */
export async function containersOfHost(hostId: string, options: { all?: boolean; sandboxes?: boolean } = {}): Promise<Docker.ContainerInfo[]> {
  const rows = await docker.listContainers({ all: options.all ?? true, filters: { label: [`${labelKeys.host}=${hostId}`] } });
  return options.sandboxes === true ? rows : rows.filter((c) => c.Labels[sandboxLabels.role] !== 'sandbox');
}

export async function removeContainersOfHost(hostId: string): Promise<void> {
  for (const c of await containersOfHost(hostId, { sandboxes: true })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
}

/**
 * Removes a test host's containers (sandboxes too) and then its tenant network and isolation rules.
 * Tried a few times: a sandbox the pool was still making, or an endpoint the engine has not let go
 * yet, keeps the network from going on the first try, and a network left behind each run would use
 * up the engine's address pools.
 */
export async function removeHostAndNetwork(hostId: string, network: string): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    await removeContainersOfHost(hostId);
    await removeTenantNetwork(docker, network, hostId, { rules: attempt === 0 });
    const left = await docker.listNetworks({ filters: { name: [network] } });
    if (!left.some((n) => n.Name === network && n.Labels?.[labelKeys.host] === hostId)) return;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

export async function imageExists(name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}
