// Direct access to the Docker engine for tests: find and remove exactly the containers a test's
// dispatcher created (by its unique host label).

import Docker from 'dockerode';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

export async function containersOfHost(hostId: string, options: { all?: boolean } = {}): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: options.all ?? true, filters: { label: [`${labelKeys.host}=${hostId}`] } });
}

export async function removeContainersOfHost(hostId: string): Promise<void> {
  for (const c of await containersOfHost(hostId)) {
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
