// The CMDB inside the process, for a single host (`fastcontainer up` without REDIS_URL). It keeps
// the Redis store's semantics exactly (the same contract tests run against both): one global
// revision, atomic transitions, a change published for every write.

import { randomBytes } from 'node:crypto';
import { cmdbErrors } from './errors.js';
import { MAX_LOG_LINES, pickLogLines, type LogLine, type LogPage, type LogQuery, type NewLogLine } from './logs.js';
import { HOUR_MS, minuteOf, usageDelta, usageFigures, wholeUsage, zeroUsage, type UsageCursor, type UsageMinute, type UsageReport, type UsageTotals } from './usage.js';
import {
  EVENTS_KEPT, liveStates,
  type App, type AppEvent, type AppSpec, type Change, type ChangeListener, type CmdbProbe, type ComputeHost, type ContainerEntry,
  type ContainerFilter, type HostLease, type ContainerPatch, type ContainerState, type ContainerStats, type HostInfo, type NewContainer, type RegisterOptions, type Snapshot, type Store,
  type Subscription, type TransitionGuard,
} from './types.js';

const copy = <T>(value: T): T => structuredClone(value);

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  private rev = 0;
  private readonly apps = new Map<string, App>();
  private readonly hostnames = new Map<string, string>();
  private readonly containers = new Map<string, ContainerEntry>();
  private readonly hosts = new Map<string, ComputeHost>();
  private readonly listeners = new Set<ChangeListener>();
  /** Per app, newest first. */
  private readonly events = new Map<string, AppEvent[]>();
  private readonly stats = new Map<string, { expiresAt: number; stats: ContainerStats[] }>();
  private readonly leases = new Map<string, { owner: string; expiresAt: number }>();
  /** Per host, per container entry id. */
  private readonly usageCursorsByHost = new Map<string, Map<string, UsageCursor>>();
  /** Per app, per minute; with when each minute's hour ends plus the retention. */
  private readonly usageByApp = new Map<string, Map<number, { usage: UsageTotals; expiresAt: number }>>();
  /** Per app, newest last, and the app's last sequence number (kept past a deletion, as in Redis). */
  private readonly logs = new Map<string, LogLine[]>();
  private readonly logSeq = new Map<string, number>();
  /** This store's data lives and dies with the process: one epoch for its whole life. */
  private readonly epoch = randomBytes(8).toString('hex');

  private publish(change: Change): void {
    const frozen = copy(change);
    // Delivered after the write returns, as a Redis subscriber would see it.
    queueMicrotask(() => {
      for (const l of this.listeners) l.onChange(copy(frozen));
    });
  }

  private claimHostnames(spec: AppSpec): void {
    for (const h of spec.hostnames) {
      const owner = this.hostnames.get(h);
      if (owner !== undefined && owner !== spec.name) throw cmdbErrors.hostnameTaken(h, owner);
    }
  }

  async createApp(spec: AppSpec, now: number): Promise<App> {
    if (this.apps.has(spec.name)) throw cmdbErrors.appExists(spec.name);
    this.claimHostnames(spec);
    const app: App = { rev: ++this.rev, ...copy(spec), createdAt: now, updatedAt: now };
    this.apps.set(app.name, app);
    for (const h of spec.hostnames) this.hostnames.set(h, spec.name);
    this.publish({ kind: 'app', op: 'put', rev: app.rev, value: app });
    return copy(app);
  }

  async updateApp(spec: AppSpec, now: number): Promise<App> {
    const old = this.apps.get(spec.name);
    if (old === undefined) throw cmdbErrors.appNotFound(spec.name);
    this.claimHostnames(spec);
    for (const h of old.hostnames) if (!spec.hostnames.includes(h) && this.hostnames.get(h) === spec.name) this.hostnames.delete(h);
    const app: App = { rev: ++this.rev, ...copy(spec), createdAt: old.createdAt, updatedAt: now };
    this.apps.set(app.name, app);
    for (const h of spec.hostnames) this.hostnames.set(h, spec.name);
    this.publish({ kind: 'app', op: 'put', rev: app.rev, value: app });
    return copy(app);
  }

  async deleteApp(name: string): Promise<App> {
    const old = this.apps.get(name);
    if (old === undefined) throw cmdbErrors.appNotFound(name);
    for (const h of old.hostnames) if (this.hostnames.get(h) === name) this.hostnames.delete(h);
    for (const c of [...this.containers.values()].filter((c) => c.app === name)) {
      if (c.state === 'registered') this.setContainer({ ...c, state: 'gone' });
      else if (c.state === 'starting' || c.state === 'ready') this.setContainer({ ...c, state: 'draining' });
    }
    this.apps.delete(name);
    this.events.delete(name);
    this.logs.delete(name);
    this.publish({ kind: 'app', op: 'delete', rev: ++this.rev, id: name, value: old });
    return copy(old);
  }

  async getApp(name: string): Promise<App | null> {
    const app = this.apps.get(name);
    return app === undefined ? null : copy(app);
  }

  async listApps(): Promise<App[]> {
    return copy([...this.apps.values()]);
  }

  async appForHostname(hostname: string): Promise<App | null> {
    const name = this.hostnames.get(hostname);
    return name === undefined ? null : this.getApp(name);
  }

  async registerContainer(entry: NewContainer, options: RegisterOptions = {}): Promise<{ entry: ContainerEntry; created: boolean }> {
    const app = this.apps.get(entry.app);
    if (app === undefined) throw cmdbErrors.appNotFound(entry.app);
    const ignored = new Set(options.ignoreHosts ?? []);
    const live = [...this.containers.values()].filter((c) => c.app === entry.app && liveStates.includes(c.state) && !ignored.has(c.host));
    const fewerThan = options.ifFewerThan ?? 0;
    if (fewerThan > 0 && live.length >= fewerThan) {
      // Ready first, then starting, then registered; the oldest among equals.
      const best = [...live].sort((a, b) => liveStates.indexOf(b.state) - liveStates.indexOf(a.state) || a.createdAt - b.createdAt)[0] as ContainerEntry;
      return { entry: copy(best), created: false };
    }
    const surge = Math.max(0, options.surge ?? 0);
    if (live.length >= app.maxContainers + surge) throw cmdbErrors.maxContainers(app.name, live.length, app.maxContainers, surge);
    const stored = this.setContainer({ ...copy(entry), rev: 0 });
    return { entry: copy(stored), created: true };
  }

  async getContainer(id: string): Promise<ContainerEntry | null> {
    const c = this.containers.get(id);
    return c === undefined ? null : copy(c);
  }

  async listContainers(filter: ContainerFilter = {}): Promise<ContainerEntry[]> {
    return copy(
      [...this.containers.values()].filter(
        (c) => (filter.app === undefined || c.app === filter.app) && (filter.host === undefined || c.host === filter.host),
      ),
    );
  }

  async transitionContainer(id: string, from: readonly ContainerState[], to: ContainerState, patch: ContainerPatch = {}, guard: TransitionGuard = {}): Promise<ContainerEntry | null> {
    const c = this.containers.get(id);
    if (c === undefined || !from.includes(c.state)) return null;
    if (guard.appReadyAbove !== undefined) {
      let ready = 0;
      for (const e of this.containers.values()) if (e.app === c.app && e.state === 'ready') ready += 1;
      if (ready <= guard.appReadyAbove) return null;
    }
    return copy(this.setContainer({ ...c, ...copy(patch), state: to }));
  }

  /** Stores (or, for gone, deletes) an entry under the next revision and publishes the change. */
  private setContainer(c: ContainerEntry): ContainerEntry {
    const next: ContainerEntry = { ...c, rev: ++this.rev };
    if (next.state === 'gone') {
      this.containers.delete(next.id);
      this.publish({ kind: 'container', op: 'delete', rev: next.rev, id: next.id, value: next });
    } else {
      this.containers.set(next.id, next);
      this.publish({ kind: 'container', op: 'put', rev: next.rev, value: next });
    }
    return next;
  }

  async heartbeatHost(host: HostInfo): Promise<ComputeHost> {
    // The drain mark is the operator's: a heartbeat keeps the stored one and never writes its own.
    const { drainedAt: _operators, ...info } = copy(host) as HostInfo & { drainedAt?: unknown };
    const drainedAt = this.hosts.get(host.id)?.drainedAt;
    const stored: ComputeHost = { rev: ++this.rev, ...(typeof drainedAt === 'number' ? { drainedAt } : {}), ...info };
    this.hosts.set(host.id, stored);
    this.publish({ kind: 'host', op: 'put', rev: stored.rev, value: stored });
    return copy(stored);
  }

  async setHostDrained(id: string, drainedAt: number | null): Promise<ComputeHost | null> {
    const old = this.hosts.get(id);
    if (old === undefined) return null;
    const stored: ComputeHost = { ...old, rev: ++this.rev, drainedAt };
    this.hosts.set(id, stored);
    this.publish({ kind: 'host', op: 'put', rev: stored.rev, value: stored });
    return copy(stored);
  }

  async removeHost(id: string): Promise<void> {
    const old = this.hosts.get(id);
    if (old === undefined) return;
    this.hosts.delete(id);
    this.publish({ kind: 'host', op: 'delete', rev: ++this.rev, id, value: old });
  }

  async listHosts(): Promise<ComputeHost[]> {
    return copy([...this.hosts.values()]);
  }

  async appendEvent(event: AppEvent): Promise<void> {
    // Only while the app exists, as in Redis: a deleted app's draining does not bring its list back.
    if (!this.apps.has(event.app)) return;
    const list = this.events.get(event.app) ?? [];
    list.unshift(copy(event));
    if (list.length > EVENTS_KEPT) list.length = EVENTS_KEPT;
    this.events.set(event.app, list);
  }

  async listEvents(app: string, limit: number): Promise<AppEvent[]> {
    const n = Math.min(EVENTS_KEPT, Math.max(0, Math.floor(limit)));
    return copy((this.events.get(app) ?? []).slice(0, n));
  }

  async reportStats(host: string, stats: ContainerStats[], now: number, ttlMs: number): Promise<void> {
    this.stats.set(host, { expiresAt: now + ttlMs, stats: copy(stats) });
  }

  async listStats(now: number): Promise<ContainerStats[]> {
    const out: ContainerStats[] = [];
    for (const [host, s] of this.stats) {
      if (s.expiresAt <= now) this.stats.delete(host);
      else out.push(...s.stats);
    }
    return copy(out);
  }

  async reportUsage(host: string, reports: readonly UsageReport[], now: number, retentionMs: number): Promise<void> {
    let cursors = this.usageCursorsByHost.get(host);
    if (cursors === undefined) this.usageCursorsByHost.set(host, (cursors = new Map()));
    const minute = minuteOf(now);
    const expiresAt = minute - (minute % HOUR_MS) + HOUR_MS + retentionMs;
    for (const r of reports) {
      const totals = wholeUsage(r.totals);
      const old = cursors.get(r.container);
      const prev = old !== undefined && old.app === r.app ? old.totals : null;
      const delta = usageDelta(prev, totals);
      if (usageFigures.some((f) => delta[f] > 0)) {
        let minutes = this.usageByApp.get(r.app);
        if (minutes === undefined) this.usageByApp.set(r.app, (minutes = new Map()));
        const m = minutes.get(minute) ?? { usage: zeroUsage(), expiresAt };
        for (const f of usageFigures) m.usage[f] += delta[f];
        m.expiresAt = expiresAt;
        minutes.set(minute, m);
        for (const [at, v] of minutes) if (v.expiresAt <= now) minutes.delete(at);
      }
      if (r.final) {
        cursors.delete(r.container);
        continue;
      }
      // Figures only grow: a lower one keeps the cursor where it was.
      const kept = zeroUsage();
      for (const f of usageFigures) kept[f] = prev === null ? totals[f] : Math.max(prev[f], totals[f]);
      cursors.set(r.container, { container: r.container, app: r.app, at: now, totals: kept });
    }
  }

  async usageCursors(host: string): Promise<UsageCursor[]> {
    return copy([...(this.usageCursorsByHost.get(host)?.values() ?? [])]);
  }

  async dropUsageCursors(host: string, containers: readonly string[]): Promise<void> {
    const cursors = this.usageCursorsByHost.get(host);
    for (const c of containers) cursors?.delete(c);
  }

  async readUsage(app: string, from: number, to: number): Promise<UsageMinute[]> {
    const minutes = this.usageByApp.get(app);
    if (minutes === undefined) return [];
    return [...minutes]
      .filter(([at]) => at >= from && at < to)
      .sort((a, b) => a[0] - b[0])
      .map(([at, v]) => ({ at, usage: copy(v.usage) }));
  }

  async appendLogs(app: string, lines: readonly NewLogLine[], keep: number): Promise<number> {
    if (!this.apps.has(app)) return 0;
    const n = Math.min(MAX_LOG_LINES, Math.max(0, Math.floor(keep)));
    let seq = this.logSeq.get(app) ?? 0;
    const list = this.logs.get(app) ?? [];
    for (const l of n === 0 ? [] : lines.slice(-n)) list.push({ ...copy(l), seq: ++seq });
    if (list.length > Math.max(1, n)) list.splice(0, list.length - Math.max(1, n));
    this.logs.set(app, list);
    this.logSeq.set(app, seq);
    return seq;
  }

  async readLogs(app: string, q: LogQuery): Promise<LogPage> {
    const limit = Math.max(0, Math.min(MAX_LOG_LINES, Math.floor(q.limit)));
    const list = this.logs.get(app) ?? [];
    const onlyAfter = q.since === undefined && q.container === undefined;
    const scan = Math.max(limit, Math.min(MAX_LOG_LINES, Math.floor(onlyAfter ? limit : q.scan)));
    const newestFirst = list.slice(-scan).reverse();
    return { lines: copy(pickLogLines(newestFirst, q, limit)), last: this.logSeq.get(app) ?? 0 };
  }

  async snapshot(): Promise<Snapshot> {
    return {
      rev: this.rev,
      apps: copy([...this.apps.values()]),
      containers: copy([...this.containers.values()]),
      hosts: copy([...this.hosts.values()]),
    };
  }

  async subscribe(listener: ChangeListener): Promise<Subscription> {
    this.listeners.add(listener);
    return { unsubscribe: async () => void this.listeners.delete(listener) };
  }

  private secret: string | undefined;

  async clusterSecret(candidate: string): Promise<string> {
    this.secret ??= candidate;
    return this.secret;
  }

  async ping(): Promise<void> {}

  async probe(): Promise<CmdbProbe> {
    return { epoch: this.epoch, rev: this.rev };
  }

  async claimHost(id: string, owner: string, ttlMs: number, now: number): Promise<HostLease> {
    const held = this.leases.get(id);
    if (held === undefined || held.expiresAt <= now || held.owner === owner) {
      this.leases.set(id, { owner, expiresAt: now + Math.max(1, Math.ceil(ttlMs)) });
      return { held: true };
    }
    return { held: false, owner: held.owner, ttlMs: held.expiresAt - now };
  }

  async releaseHost(id: string, owner: string): Promise<void> {
    if (this.leases.get(id)?.owner === owner) this.leases.delete(id);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
