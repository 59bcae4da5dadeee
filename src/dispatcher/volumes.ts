// The dispatcher's check of an app's volumes, at every container create on the host where the
// mount happens: the decisive one (the CoreAPI's check, shared/volumes.ts, is lexical and may run
// on another machine). Each host path must exist (a volume is never created: Docker's `Binds`
// would make a missing one as an empty root-owned directory) and must still lie under one of the
// app's volume roots once every symbolic link is resolved, so a link placed inside the tenant's
// own directory (its code can write there) cannot lead out of it. The engine is given the resolved
// path, so the path it mounts is the one checked.
//
// What is left: a tenant whose code swaps a directory on the checked path for a link in the
// milliseconds between this check and the engine's mount could still redirect it; the engine
// resolves the path again itself. Roots the tenant cannot write (the operator's DataPool layout)
// keep that window out of reach for `{app}` roots' own directories.

import { realpath, stat } from 'node:fs/promises';
import { FcError } from '../shared/errors.js';
import { formatVolume, isUnder, parseVolume, rootHolding, rootsOf } from '../shared/volumes.js';

function refused(app: string, volume: string, why: string, roots: readonly string[]): FcError {
  return new FcError(
    'FC_ERR_VOLUME_REFUSED',
    `volume "${volume}" of app ${app} is refused: ${why} (allowed: existing paths under ${roots.length === 0 ? 'no root: FC_VOLUME_ROOTS allows no volumes' : roots.join(' or ')})`,
    { app, volume },
    { retryAfter: 5 },
  );
}

/**
 * The app's volumes as `realHostPath:container:ro|rw`, each checked against `volumeRoots`
 * (FC_VOLUME_ROOTS, `{app}` not yet replaced). Throws FC_ERR_VOLUME_REFUSED naming the first
 * volume that fails.
 */
export async function resolveVolumes(app: string, volumes: readonly string[], volumeRoots: readonly string[]): Promise<string[]> {
  const roots = rootsOf(volumeRoots, app);
  const out: string[] = [];
  for (const v of volumes) {
    const vol = parseVolume(v);
    if (vol === undefined) throw refused(app, v, 'it is not "/host/path:/container/path[:ro|rw]" with normal absolute paths', roots);
    const root = rootHolding(vol.host, roots);
    if (root === undefined) throw refused(app, v, `${vol.host} is not under a volume root`, roots);
    const realRoot = await realpath(root).catch(() => undefined);
    if (realRoot === undefined) throw refused(app, v, `the volume root ${root} does not exist on this host; the operator creates it`, roots);
    let real: string;
    try {
      real = await realpath(vol.host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw refused(app, v, code === 'ENOENT' ? `${vol.host} does not exist (a volume is never created; make the directory first)` : `${vol.host} cannot be resolved (${code ?? String(err)})`, roots);
    }
    if (!isUnder(real, realRoot)) throw refused(app, v, `${vol.host} resolves through a symbolic link to ${real}, outside ${root}`, roots);
    const kind = await stat(real).catch(() => undefined);
    if (kind === undefined || !(kind.isDirectory() || kind.isFile())) throw refused(app, v, `${vol.host} is neither a directory nor a regular file`, roots);
    out.push(formatVolume({ ...vol, host: real }));
  }
  return out;
}
