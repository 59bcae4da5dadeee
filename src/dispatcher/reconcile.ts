// Reconciliation of this host's engine with the CMDB, at start and every so often. Pure: given
// the engine's labelled containers, the CMDB's entries for this host and what the dispatcher is
// itself tracking, it says what to adopt, remove, reset, forget or give up as lost. Also which
// hosts have been silent so long that their entries should go.

import { heartbeatAge, type Outage } from '../cmdb/cmdb-health.js';
import type { ComputeHost, ContainerEntry } from '../cmdb/types.js';
import { labelKeys, type RuntimeContainer } from './container-runtime.js';

export type ReconcileAction =
  /** A running container whose entry is ready or draining: track it again. */
  | { kind: 'adopt'; entry: ContainerEntry; container: RuntimeContainer }
  /** A container nobody wants (no entry, entry elsewhere, stopped, or a leftover of an older start). */
  | { kind: 'remove'; container: RuntimeContainer; reason: string }
  /** An entry that says starting/ready but has no container here: back to registered, to start on demand. */
  | { kind: 'reset'; entry: ContainerEntry }
  /** A draining entry whose container is already gone: mark it gone. */
  | { kind: 'forget'; entry: ContainerEntry }
  /** A container the dispatcher serves from that is no longer running (its death went unseen). */
  | { kind: 'lost'; entryId: string }
  /**
   * A container the dispatcher serves from whose entry is gone from the CMDB (it lost its data, or
   * the entry was removed while this host did not hear): nobody routes to it or counts it, so it
   * would run beside the containers a new entry gets. Drained.
   */
  | { kind: 'unclaimed'; entryId: string }
  /** A container the dispatcher serves from whose entry still says starting: its ready write was lost (the CMDB was away). */
  | { kind: 'confirm'; entry: ContainerEntry };

export interface ReconcileInput {
  runtime: readonly RuntimeContainer[];
  /** The CMDB's entries placed on this host. */
  entries: readonly ContainerEntry[];
  /**
   * Entry ids the dispatcher tracks, with the engine id of the container it serves them from; null
   * while that is in flux (being created, started or removed), which reconciliation leaves alone.
   */
  tracked: ReadonlyMap<string, string | null>;
  /**
   * Entry ids the dispatcher served from (ready or draining) before `entries` was read: an entry
   * of one of them missing from `entries` was removed, not yet to be written.
   */
  settled?: ReadonlySet<string>;
}

export function planReconcile(input: ReconcileInput): ReconcileAction[] {
  const actions: ReconcileAction[] = [];
  const entries = new Map(input.entries.map((e) => [e.id, e]));
  const covered = new Set<string>();
  for (const container of input.runtime) {
    const entryId = container.labels[labelKeys.container] ?? '';
    if (input.tracked.has(entryId)) {
      const runtimeId = input.tracked.get(entryId);
      if (runtimeId === null || runtimeId === container.id) continue;
      actions.push({ kind: 'remove', container, reason: 'an older container of an entry that has a newer one' });
      continue;
    }
    const entry = entries.get(entryId);
    const adoptable =
      entry !== undefined &&
      container.running &&
      // A start the dispatcher did not see through is not trusted: its entry is reset instead.
      (entry.state === 'ready' || entry.state === 'draining') &&
      (entry.runtimeId === null || entry.runtimeId === container.id) &&
      !covered.has(entryId);
    if (adoptable) {
      covered.add(entryId);
      actions.push({ kind: 'adopt', entry, container });
    } else {
      const reason =
        entry === undefined ? 'no CMDB entry wants it'
        : !container.running ? 'it is not running'
        : `its entry is ${entry.state}${entry.runtimeId !== null && entry.runtimeId !== container.id ? ' with another container' : ''}`;
      actions.push({ kind: 'remove', container, reason });
    }
  }
  const running = new Set(input.runtime.filter((c) => c.running).map((c) => c.id));
  for (const [entryId, runtimeId] of input.tracked) {
    if (runtimeId !== null && !running.has(runtimeId)) actions.push({ kind: 'lost', entryId });
  }
  for (const entryId of input.settled ?? []) {
    if (!entries.has(entryId) && typeof input.tracked.get(entryId) === 'string') actions.push({ kind: 'unclaimed', entryId });
  }
  for (const entry of input.entries) {
    if (entry.state === 'starting' && typeof input.tracked.get(entry.id) === 'string') actions.push({ kind: 'confirm', entry });
    if (input.tracked.has(entry.id) || covered.has(entry.id)) continue;
    if (entry.state === 'starting' || entry.state === 'ready') actions.push({ kind: 'reset', entry });
    else if (entry.state === 'draining') actions.push({ kind: 'forget', entry });
  }
  return actions;
}

/**
 * Hosts silent for longer than `deadAfterMs`: their dispatchers are gone for good (a restart
 * heartbeats again within seconds), so their entries only hold places under maxContainers.
 */
export function deadHosts(hosts: Iterable<ComputeHost>, now: number, deadAfterMs: number, self: string, outages: readonly Outage[] = []): string[] {
  const dead: string[] = [];
  // Heartbeats nobody could write while the CMDB was away do not count (heartbeatAge): after an
  // outage every host has the whole of deadAfterMs again to be heard from.
  for (const h of hosts) if (h.id !== self && heartbeatAge(h.heartbeatAt, now, outages) > deadAfterMs) dead.push(h.id);
  return dead;
}
