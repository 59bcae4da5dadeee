// The CMDB's data: apps (what a tenant runs), container entries (one per container that exists
// or is wanted) and compute hosts (one per dispatcher). Times are milliseconds since the epoch.

import type { Static } from '@sinclair/typebox';
import type { AppSpecSchema } from './app-schema.js';
import type { UsageCursor, UsageMinute, UsageReport } from './usage.js';
import type { LogPage, LogQuery, NewLogLine } from './logs.js';

export type ContainerState = 'registered' | 'starting' | 'ready' | 'draining' | 'gone';

/** States of an entry that counts against maxContainers: draining ones are on their way out. */
export const liveStates: readonly ContainerState[] = ['registered', 'starting', 'ready'];

/**
 * What a tenant runs, as stored: declared once, with every field's meaning and unit, as a schema
 * in app-schema.ts (which the CoreAPI validates with and documents in its OpenAPI document).
 */
export type AppSpec = Static<typeof AppSpecSchema>;

export interface App extends AppSpec {
  /** CMDB revision of the last write; caches apply a change only when it is newer. */
  rev: number;
  createdAt: number;
  updatedAt: number;
}

export interface ContainerEntry {
  id: string;
  app: string;
  /** Compute host whose dispatcher runs it. */
  host: string;
  state: ContainerState;
  /** host:port the dispatcher forwards to, once started. */
  address: string | null;
  /** The engine's id of the running container. */
  runtimeId: string | null;
  /** Image the container was started from. */
  image: string | null;
  cpus: number | null;
  /**
   * When `cpus` was last set by hand (`app scale --cpus`); the dispatcher applies a quota change
   * it has not seen yet. Its own changes (the autoscaler's) leave this alone.
   */
  cpusSetAt?: number | null;
  /**
   * Digest of the spec fields the container was started from that it cannot change live
   * (dispatcher/rollout.ts): an app update that changes them replaces it, one container at a time.
   */
  specHash?: string | null;
  createdAt: number;
  startedAt: number | null;
  readyAt: number | null;
  expiresAt: number | null;
  /** Since when the container is frozen (no CPU; the next request thaws it); null: not frozen. */
  frozenAt: number | null;
  /** Why the last start failed; the dispatcher answers with it until retryAt. */
  lastError: string | null;
  lastErrorCode: string | null;
  retryAt: number | null;
  rev: number;
}

export interface ComputeHost {
  id: string;
  dispatcherUrl: string;
  /** Live containers this host takes. */
  capacity: number;
  startedAt: number;
  heartbeatAt: number;
  /**
   * Since when the operator drains this host (`host drain`): no new containers are placed on it,
   * and its dispatcher replaces its containers elsewhere, make before break. Null or absent: it
   * takes new containers. Set only by setHostDrained; a heartbeat keeps it.
   */
  drainedAt?: number | null;
  rev: number;
}

export type NewContainer = Omit<ContainerEntry, 'rev'>;
/** What a dispatcher's heartbeat writes; the drain mark is the operator's and is kept. */
export type HostInfo = Omit<ComputeHost, 'rev' | 'drainedAt'>;

/** The fields a transition may change; null clears a field. */
export type ContainerPatch = Partial<Omit<ContainerEntry, 'id' | 'app' | 'host' | 'state' | 'rev' | 'createdAt'>>;

export type Change =
  | { kind: 'app'; op: 'put'; rev: number; value: App }
  | { kind: 'app'; op: 'delete'; rev: number; id: string; value: App }
  | { kind: 'container'; op: 'put'; rev: number; value: ContainerEntry }
  | { kind: 'container'; op: 'delete'; rev: number; id: string; value: ContainerEntry }
  | { kind: 'host'; op: 'put'; rev: number; value: ComputeHost }
  | { kind: 'host'; op: 'delete'; rev: number; id: string; value: ComputeHost };

/**
 * The whole CMDB for a cache to start from. It need not be read at one instant (Redis reads it in
 * chunks): every object in it is at least as new as `rev` and carries its own revision, and
 * whatever changed after `rev` (an object written, deleted or created while the snapshot was
 * read) has a change with a higher revision. A cache that subscribed before asking for the
 * snapshot and applies those changes after it, each only if newer than what it holds, ends up
 * exact (CmdbCache).
 */
export interface Snapshot {
  /** Every change up to this revision is in the snapshot; changes with a higher rev may not be. */
  rev: number;
  apps: App[];
  containers: ContainerEntry[];
  hosts: ComputeHost[];
}

export interface ContainerFilter {
  app?: string;
  host?: string;
}

