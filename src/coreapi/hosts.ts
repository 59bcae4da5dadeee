// The operator's commands on compute hosts: list, show, remove one that never returns, drain one
// for maintenance and undrain it. Hosts are written by their dispatchers' heartbeats; the only
// fields the operator sets are the drain mark (store.setHostDrained) and the record's removal.

import { isHostLive, isHostSchedulable } from '../cmdb/placement.js';
import type { ComputeHost, ContainerEntry, Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { FcError, invalidFields } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

export interface HostView extends ComputeHost {
  live: boolean;
  /** Takes new containers: live and not drained. */
  schedulable: boolean;
  /** Its container entries that are not gone (a drain is done when none is left). */
  containers: number;
}

export class HostAdmin {
  constructor(private readonly deps: { store: Store; clock: Clock; logger: Logger }, private readonly s: { hostTimeout: number }) {}

  private view(h: ComputeHost, entries: readonly ContainerEntry[], now: number): HostView {
    return {
      ...h,
      drainedAt: h.drainedAt ?? null,
      live: isHostLive(h, now, this.s.hostTimeout),
      schedulable: isHostSchedulable(h, now, this.s.hostTimeout),
      containers: entries.filter((e) => e.host === h.id && e.state !== 'gone').length,
    };
  }

  async list(): Promise<{ now: number; hosts: HostView[] }> {
    const [hosts, entries] = await Promise.all([this.deps.store.listHosts(), this.deps.store.listContainers()]);
    const now = this.deps.clock.now();
    return { now, hosts: hosts.sort((a, b) => a.id.localeCompare(b.id)).map((h) => this.view(h, entries, now)) };
  }

  async get(id: string): Promise<HostView> {
    const [host, entries] = await Promise.all([this.find(id), this.deps.store.listContainers({ host: id })]);
    return this.view(host, entries, this.deps.clock.now());
  }

  /**
   * Forgets a host that will not come back: its entries go (their containers, if the host ever
   * runs again, are orphans its dispatcher removes) and then its record. Refused for a live host
   * unless forced: its dispatcher would drain all its containers at once and its next heartbeat
   * would add the host back.
   */
  async remove(id: string, force: boolean): Promise<{ host: HostView; removedContainers: number }> {
    const { store, clock, logger } = this.deps;
    const host = await this.find(id);
    const now = clock.now();
    if (!force && isHostLive(host, now, this.s.hostTimeout)) {
      throw new FcError('FC_ERR_HOST_LIVE', `host "${id}" sent a heartbeat ${now - host.heartbeatAt} ms ago (host timeout ${this.s.hostTimeout} ms): drain it and stop its dispatcher first, or force the removal`, { host: id });
    }
    const entries = await store.listContainers({ host: id });
    let removed = 0;
    for (const e of entries) {
      const gone = await store.transitionContainer(e.id, ['registered', 'starting', 'ready', 'draining'], 'gone', { lastError: `host ${id} was removed by the operator` });
      if (gone !== null) removed += 1;
    }
    await store.removeHost(id);
    logger.warn({ host: id, containers: removed, forced: force }, 'host removed by the operator, with its container entries');
    return { host: this.view(host, [], now), removedContainers: removed };
  }

  /**
   * Marks a host drained: no new containers go there, and its dispatcher replaces its containers
   * on other hosts, each drained once its replacement is ready. Again on a drained host: nothing
   * changes (the drain keeps its start). Refused, unless forced, when no other host would be left
   * to take containers.
   */
  async drain(id: string, force: boolean): Promise<HostView> {
    const { store, clock, logger } = this.deps;
    const host = await this.find(id);
    if ((host.drainedAt ?? null) !== null) return this.get(id);
    const now = clock.now();
    const others = (await store.listHosts()).filter((h) => h.id !== id && isHostSchedulable(h, now, this.s.hostTimeout));
    if (!force && others.length === 0) {
      throw new FcError('FC_ERR_LAST_HOST', `host "${id}" is the last live host that takes containers: drained, apps without a container could start none (503) until a host is undrained or added; force to drain it anyway`, { host: id });
    }
    const drained = await store.setHostDrained(id, now);
    if (drained === null) throw notFound(id);
    logger.info({ host: id, otherHosts: others.length }, 'host drained by the operator: its containers move to other hosts');
    return this.get(id);
  }

  async undrain(id: string): Promise<HostView> {
    await this.find(id);
    const host = await this.deps.store.setHostDrained(id, null);
    if (host === null) throw notFound(id);
    this.deps.logger.info({ host: id }, 'host undrained by the operator: it takes new containers again');
    return this.get(id);
  }

  private async find(id: string): Promise<ComputeHost> {
    const host = (await this.deps.store.listHosts()).find((h) => h.id === id);
    if (host === undefined) throw notFound(id);
    return host;
  }
}

function notFound(id: string): FcError {
  return new FcError('FC_ERR_HOST_NOT_FOUND', `no compute host has the id "${id}"`, { host: id });
}

/** `?force=` of the host commands: absent or false, or true. */
export function parseForce(raw: string | null): boolean {
  if (raw === null || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1' || raw === '') return true;
  throw invalidFields([{ field: 'force', value: raw, allowed: 'true or false' }]);
}
