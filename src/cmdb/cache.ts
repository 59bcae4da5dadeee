// A local copy of the CMDB, kept fresh by the store's published changes, so the request path
// never waits on Redis. It starts from a snapshot and resyncs to a new one whenever changes may
// have been missed (a reconnect). Every object carries the revision of its last write, and a change
// applies only if it is newer than what the cache holds: a snapshot racing a change cannot undo it,
// nor can a snapshot read in pieces (Snapshot), whose objects may each be of a different moment.
// Apps are held with what they share stored once (compact-app.ts): 100,000 of them take about
// 60 MB here, host name tables included.
// A probe asks the CMDB every second, within its deadline, for its epoch and revision: it tells
// this process whether the CMDB answers (health, outages: heartbeats are not judged by the time it
// did not), whether the subscription missed changes (the revision ran ahead of what arrived) and
// whether the CMDB lost its data (a new epoch). The cache keeps serving what it holds meanwhile.

import { EventEmitter } from 'node:events';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { CmdbHealth, isHostLive } from './cmdb-health.js';
import { compactApp } from './compact-app.js';
import type { App, Change, ComputeHost, ContainerEntry, Snapshot, Store, Subscription } from './types.js';

const MAX_TOMBSTONES = 20_000;

export interface CmdbCacheEvents {
  change: [Change];
  resync: [];
  /** The CMDB stopped (false) or started again (true, once the cache is synced) answering. */
  health: [boolean];
  /** The CMDB's epoch changed: it lost its data (restarted empty); the cache has resynced. */
  epoch: [string];
}

export interface CmdbCacheOptions {
  clock?: Clock;
  /** How often the CMDB is probed; 0 turns probing off. Default 1000 ms. */
  probeIntervalMs?: number;
}

const DEFAULT_PROBE_INTERVAL_MS = 1000;

export class CmdbCache extends EventEmitter<CmdbCacheEvents> {
  private apps = new Map<string, App>();
  /** Host name to its app: one lookup per request, whatever the number of apps. */
  private hostnames = new Map<string, App>();
  private containers = new Map<string, ContainerEntry>();
  private byApp = new Map<string, Map<string, ContainerEntry>>();
  private hosts = new Map<string, ComputeHost>();
  /** Revisions of deleted objects, so a late put of a deleted object is ignored. */
  private tombstones = new Map<string, number>();
  private subscription: Subscription | undefined;
  /** While a snapshot is being read, changes wait here. */
  private pending: Change[] | undefined;
  private resyncing: Promise<void> | undefined;
  private closed = false;
  /** Revision of the last snapshot applied. */
  snapshotRev = 0;
  /** Whether the CMDB answers, since when, and the outages seen (for heartbeat ages). */
  readonly health: CmdbHealth;
  /** The CMDB's epoch as last probed. */
  epoch: string | undefined;
  /** The highest revision this cache has seen (snapshot or change). */
  private seenRev = 0;
  /** A revision a probe saw that the cache had not: if it still has not by the next probe, changes were missed. */
  private lagRev: number | undefined;
  /** The CMDB's revision at the last probe that answered (0 before the first). */
  private probedRev = 0;
  private probing: Promise<void> | undefined;
  /**
   * Probes since the last that found changes missed. Missed again right after the resync that
   * fixed it (a resync sets the revision, so the next finding is two probes later): subscribe afresh.
   */
  private probesSinceMissed = Number.POSITIVE_INFINITY;
  private probeTimer: Timer | undefined;
  private readonly clock: Clock;

  private constructor(private readonly store: Store, private readonly logger: Logger, options: CmdbCacheOptions) {
    super();
    this.clock = options.clock ?? systemClock;
    this.health = new CmdbHealth(this.clock.now());
  }

  static async open(store: Store, logger: Logger, options: CmdbCacheOptions = {}): Promise<CmdbCache> {
    const cache = new CmdbCache(store, logger, options);
    cache.subscription = await cache.subscribe();
    try {
      await cache.resync();
      cache.health.answered(cache.clock.now());
    } catch (err) {
      await cache.close();
      throw err;
    }
    const every = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    if (every > 0) {
      // The first probe learns the epoch; a new one seen later means the CMDB lost its data.
      void cache.probe();
      cache.probeTimer = cache.clock.setInterval(() => void cache.probe(), every);
    }
    return cache;
  }

  private subscribe(): Promise<Subscription> {
    return this.store.subscribe({
      onChange: (change) => this.receive(change),
      onResync: () => this.resyncUntilDone(),
    });
  }

  /**
   * The revisions for the metrics: the highest this cache has applied, and how many the CMDB was
   * ahead of it at the last probe, less those that arrived since (0 when caught up). A lag that
   * stays above 0 for more than a probe means changes are late or lost (the probe then resyncs).
   */
  get revisions(): { seen: number; lag: number } {
    return { seen: this.seenRev, lag: Math.max(0, this.probedRev - this.seenRev) };
  }

