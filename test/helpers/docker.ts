// Direct access to the Docker engine for tests: find and remove exactly the containers a test's
// dispatcher created (by its unique host label).

import Docker from 'dockerode';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { sandboxLabels } from '../../src/dispatcher/runtime/network-sandboxes.js';

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

export async function imageExists(name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}