export interface RegisterOptions {
  /**
   * Register only if the app has fewer live entries than this; otherwise return one of the
   * existing ones (ready first). With 1, concurrent first requests on many proxies create a single
   * entry; with minContainers, many dispatchers keeping the minimum do not overshoot it.
   */
  ifFewerThan?: number;
  /**
   * Allow this many entries beyond maxContainers (make-before-break replacements of expiring
   * containers): the limit check becomes `live >= maxContainers + surge`. Default 0.
   */
  surge?: number;
  /**
   * Hosts whose entries neither count (against ifFewerThan and maxContainers) nor are returned:
   * those the caller judges not live (isHostLive, or a dispatcher that refused connections), so
   * that a dead host's containers are replaced at once rather than after its entries are swept.
   * Entries on hosts not listed count, so a caller that knows less counts more (the safe side).
   */
  ignoreHosts?: readonly string[];
}

export type { UsageCursor, UsageMinute, UsageReport, UsageTotals } from './usage.js';
export type { LogLine, LogPage, LogQuery, NewLogLine } from './logs.js';

export type AppEventKind =
  | 'scale-up' | 'scale-down' | 'scale-out' | 'scale-in' | 'replace' | 'ready' | 'start-failed' | 'drain' | 'died' | 'manual'
  | 'freeze' | 'thaw';

/** Something that happened to an app's containers, and why; kept for people, never acted on. */
export interface AppEvent {
  /** ms since epoch. */
  at: number;
  app: string;
  kind: AppEventKind;
  /** Entry id, when the event is about one container. */
  container: string | null;
  host: string | null;
  /** Why, in words, e.g. "p95 812 ms > target 500 ms over 2 s, not throttled (3%)". */
  reason: string;
  /** Quota changes: cores before and after; scale-out/in: live containers before and after. */
  from: number | null;
  to: number | null;
}

/** How many events the CMDB keeps per app (the newest), and for how long an app's list lives unwritten. */
export const EVENTS_KEPT = 200;
export const EVENTS_TTL_MS = 7 * 24 * 3600 * 1000;

/** One running container's load as its dispatcher last measured it. */
export interface ContainerStats {
  id: string;
  app: string;
  host: string;
  /** Current CPU quota, cores. */
  cpus: number;
  inflight: number;
  held: number;
  /** Requests per second over the last 10 s. */
  rps: number;
  /** Latency to the end of the answer over the last 10 s; null without requests. */
  meanMs: number | null;
  p95Ms: number | null;
  /** Share of CFS periods throttled over the last ~2 s. */
  throttledShare: number | null;
  /** Cores used over the last ~2 s. */
  cpuUsage: number | null;
  lastRequestAt: number | null;
  /** When sampled. */
  at: number;
}

export interface TransitionGuard {
  /**
   * Only while the entry's app has more than this many ready entries (counting this one): scale-in
   * on several hosts, or two asks at once, never takes an app below its minimum.
   */
  appReadyAbove?: number;
}

/** What a probe of the CMDB saw (Store.probe). */
export interface CmdbProbe {
  /** The CMDB's epoch: a random id written at its first use; a new one means it lost its data. */
  epoch: string;
  /** Its revision counter: a cache that has not seen this revision soon after missed changes. */
  rev: number;
}

/** The answer to a claim of a host id: held by the caller, or by another owner for ttlMs more. */
export type HostLease = { held: true } | { held: false; owner: string; ttlMs: number };

export interface Subscription {
  unsubscribe(): Promise<void>;
}

export interface ChangeListener {
  onChange(change: Change): void;
  /** Changes may have been missed (the connection to the CMDB dropped and came back). */
  onResync(): void;
}

/**
 * The CMDB. Every write that reads first is atomic, and every write publishes a Change so that
 * caches (the proxy's routes, the dispatcher's entries) stay fresh without polling.
 */
export interface Store {
  readonly kind: 'redis' | 'memory';

  /** Throws FC_ERR_APP_EXISTS, FC_ERR_HOSTNAME_TAKEN. */
  createApp(spec: AppSpec, now: number): Promise<App>;
  /** Replaces the spec. Throws FC_ERR_APP_NOT_FOUND, FC_ERR_HOSTNAME_TAKEN. */
  updateApp(spec: AppSpec, now: number): Promise<App>;
  /** Removes the app; its live entries turn draining (never-started ones go). Throws FC_ERR_APP_NOT_FOUND. */
  deleteApp(name: string): Promise<App>;
  getApp(name: string): Promise<App | null>;
  listApps(): Promise<App[]>;
  appForHostname(hostname: string): Promise<App | null>;

