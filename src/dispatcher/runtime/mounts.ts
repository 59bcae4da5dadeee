// Docker mounts for a container: bind mounts that fail on a missing source (HostConfig.Mounts of
// type bind; the older Binds would create it as an empty root-owned directory), and for a
// read-only root file system the tmpfs directories programs expect to write.

import type Docker from 'dockerode';
import { parseVolume } from '../../shared/volumes.js';

type MountSettings = NonNullable<Docker.HostConfig['Mounts']>[number];

/** `host:container[:ro|rw]` (checked by dispatcher/volumes.ts) as Docker bind mounts. */
export function bindMounts(volumes: readonly string[]): MountSettings[] {
  return volumes.map((v) => {
    const vol = parseVolume(v);
    if (vol === undefined) throw new Error(`not a checked volume: ${v}`);
    // rprivate: mounts made later under the source on the host do not show up in the container.
    return { Type: 'bind', Source: vol.host, Target: vol.container, ReadOnly: vol.readOnly, BindOptions: { Propagation: 'rprivate' } } as MountSettings;
  });
}

/**
 * Writable scratch space beside a read-only root: /tmp and /run, empty at each start, mode 1777
 * (Docker's default for tmpfs), no set-uid or device files, counted against the memory limit.
 */
export const READ_ONLY_TMPFS: Readonly<Record<string, string>> = Object.freeze({
  '/tmp': 'rw,nosuid,nodev,size=64m',
  '/run': 'rw,nosuid,nodev,size=16m',
});
