// Where a new container entry goes, and what it starts as. Pure (data in, decision out), but for
// newContainerId, which draws the random part of an id, and placeContainer, the one thin step that
// applies the decision to the store.

import { randomBytes } from 'node:crypto';
import { isHostLive, type Outage } from './cmdb-health.js';
import { cmdbErrors } from './errors.js';
import { liveStates, type App, type ComputeHost, type ContainerEntry, type NewContainer, type RegisterOptions, type Store } from './types.js';

// The liveness rule lives with the CMDB's health (a heartbeat's age does not count the time the
// CMDB was unreachable); re-exported here, where it has always been found.
export { isHostLive } from './cmdb-health.js';

/** Whether new containers may go to a host: it is live and the operator is not draining it. */
export function isHostSchedulable(host: ComputeHost, now: number, hostTimeoutMs: number, outages: readonly Outage[] = []): boolean {
  return isHostLive(host, now, hostTimeoutMs, outages) && (host.drainedAt ?? null) === null;
}

/**
 * The hosts holding entries of `app` that do not count for it: hosts not live, or not among
 * `hosts` (unknown, or left out by the caller, e.g. a dispatcher that refused connections). Their
 * entries get no traffic, so they must not hold places under maxContainers either: this is what
 * placeContainer passes to the store as ignoreHosts. Example: hosts h1 (live) and h2 (silent for
 * longer than the timeout), app entries on h1 and h2 → ['h2'].
 */
export function uncountedHosts(
  app: string,
  hosts: Iterable<ComputeHost>,
  entries: Iterable<ContainerEntry>,
  now: number,
  hostTimeoutMs: number,
  outages: readonly Outage[] = [],
): string[] {
  const live = new Set<string>();
  for (const h of hosts) if (isHostLive(h, now, hostTimeoutMs, outages)) live.add(h.id);
  const out = new Set<string>();
  for (const e of entries) if (e.app === app && !live.has(e.host)) out.add(e.host);
  return [...out].sort();
}

/**
 * Picks the host for a new container of `app` among the schedulable ones (live, not drained):
 * first the one running the fewest of this app's containers, so an app is spread over the hosts
 * before any host gets a second one (anti-affinity first: a host lost takes as few of its
 * containers as can be), then the one with the most room, then by id so the choice is stable.
 * Hosts that are full, silent or drained get nothing. Null when none fits.
 */
export function chooseHost(
  app: string,
  hosts: Iterable<ComputeHost>,
  entries: Iterable<ContainerEntry>,
  now: number,
  hostTimeoutMs: number,
  /** The CMDB outages this process saw (CmdbCache.health.outages): not counted in heartbeat ages. */
  outages: readonly Outage[] = [],
): ComputeHost | null {
  const used = new Map<string, number>();
  const ofApp = new Map<string, number>();
  for (const e of entries) {
    if (e.state === 'gone') continue;
    used.set(e.host, (used.get(e.host) ?? 0) + 1);
    // Draining ones take room until they are gone, but are not the app's any more.
    if (e.app === app && liveStates.includes(e.state)) ofApp.set(e.host, (ofApp.get(e.host) ?? 0) + 1);
  }
  const candidates = [...hosts]
    .filter((h) => isHostSchedulable(h, now, hostTimeoutMs, outages) && (used.get(h.id) ?? 0) < h.capacity)
    .sort(
      (a, b) =>
        (ofApp.get(a.id) ?? 0) - (ofApp.get(b.id) ?? 0) ||
        b.capacity - (used.get(b.id) ?? 0) - (a.capacity - (used.get(a.id) ?? 0)) ||
        a.id.localeCompare(b.id),
    );
  return candidates[0] ?? null;
}

/**
 * The order in which an app's live entries go when it has too many: first those never started
 * (nothing is lost), then the ready ones that expire first (they would go soonest anyway), then
 * the starting ones, newest first (least work lost). Entries that are not live are left out.
 * For example registered r1, ready a (expires 90 s), ready b (expires 30 s), starting s:
 * r1, b, a, s.
 */
export function scaleInOrder(entries: Iterable<ContainerEntry>): ContainerEntry[] {
  const rank = { registered: 0, ready: 1, starting: 2 } as const;
  const expires = (e: ContainerEntry) => e.expiresAt ?? Number.POSITIVE_INFINITY;
  return [...entries]
    .filter((e) => liveStates.includes(e.state))
    .sort((a, b) => {
      const ra = rank[a.state as keyof typeof rank];
      const rb = rank[b.state as keyof typeof rank];
      if (ra !== rb) return ra - rb;
      if (a.state === 'ready' && expires(a) !== expires(b)) return expires(a) < expires(b) ? -1 : 1;
      return b.createdAt - a.createdAt || a.id.localeCompare(b.id);
    });
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
    frozenAt: null,
    lastError: null,
    lastErrorCode: null,
    retryAt: null,
  };
}

/**
 * Picks a host for a new container of `app` (chooseHost over the given hosts and entries) and
 * registers an entry there. Every role that adds a container goes through this, so they all place
 * and register the same way. `options` go to registerContainer (ifFewerThan, surge); unless they
 * say otherwise, entries on hosts not live (or not among `hosts`) are not counted (uncountedHosts).
 * Throws FC_ERR_NO_COMPUTE_HOST when no live host has room, and whatever registerContainer throws
 * (FC_ERR_APP_NOT_FOUND, FC_ERR_MAX_CONTAINERS).
 */
export async function placeContainer(
  store: Store,
  app: App,
  hosts: Iterable<ComputeHost>,
  entries: Iterable<ContainerEntry>,
  now: number,
  hostTimeoutMs: number,
  options: RegisterOptions = {},
  outages: readonly Outage[] = [],
): Promise<{ entry: ContainerEntry; created: boolean }> {
  const hostList = [...hosts];
  const entryList = [...entries];
  const host = chooseHost(app.name, hostList, entryList, now, hostTimeoutMs, outages);
  if (host === null) throw cmdbErrors.noComputeHost(app.name, hostTimeoutMs);
  const ignoreHosts = options.ignoreHosts ?? uncountedHosts(app.name, hostList, entryList, now, hostTimeoutMs, outages);
  return store.registerContainer(newContainerEntry(app, host.id, now, newContainerId(app.name)), { ...options, ignoreHosts });
}