  /** Adds a container entry, within the app's maxContainers (+ surge). Throws FC_ERR_APP_NOT_FOUND, FC_ERR_MAX_CONTAINERS. */
  registerContainer(entry: NewContainer, options?: RegisterOptions): Promise<{ entry: ContainerEntry; created: boolean }>;
  getContainer(id: string): Promise<ContainerEntry | null>;
  listContainers(filter?: ContainerFilter): Promise<ContainerEntry[]>;
  /**
   * Moves an entry to `to` if it is in one of `from`, applying the patch; `gone` deletes it.
   * Returns the new entry, or null when it is missing or in another state, or when the guard
   * does not hold.
   */
  transitionContainer(id: string, from: readonly ContainerState[], to: ContainerState, patch?: ContainerPatch, guard?: TransitionGuard): Promise<ContainerEntry | null>;

  /** Writes the host's record, keeping its drain mark. */
  heartbeatHost(host: HostInfo): Promise<ComputeHost>;
  /** Sets (a time) or clears (null) the host's drain mark. Returns null when the host is unknown. */
  setHostDrained(id: string, drainedAt: number | null): Promise<ComputeHost | null>;
  removeHost(id: string): Promise<void>;
  listHosts(): Promise<ComputeHost[]>;

  /**
   * Records an event; the newest EVENTS_KEPT per app are kept. Publishes no Change (events are
   * for people, not caches). Deleting the app deletes its events; events of an app that no longer
   * exists fade after EVENTS_TTL_MS (Redis) and are never listed by the CoreAPI.
   */
  appendEvent(event: AppEvent): Promise<void>;
  /** The app's newest events, newest first, at most `limit` (and at most EVENTS_KEPT). */
  listEvents(app: string, limit: number): Promise<AppEvent[]>;

  /**
   * Replaces this host's container stats; they vanish once `now + ttlMs` has passed (as `now`
   * given to listStats sees it), so a silent host's numbers do not linger. Publishes no Change.
   */
  reportStats(host: string, stats: ContainerStats[], now: number, ttlMs: number): Promise<void>;
  /** Every host's unexpired stats. */
  listStats(now: number): Promise<ContainerStats[]>;

  /**
   * The installation's cluster secret (proxies sign their requests to dispatchers with it): the
   * stored one, or `candidate`, stored now, when there is none. Concurrent first callers agree.
   */
  clusterSecret(candidate: string): Promise<string>;

  /**
   * Claims the host id for `owner`, or renews the claim if `owner` holds it, for ttlMs (`now` is
   * the memory store's clock; Redis uses its own). While another owner holds it, says who and for
   * how long more. A dispatcher claims its id before it touches anything and renews it with its
   * heartbeat, so a second one started with the same id by mistake refuses to start.
   */
  claimHost(id: string, owner: string, ttlMs: number, now: number): Promise<HostLease>;
  /** Gives the claim up if `owner` holds it (a clean stop), so the next start need not wait it out. */
  releaseHost(id: string, owner: string): Promise<void>;

  /**
   * Usage for billing (cmdb/usage.ts), atomically: for each report, adds to its app's rollup of
   * the minute of `now` what its figures grew since the container's cursor (all of them when it
   * has none), then moves the cursor there (a final report removes it). Rollups live for
   * retentionMs past their hour. Publishes no Change.
   */
  reportUsage(host: string, reports: readonly UsageReport[], now: number, retentionMs: number): Promise<void>;
  /** The cursors of a host's containers: what an adopting dispatcher continues from. */
  usageCursors(host: string): Promise<UsageCursor[]>;
  /** Forgets cursors of containers that are gone without a final report (they died unseen). */
  dropUsageCursors(host: string, containers: readonly string[]): Promise<void>;
  /** The app's rollup minutes in [from, to), oldest first; minutes without usage are left out. */
  readUsage(app: string, from: number, to: number): Promise<UsageMinute[]>;

  /**
   * Appends lines to the app's recent log (cmdb/logs.ts), keeping the newest `keep`, only while
   * the app exists. Returns the app's newest sequence number, 0 when the app does not exist.
   * Publishes no Change. Deleting the app deletes its log.
   */
  appendLogs(app: string, lines: readonly NewLogLine[], keep: number): Promise<number>;
  readLogs(app: string, query: LogQuery): Promise<LogPage>;

  snapshot(): Promise<Snapshot>;
  subscribe(listener: ChangeListener): Promise<Subscription>;
  ping(): Promise<void>;
  /**
   * The CMDB's epoch and revision, within the CMDB deadline. Writes the epoch when it is missing:
   * at the first use, and after the CMDB lost its data (restarted empty), when the new epoch tells
   * the caches to resync and the dispatchers to re-announce themselves and reconcile.
   */
  probe(): Promise<CmdbProbe>;
  close(): Promise<void>;
}
