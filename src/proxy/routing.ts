// Routing decisions of the UserProxy. Pure: the app's entries and a random source in, a choice out.

import type { ContainerEntry } from '../cmdb/types.js';

export type RouteDecision = { kind: 'forward'; entry: ContainerEntry } | { kind: 'register' };

/**
 * Chooses the entry a request goes to. Ready entries first, at random (as in the paper's design),
 * those not frozen before frozen ones (a frozen one answers too, after a thaw of a few ms):
 * an entry still starting gets no traffic while another is ready, so requests do not pile up in
 * front of a cold start. With none ready, requests go to an entry that is starting (or registered,
 * to be started), the oldest one, so that every request waits on the same start. With none live,
 * the caller registers a new entry. Draining entries get nothing new.
 */
export function chooseEntry(
  entries: Iterable<ContainerEntry>,
  random: () => number,
  usable: (entry: ContainerEntry) => boolean = () => true,
): RouteDecision {
  const ready: ContainerEntry[] = [];
  const frozen: ContainerEntry[] = [];
  let pending: ContainerEntry | undefined;
  for (const e of entries) {
    if (!usable(e)) continue;
    if (e.state === 'ready') (e.frozenAt === null || e.frozenAt === undefined ? ready : frozen).push(e);
    else if (e.state === 'starting' || e.state === 'registered') {
      if (pending === undefined || rank(e) < rank(pending) || (rank(e) === rank(pending) && e.createdAt < pending.createdAt)) pending = e;
    }
  }
  if (ready.length > 0) return { kind: 'forward', entry: ready[Math.floor(random() * ready.length)] as ContainerEntry };
  if (frozen.length > 0) return { kind: 'forward', entry: frozen[Math.floor(random() * frozen.length)] as ContainerEntry };
  if (pending !== undefined) return { kind: 'forward', entry: pending };
  return { kind: 'register' };
}

/** A start under way beats one not begun. */
function rank(e: ContainerEntry): number {
  return e.state === 'starting' ? 0 : 1;
}

/** The Host header as a routing key: lower case, without port or trailing dot. */
export function routingHost(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  let host = header.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end < 0 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host === '' ? undefined : host;
}
