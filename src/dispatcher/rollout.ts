// Rolling updates: after `app update` changes what a container is started from (image, command,
// env, secrets, port, volumes, memory, user, read-only root), the app's running containers are
// replaced make before break, one at a time across every host, through the same path as the end
// of a lifespan (renewal.ts): the chosen container's lifespan ends now, it gets a replacement
// started from the new spec, and it is drained once that replacement is ready.
//
// Dispatchers do not talk to each other: each reads the same CMDB and picks the same single
// container (the app's oldest ready one still on the old spec, on a live host); only its own
// dispatcher acts on it. It stays the chosen one until it leaves 'ready', then the next is chosen.
// A new spec that cannot start (a wrong image) stalls the rollout at its first container, which
// keeps serving until its own lifespan ends: an update never takes down what runs.

import { createHash } from 'node:crypto';
import type { AppSpec, ContainerEntry } from '../cmdb/types.js';

/** What a running container cannot take live: a change to any of these needs a new container. */
export const restartFields = ['image', 'command', 'env', 'secrets', 'port', 'volumes', 'memory', 'user', 'readOnlyRootfs'] as const;

/** A short digest of the fields a running container cannot change; equal specs, equal digests. */
export function specHash(app: AppSpec): string {
  const picked = restartFields.map((f) => [f, canonical(app[f] ?? null)]);
  return createHash('sha256').update(JSON.stringify(picked)).digest('hex').slice(0, 16);
}

/** Objects with their keys sorted, so that {"A":1,"B":2} and {"B":2,"A":1} hash the same. */
function canonical(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(canonical);
  return Object.keys(v as Record<string, unknown>).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]);
}

/**
 * Whether a ready entry runs an older spec than `app`. An entry started before digests were
 * recorded has none: only a different image tells then (its other fields are unknown; its
 * lifespan renews it anyway).
 */
export function isOutdated(entry: Pick<ContainerEntry, 'image' | 'specHash'>, app: AppSpec, currentHash: string): boolean {
  if (typeof entry.specHash === 'string') return entry.specHash !== currentHash;
  return entry.image !== null && entry.image !== app.image;
}

/**
 * The one container of an app to replace now for an update, or null: the oldest ready entry on
 * the old spec whose host is live (one on a silent host is replaced by the host-loss path, and
 * must not stall the rollout). Example: entries a (ready, old, created t=1), b (ready, old, t=2),
 * c (ready, new): a; once a is draining, b; once b is draining, null: the rollout is done.
 */
export function rolloutCandidate(
  entries: Iterable<Pick<ContainerEntry, 'id' | 'state' | 'createdAt' | 'host' | 'image' | 'specHash'>>,
  app: AppSpec,
  currentHash: string,
  hostLive: (host: string) => boolean,
): string | null {
  let best: { id: string; createdAt: number } | null = null;
  for (const e of entries) {
    if (e.state !== 'ready' || !isOutdated(e, app, currentHash) || !hostLive(e.host)) continue;
    if (best === null || e.createdAt < best.createdAt || (e.createdAt === best.createdAt && e.id < best.id)) best = { id: e.id, createdAt: e.createdAt };
  }
  return best?.id ?? null;
}
