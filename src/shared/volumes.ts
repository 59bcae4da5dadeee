// What a tenant may mount: bind mounts `host:container[:ro|rw]` whose host path lies under one of
// the operator's volume roots (FC_VOLUME_ROOTS). A root may hold the placeholder `{app}` as a whole
// path segment, e.g. `/srv/datapool/{app}`: app `blog` may then mount only what is under
// `/srv/datapool/blog`, so one tenant cannot name another's directory. These rules are lexical; the
// CoreAPI applies them when a spec is written, and the dispatcher applies them again at every
// container create together with what only the host where the mount happens can check (the path
// exists, and resolves through symbolic links to a place still under the root): dispatcher/volumes.ts.

import path from 'node:path';

export const APP_PLACEHOLDER = '{app}';

export interface Volume {
  host: string;
  container: string;
  readOnly: boolean;
}

/** Longest path accepted on either side (Linux's PATH_MAX). */
const MAX_PATH = 4096;

/** Absolute, already normal (no `.`, `..`, `//` or trailing `/`), printable: exactly the path it reads as. */
export function isCleanAbsolute(p: string): boolean {
  return (
    p.length > 0 && p.length <= MAX_PATH && p.startsWith('/') && path.posix.normalize(p) === p &&
    (p === '/' || !p.endsWith('/')) && !/[\u0000-\u001f\u007f]/.test(p)
  );
}

/** `host:container[:ro|rw]`, both clean absolute paths, the container side not `/`; undefined otherwise. */
export function parseVolume(v: string): Volume | undefined {
  const parts = v.split(':');
  if (parts.length < 2 || parts.length > 3) return undefined;
  const [host, container, mode] = parts as [string, string, string | undefined];
  if (!isCleanAbsolute(host) || !isCleanAbsolute(container) || container === '/') return undefined;
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return undefined;
  return { host, container, readOnly: mode === 'ro' };
}

export function formatVolume(v: Volume): string {
  return `${v.host}:${v.container}:${v.readOnly ? 'ro' : 'rw'}`;
}

/** The roots that apply to `app`: `{app}` segments replaced by its name. */
export function rootsOf(roots: readonly string[], app: string): string[] {
  return roots.map((r) => r.split('/').map((seg) => (seg === APP_PLACEHOLDER ? app : seg)).join('/'));
}

/** `p` is `root` or inside it; both clean absolute paths. */
export function isUnder(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith('/') ? root : `${root}/`);
}

/** The root of `roots` (already for the app) that `p` lies under, lexically; undefined if none. */
export function rootHolding(p: string, roots: readonly string[]): string | undefined {
  return roots.find((r) => isUnder(p, r));
}

/**
 * FC_VOLUME_ROOTS: a comma-separated list of clean absolute directories other than `/`, each with
 * `{app}` at most once and only as a whole segment. An empty value (`none`) allows no volumes.
 */
export function parseVolumeRoots(raw: string): string[] | undefined {
  const text = raw.trim();
  if (text === 'none') return [];
  const roots = text.split(',').map((r) => r.trim()).filter((r) => r !== '');
  if (roots.length === 0) return undefined;
  for (const r of roots) {
    if (!isCleanAbsolute(r) || r === '/') return undefined;
    const segments = r.split('/');
    if (segments.filter((s) => s.includes('{') || s.includes('}')).some((s) => s !== APP_PLACEHOLDER)) return undefined;
    if (segments.filter((s) => s === APP_PLACEHOLDER).length > 1) return undefined;
  }
  return roots;
}
