// Where a new container entry goes, and what it starts as. Pure (data in, decision out), but for
// newContainerId, which draws the random part of an id.

import { randomBytes } from 'node:crypto';
import type { App, ComputeHost, ContainerEntry, NewContainer } from './types.js';

export function isHostLive(host: ComputeHost, now: number, hostTimeoutMs: number): boolean {
  return now - host.heartbeatAt <= hostTimeoutMs;
}

/**
 * Picks the live host for a new container of `app`: first the one running the fewest of this app's
 * containers (so scale-out spreads an app across hosts), then the one with the most room, then by
 * id so the choice is stable. Hosts that are full or silent get nothing. Null when none fits.
 */
export function chooseHost(
  app: string,
  hosts: Iterable<ComputeHost>,
  entries: Iterable<ContainerEntry>,
  now: number,
  hostTimeoutMs: number,
): ComputeHost | null {
  const used = new Map<string, number>();
  const ofApp = new Map<string, number>();
  for (const e of entries) {
    if (e.state === 'gone') continue;
    used.set(e.host, (used.get(e.host) ?? 0) + 1);
    if (e.app === app) ofApp.set(e.host, (ofApp.get(e.host) ?? 0) + 1);
  }
  const candidates = [...hosts]
    .filter((h) => isHostLive(h, now, hostTimeoutMs) && (used.get(h.id) ?? 0) < h.capacity)
    .sort(
      (a, b) =>
        (ofApp.get(a.id) ?? 0) - (ofApp.get(b.id) ?? 0) ||
        b.capacity - (used.get(b.id) ?? 0) - (a.capacity - (used.get(a.id) ?? 0)) ||
        a.id.localeCompare(b.id),
    );
  return candidates[0] ?? null;
}

export function newContainerId(app: string): string {
  return `${app}-${randomBytes(4).toString('hex')}`;
}

/** A fresh entry: registered on a host, not started; the host's dispatcher starts it on demand. */
export function newContainerEntry(app: App, hostId: string, now: number, id: string): NewContainer {
  return {
    id,
    app: app.name,
    host: hostId,
    state: 'registered',
    address: null,
    runtimeId: null,
    image: app.image,
    cpus: app.cpus,
    createdAt: now,
    startedAt: null,
    readyAt: null,
    expiresAt: null,
    lastError: null,
    lastErrorCode: null,
    retryAt: null,
  };
}