  /** Whether the CMDB answered the last probe (and the cache synced after an outage). */
  get cmdbHealthy(): boolean {
    return this.health.healthy;
  }

  /** The liveness rule every role uses (cmdb-health.ts), with the outages this process saw. */
  isHostLive(host: ComputeHost, now: number, hostTimeoutMs: number): boolean {
    return isHostLive(host, now, hostTimeoutMs, this.health.outages);
  }

  /**
   * Asks the CMDB for its epoch and revision, within its deadline. No answer: the CMDB is marked
   * down (once). An answer after an outage, a new epoch, or a revision seen one probe ago that no
   * change has reached yet: resync first, and only then marked up, so that a role told the CMDB is
   * back finds the cache current. One probe at a time; every second by default.
   */
  probe(): Promise<void> {
    this.probing ??= this.probeOnce().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async probeOnce(): Promise<void> {
    if (this.closed) return;
    let seen;
    try {
      const asked = this.clock.now();
      seen = await this.store.probe();
      this.health.answered(asked);
      this.probedRev = seen.rev;
      const newEpoch = this.epoch !== undefined && seen.epoch !== this.epoch;
      const missed = this.lagRev !== undefined && this.seenRev < this.lagRev;
      if (newEpoch) this.logger.warn({ was: this.epoch, now: seen.epoch }, 'the CMDB has a new epoch: it lost its data; resyncing');
      else if (missed) this.logger.warn({ seen: this.seenRev, cmdb: this.lagRev }, 'the CMDB cache missed changes; resyncing');
      const missedAgain = missed && this.probesSinceMissed <= 2;
      this.probesSinceMissed = missed ? 0 : this.probesSinceMissed + 1;
      if (missedAgain) {
        // Missed again after a resync: the subscription itself is dead (a connection that went
        // silent without closing, so the client never reconnects). A fresh one, then the resync.
        this.logger.warn('the CMDB subscription delivers nothing; subscribing afresh');
        const old = this.subscription;
        const fresh = await this.subscribe();
        if (this.closed) {
          await fresh.unsubscribe();
          return;
        }
        this.subscription = fresh;
        await old?.unsubscribe().catch(() => undefined);
      }
      if (newEpoch || missed || !this.health.healthy) await this.resync();
      if (this.closed) return;
      this.lagRev = seen.rev > this.seenRev ? seen.rev : undefined;
      this.epoch = seen.epoch;
      if (newEpoch) this.emit('epoch', seen.epoch);
    } catch (err) {
      if (this.closed) return;
      if (this.health.markDown(this.clock.now())) {
        this.logger.error({ err: (err as Error).message }, 'the CMDB does not answer: serving from the cache until it does');
        this.emit('health', false);
      }
      return;
    }
    if (this.health.markUp(this.clock.now())) {
      const outage = this.health.outages[this.health.outages.length - 1];
      this.logger.warn({ ms: outage === undefined || outage.to === null ? null : outage.to - outage.from }, 'the CMDB answers again; cache resynced');
      this.emit('health', true);
    }
  }

  /** Reads a fresh snapshot; changes that arrive meanwhile are applied after it if newer. One at a time. */
  resync(): Promise<void> {
    this.resyncing ??= this.readSnapshot().finally(() => (this.resyncing = undefined));
    return this.resyncing;
  }

  /** After a reconnect: resync, and if the CMDB does not answer, try again with growing pauses. */
  private resyncUntilDone(attempt = 0): void {
    if (this.closed) return;
    this.resync().catch((err: unknown) => {
      const wait = Math.min(30_000, 500 * 2 ** attempt);
      this.logger.error({ err, retryInMs: wait }, 'CMDB resync failed');
      setTimeout(() => this.resyncUntilDone(attempt + 1), wait).unref();
    });
  }

  private async readSnapshot(): Promise<void> {
    this.pending = [];
    let snapshot: Snapshot | undefined;
    try {
      snapshot = await this.store.snapshot();
      this.load(snapshot);
    } finally {
      const missed = this.pending;
      this.pending = undefined;
      for (const change of missed) this.apply(change);
    }
    this.logger.debug({ rev: snapshot.rev, apps: snapshot.apps.length, containers: snapshot.containers.length }, 'CMDB cache synced');
    this.emit('resync');
  }

  private load(snapshot: Snapshot): void {
    this.snapshotRev = snapshot.rev;
    this.seenRev = snapshot.rev;
    this.apps = new Map();
    this.hostnames = new Map();
    this.containers = new Map();
    this.byApp = new Map();
    this.hosts = new Map();
    this.tombstones = new Map();
    for (const app of snapshot.apps) this.putApp(app);
    for (const c of snapshot.containers) this.putContainer(c);
    for (const h of snapshot.hosts) this.hosts.set(h.id, h);
  }

  private receive(change: Change): void {
    if (this.closed) return;
    if (this.pending !== undefined) this.pending.push(change);
    else this.apply(change);
  }

  private apply(change: Change): void {
    if (change.rev > this.seenRev) this.seenRev = change.rev;
    const id = change.op === 'delete' ? change.id : change.kind === 'app' ? change.value.name : change.value.id;
    const key = `${change.kind}:${id}`;
    const held = this.revOf(change.kind, id) ?? this.tombstones.get(key) ?? (change.rev <= this.snapshotRev ? Infinity : undefined);
    if (held !== undefined && held >= change.rev) return;
    if (change.op === 'delete') {
      this.tomb(key, change.rev);
      if (change.kind === 'app') this.dropApp(change.id);
      else if (change.kind === 'container') this.dropContainer(change.id);
      else this.hosts.delete(change.id);
    } else {
      this.tombstones.delete(key);
      if (change.kind === 'app') this.putApp(change.value);
      else if (change.kind === 'container') this.putContainer(change.value);
      else this.hosts.set(change.value.id, change.value);
    }
    this.emit('change', change);
  }

  /**
   * Remembers a deletion's revision. Bounded: a tombstone only matters while a late change of the
   * same object may still arrive, so the oldest go first.
   */
  private tomb(key: string, rev: number): void {
    this.tombstones.delete(key);
    this.tombstones.set(key, rev);
    if (this.tombstones.size > MAX_TOMBSTONES) {
      for (const k of [...this.tombstones.keys()].slice(0, MAX_TOMBSTONES / 2)) this.tombstones.delete(k);
    }
  }

  private revOf(kind: Change['kind'], id: string): number | undefined {
    if (kind === 'app') return this.apps.get(id)?.rev;
    if (kind === 'container') return this.containers.get(id)?.rev;
    return this.hosts.get(id)?.rev;
  }

  private putApp(app: App): void {
    compactApp(app);
    const old = this.apps.get(app.name);
    if (old !== undefined) for (const h of old.hostnames) if (this.hostnames.get(h) === old) this.hostnames.delete(h);
    this.apps.set(app.name, app);
    for (const h of app.hostnames) {
      // Two apps claim a name only while one of them is held at an older revision than the
      // other: a snapshot read in pieces (RedisStore.snapshot) can catch one app before it gave
      // the name up and another after it took it. The newer claim is the true one, and the older
      // app's change giving it up is on its way (it is newer than the snapshot's revision).
      const owner = this.hostnames.get(h);
      if (owner === undefined || owner.name === app.name || owner.rev < app.rev) this.hostnames.set(h, app);
    }
  }

  private dropApp(name: string): void {
    const old = this.apps.get(name);
    if (old === undefined) return;
    for (const h of old.hostnames) if (this.hostnames.get(h) === old) this.hostnames.delete(h);
    this.apps.delete(name);
  }

  private putContainer(c: ContainerEntry): void {
    this.containers.set(c.id, c);
    let forApp = this.byApp.get(c.app);
    if (forApp === undefined) this.byApp.set(c.app, (forApp = new Map()));
    forApp.set(c.id, c);
  }

  private dropContainer(id: string): void {
    const old = this.containers.get(id);
    if (old === undefined) return;
    this.containers.delete(id);
    const forApp = this.byApp.get(old.app);
    forApp?.delete(id);
    if (forApp?.size === 0) this.byApp.delete(old.app);
  }

  appForHostname(hostname: string): App | undefined {
    return this.hostnames.get(hostname);
  }

  app(name: string): App | undefined {
    return this.apps.get(name);
  }

  allApps(): App[] {
    return [...this.apps.values()];
  }

  /** The apps without copying them (100,000 of them are looked through every second). */
  eachApp(): IterableIterator<App> {
    return this.apps.values();
  }

  get appCount(): number {
    return this.apps.size;
  }

  container(id: string): ContainerEntry | undefined {
    return this.containers.get(id);
  }

  containersOf(app: string): Iterable<ContainerEntry> {
    return this.byApp.get(app)?.values() ?? [];
  }

  allContainers(): ContainerEntry[] {
    return [...this.containers.values()];
  }

  /** The container entries without copying them. */
  eachContainer(): IterableIterator<ContainerEntry> {
    return this.containers.values();
  }

  host(id: string): ComputeHost | undefined {
    return this.hosts.get(id);
  }

  allHosts(): ComputeHost[] {
    return [...this.hosts.values()];
  }

  /**
   * Records a write this process made, before its change arrives, so the next request sees it at
   * once. The published change then carries the same revision and is skipped.
   */
  observe(entry: ContainerEntry): void {
    const held = this.containers.get(entry.id)?.rev ?? this.tombstones.get(`container:${entry.id}`);
    if (held !== undefined && held >= entry.rev) return;
    if (entry.state === 'gone') {
      this.tomb(`container:${entry.id}`, entry.rev);
      this.dropContainer(entry.id);
    } else {
      this.putContainer(entry);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.probeTimer?.cancel();
    await this.subscription?.unsubscribe();
    this.removeAllListeners();
  }
}
