// The CMDB in Redis, shared by every role on every host. Each read-modify-write is one Lua script
// (src/cmdb/lua), so transitions are atomic however many proxies and dispatchers race; each script
// publishes its change on one channel, which keeps the roles' caches fresh.

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { FcError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { withoutPassword } from '../shared/redact.js';
import { cmdbErrors } from './errors.js';
import { cmdbKeys, type CmdbKeys } from './keys.js';
import { LOGS_TTL_MS, MAX_LOG_LINES, pickLogLines, type LogLine, type LogPage, type LogQuery, type NewLogLine } from './logs.js';
import { HOUR_MS, hoursOf, minuteOf, usageFigures, wholeUsage, zeroUsage, type UsageCursor, type UsageMinute, type UsageReport, type UsageTotals } from './usage.js';
import {
  EVENTS_KEPT, EVENTS_TTL_MS,
  type App, type AppEvent, type AppSpec, type Change, type ChangeListener, type ComputeHost, type ContainerEntry, type ContainerFilter,
  type CmdbProbe, type ContainerPatch, type ContainerState, type ContainerStats, type HostInfo, type HostLease, type NewContainer,
  type RegisterOptions, type Snapshot, type Store, type Subscription, type TransitionGuard,
} from './types.js';

const scriptNames = [
  'create-app', 'update-app', 'delete-app', 'register-container', 'transition-container', 'put-host', 'remove-host', 'append-event',
  'probe', 'claim-host', 'release-host', 'drain-host', 'report-usage', 'append-logs',
] as const;

/** The default deadline of every command (FC_CMDB_TIMEOUT). */
export const DEFAULT_CMDB_TIMEOUT_MS = 1000;
type ScriptName = (typeof scriptNames)[number];

/**
 * Keys per MGET of a snapshot, and MGETs in flight. Small chunks: a chunk waiting to be parsed
 * when the young generation is collected is copied, and if it waits again, kept until a full GC;
 * with 1,000-key chunks the sync of 100,000 apps ended with about 25 MB more heap (and RSS) than
 * with 100. A few in flight, so that Redis always has the next one to answer.
 */
const SNAPSHOT_CHUNK = 100;
const SNAPSHOT_IN_FLIGHT = 4;

interface Script {
  source: string;
  sha: string;
}

function loadScripts(): Record<ScriptName, Script> {
  const out = {} as Record<ScriptName, Script>;
  for (const name of scriptNames) {
    const source = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
    out[name] = { source, sha: createHash('sha1').update(source).digest('hex') };
  }
  return out;
}

/** Lua errors come back as "FC_ERR_CODE {json details}". */
function fromScriptError(err: unknown, keys: CmdbKeys): never {
  const message = err instanceof Error ? err.message : String(err);
  const m = /^(FC_ERR_[A-Z_]+) (\{.*\})$/.exec(message);
  if (m === null) throw cmdbErrors.unavailable(err);
  const details = JSON.parse(m[2] as string) as Record<string, unknown>;
  switch (m[1]) {
    case 'FC_ERR_APP_EXISTS': throw cmdbErrors.appExists(String(details.app));
    case 'FC_ERR_APP_NOT_FOUND': throw cmdbErrors.appNotFound(String(details.app));
    case 'FC_ERR_HOSTNAME_TAKEN': throw cmdbErrors.hostnameTaken(String(details.key).slice(keys.prefixes.hostname.length), String(details.app));
    case 'FC_ERR_MAX_CONTAINERS': throw cmdbErrors.maxContainers(String(details.app), Number(details.live), Number(details.maxContainers), Number(details.surge ?? 0));
    default: throw new FcError('FC_ERR_INTERNAL', message);
  }
}

export interface RedisStoreOptions {
  /** redis:// URL; with sentinels, only its password, database and TLS are used. */
  url: string;
  prefix: string;
  logger: Logger;
  /**
   * Deadline of every command, ms (FC_CMDB_TIMEOUT). A stalled Redis (SIGSTOP, a full disk, a
   * partition that drops packets) keeps the TCP connection open and never answers: without a
   * deadline every caller would wait for the whole stall.
   */
  commandTimeoutMs?: number;
  /** Sentinels to ask for the primary (REDIS_SENTINELS); every connection follows a failover. */
  sentinels?: readonly { host: string; port: number }[];
  sentinelName?: string;
  /**
   * The sentinels' own credentials (REDIS_SENTINEL_PASSWORD, REDIS_SENTINEL_USERNAME), sent to
   * each sentinel asked for the primary and each one listened to for a failover; the primary's
   * password comes from the URL.
   */
  sentinelPassword?: string;
  sentinelUsername?: string;
}

/**
 * The ioredis options of every connection of a store: the deadline, and Sentinel when asked for.
 * `opened` says whether the store's first connection has been made: until then a round of the
 * sentinels in which none names the primary (refused, a wrong password, down) fails the start,
 * as a plain URL's first refused connection does, instead of being retried for ever in silence.
 */
function connectionOptions(options: RedisStoreOptions, opened: () => boolean): RedisOptions {
  const timeout = options.commandTimeoutMs ?? DEFAULT_CMDB_TIMEOUT_MS;
  const base: RedisOptions = {
    lazyConnect: true,
    maxRetriesPerRequest: 3,
    connectTimeout: Math.max(timeout, 2000),
    commandTimeout: timeout,
    // Back within a second of the CMDB's return, not the default two.
    retryStrategy: (times) => Math.min(times * 100, 1000),
    // A command is sent once or fails: none waits for a reconnection, and none is sent again
    // after one. Otherwise a write whose caller was already answered 503 (its deadline passed)
    // would be applied later (an app created, a container registered, after "unavailable"), and
    // one that Redis ran just before its connection broke would run twice.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
  };
  if (options.sentinels === undefined || options.sentinels.length === 0) return base;
  return {
    ...base,
    sentinels: options.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: options.sentinelName ?? 'mymaster',
    ...(options.sentinelPassword === undefined || options.sentinelPassword === '' ? {} : { sentinelPassword: options.sentinelPassword }),
    ...(options.sentinelUsername === undefined || options.sentinelUsername === '' ? {} : { sentinelUsername: options.sentinelUsername }),
    sentinelCommandTimeout: timeout,
    sentinelRetryStrategy: (times) => (opened() ? Math.min(times * 100, 1000) : null),
    // Told of a failover by the sentinels themselves (+switch-master), not only when the old
    // primary's connection breaks: a primary that was demoted but still answers is left at once.
    failoverDetector: true,
  };
}


function describeTarget(options: RedisStoreOptions): string {
  if (options.sentinels === undefined || options.sentinels.length === 0) return `Redis at ${withoutPassword(options.url)}`;
  return `Redis primary "${options.sentinelName ?? 'mymaster'}" through the sentinels ${options.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
}

/**
 * Why the first connection failed, in words an operator acts on. With sentinels, ioredis says
 * "All sentinels are unreachable" and only the last one's reason; what each sentinel answered
 * (collected from its sentinelError events) names them all, and a refused or missing password
 * says which option to set. No password is ever part of what a server or ioredis answers.
 */
function whyNotConnected(err: unknown, options: RedisStoreOptions, sentinelErrors: readonly string[], lastError: string | undefined): string {
  const message = err instanceof Error ? err.message : String(err);
  // ioredis' "All sentinels are unreachable ...": no round found the primary. Otherwise a sentinel
  // did, and what failed was the primary (a sentinel that failed before is beside the point).
  if (options.sentinels === undefined || options.sentinels.length === 0 || sentinelErrors.length === 0 || !/sentinel/i.test(message)) {
    // A refused connection or ready check (a wrong password) ends in a close, which is what
    // rejects ("Connection is closed."): the error before it says why.
    return lastError !== undefined && message === 'Connection is closed.' ? lastError : message;
  }
  const answers = [...new Set(sentinelErrors.map((m) => m.replace(/^failed to connect to sentinel (\S+) because /, '$1: ')))];
  const text = answers.join('; ');
  const hints: string[] = [];
  if (/NOAUTH/.test(text)) {
    hints.push(options.sentinelPassword === undefined || options.sentinelPassword === ''
      ? 'the sentinels require a password: set REDIS_SENTINEL_PASSWORD (and REDIS_SENTINEL_USERNAME for an ACL user)'
      : 'the sentinels did not take REDIS_SENTINEL_PASSWORD');
  }
  if (/WRONGPASS|invalid password|invalid username-password/i.test(text)) {
    hints.push(`the sentinels refused REDIS_SENTINEL_PASSWORD${options.sentinelUsername === undefined || options.sentinelUsername === '' ? '' : ' for REDIS_SENTINEL_USERNAME'}`);
  }
  // ioredis' words for a sentinel it could not reach at all (refused, reset, timed out).
  if (/Connection is closed/.test(text)) hints.push('"Connection is closed": nothing answers at that address (REDIS_SENTINELS), or it hung up');
  if (/No such master|invalid reply: null/.test(text)) hints.push(`a sentinel monitors no primary named "${options.sentinelName ?? 'mymaster'}" (FC_REDIS_SENTINEL_NAME)`);
  return `no sentinel named the primary (${text})${hints.length === 0 ? '' : `; ${hints.join('; ')}`}`;
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  private readonly keys: CmdbKeys;
  private readonly scripts = loadScripts();
  private readonly subscribers = new Set<Redis>();

  private constructor(private readonly redis: Redis, private readonly options: RedisStoreOptions) {
    this.keys = cmdbKeys(options.prefix);
  }

  static async connect(options: RedisStoreOptions): Promise<RedisStore> {
    let opened = false;
    const connection = connectionOptions(options, () => opened);
    const redis = options.url === '' ? new Redis(connection) : new Redis(options.url, connection);
    redis.on('error', (err: Error) => options.logger.warn({ err: err.message }, 'redis connection error'));
    // What went wrong while connecting, for the error if the connection is not made.
    const sentinelErrors: string[] = [];
    let lastError: string | undefined;
    const onSentinelError = (err: Error) => void sentinelErrors.push(err.message);
    const onError = (err: Error) => void (lastError = err.message);
    redis.on('sentinelError', onSentinelError);
    redis.on('error', onError);
    try {
      await redis.connect();
      opened = true;
    } catch (err) {
      redis.disconnect();
      const details = options.sentinels === undefined || options.sentinels.length === 0
        ? { url: withoutPassword(options.url) }
        : { sentinels: options.sentinels.map((s) => `${s.host}:${s.port}`), sentinelName: options.sentinelName ?? 'mymaster' };
      throw new FcError('FC_ERR_STORE_UNAVAILABLE', `cannot connect to ${describeTarget(options)}: ${whyNotConnected(err, options, sentinelErrors, lastError)}`, details, { cause: err });
    } finally {
      redis.off('sentinelError', onSentinelError);
      redis.off('error', onError);
    }
    return new RedisStore(redis, options);
  }

  private async run(name: ScriptName, keys: string[], args: (string | number)[]): Promise<unknown> {
    const script = this.scripts[name];
    try {
      try {
        return await this.redis.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        return await this.redis.eval(script.source, keys.length, ...keys, ...args);
      }
    } catch (err) {
      fromScriptError(err, this.keys);
    }
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw cmdbErrors.unavailable(err);
    }
  }

  async createApp(spec: AppSpec, now: number): Promise<App> {
    const k = this.keys;
    const body = JSON.stringify({ ...spec, createdAt: now, updatedAt: now });
    const json = await this.run('create-app', [k.app(spec.name), k.apps, k.rev, k.changes, ...spec.hostnames.map(k.hostname)], [spec.name, body]);
    return JSON.parse(json as string) as App;
  }

  async updateApp(spec: AppSpec, now: number): Promise<App> {
    const k = this.keys;
    const body = JSON.stringify({ ...spec, updatedAt: now });
    const json = await this.run('update-app', [k.app(spec.name), k.rev, k.changes, ...spec.hostnames.map(k.hostname)], [spec.name, body, k.prefixes.hostname]);
    return JSON.parse(json as string) as App;
  }

  async deleteApp(name: string): Promise<App> {
    const k = this.keys;
    const json = await this.run('delete-app', [k.app(name), k.apps, k.rev, k.changes, k.appContainers(name), k.containers, k.events(name), k.logs(name)], [name, k.prefixes.hostname, k.prefixes.container]);
    return JSON.parse(json as string) as App;
  }

  async getApp(name: string): Promise<App | null> {
    const json = await this.call(() => this.redis.get(this.keys.app(name)));
    return json === null ? null : (JSON.parse(json) as App);
  }

  async listApps(): Promise<App[]> {
    const names = await this.call(() => this.redis.smembers(this.keys.apps));
    return this.getMany<App>(names.map(this.keys.app));
  }

  async appForHostname(hostname: string): Promise<App | null> {
    const name = await this.call(() => this.redis.get(this.keys.hostname(hostname)));
    return name === null ? null : this.getApp(name);
  }

  async registerContainer(entry: NewContainer, options: RegisterOptions = {}): Promise<{ entry: ContainerEntry; created: boolean }> {
    const k = this.keys;
    const reply = (await this.run(
      'register-container',
      [k.app(entry.app), k.appContainers(entry.app), k.containers, k.container(entry.id), k.rev, k.changes],
      [
        entry.id, JSON.stringify(entry), String(options.ifFewerThan ?? 0), k.prefixes.container, String(Math.max(0, options.surge ?? 0)),
        JSON.stringify(options.ignoreHosts ?? []),
      ],
    )) as [number, string];
    return { created: reply[0] === 1, entry: JSON.parse(reply[1]) as ContainerEntry };
  }

  async getContainer(id: string): Promise<ContainerEntry | null> {
    const json = await this.call(() => this.redis.get(this.keys.container(id)));
    return json === null ? null : (JSON.parse(json) as ContainerEntry);
  }

  async listContainers(filter: ContainerFilter = {}): Promise<ContainerEntry[]> {
    const set = filter.app === undefined ? this.keys.containers : this.keys.appContainers(filter.app);
    const ids = await this.call(() => this.redis.smembers(set));
    const all = await this.getMany<ContainerEntry>(ids.map(this.keys.container));
    return all.filter((c) => filter.host === undefined || c.host === filter.host);
  }

  async transitionContainer(id: string, from: readonly ContainerState[], to: ContainerState, patch: ContainerPatch = {}, guard: TransitionGuard = {}): Promise<ContainerEntry | null> {
    const k = this.keys;
    const json = await this.run('transition-container', [k.container(id), k.containers, k.rev, k.changes], [
      id, from.join(','), to, JSON.stringify(patch), k.prefixes.appContainers, guard.appReadyAbove ?? -1, k.prefixes.container,
    ]);
    return json === null ? null : (JSON.parse(json as string) as ContainerEntry);
  }

  async heartbeatHost(host: HostInfo): Promise<ComputeHost> {
    const k = this.keys;
    // The drain mark is the operator's: a heartbeat never writes it (put-host keeps the stored one).
    const { drainedAt: _operators, ...info } = host as HostInfo & { drainedAt?: unknown };
    const json = await this.run('put-host', [k.host(host.id), k.hosts, k.rev, k.changes], [host.id, JSON.stringify(info)]);
    return JSON.parse(json as string) as ComputeHost;
  }

  async setHostDrained(id: string, drainedAt: number | null): Promise<ComputeHost | null> {
    const k = this.keys;
    const json = await this.run('drain-host', [k.host(id), k.rev, k.changes], [drainedAt === null ? '' : String(drainedAt)]);
    return json === null ? null : (JSON.parse(json as string) as ComputeHost);
  }

  async removeHost(id: string): Promise<void> {
    const k = this.keys;
    await this.run('remove-host', [k.host(id), k.hosts, k.rev, k.changes], [id]);
  }

  async listHosts(): Promise<ComputeHost[]> {
    const ids = await this.call(() => this.redis.smembers(this.keys.hosts));
    return this.getMany<ComputeHost>(ids.map(this.keys.host));
  }

  async appendEvent(event: AppEvent): Promise<void> {
    await this.run('append-event', [this.keys.app(event.app), this.keys.events(event.app)], [JSON.stringify(event), EVENTS_KEPT, EVENTS_TTL_MS]);
  }

  async listEvents(app: string, limit: number): Promise<AppEvent[]> {
    const n = Math.min(EVENTS_KEPT, Math.max(0, Math.floor(limit)));
    // LRANGE 0 -1 would be everything.
    if (n === 0) return [];
    const list = await this.call(() => this.redis.lrange(this.keys.events(app), 0, n - 1));
    return list.map((j) => JSON.parse(j) as AppEvent);
  }

  async reportStats(host: string, stats: ContainerStats[], now: number, ttlMs: number): Promise<void> {
    const k = this.keys;
    const expiresAt = now + ttlMs;
    // The value carries its own expiry in the caller's clock, so listStats(now) agrees with the
    // memory store under a test clock; PX (in Redis's clock) is what removes it.
    const value = JSON.stringify({ expiresAt, stats });
    await this.exec(this.redis.multi().set(k.stats(host), value, 'PX', Math.max(1, Math.ceil(ttlMs))).zadd(k.statsHosts, expiresAt, host));
  }

  async listStats(now: number): Promise<ContainerStats[]> {
    const k = this.keys;
    const [, hosts] = (await this.exec(this.redis.multi().zremrangebyscore(k.statsHosts, '-inf', now).zrange(k.statsHosts, 0, -1))) as [number, string[]];
    if (hosts.length === 0) return [];
    const values = await this.call(() => this.redis.mget(hosts.map(k.stats)));
    const out: ContainerStats[] = [];
    for (const v of values) {
      if (v === null) continue;
      const { expiresAt, stats } = JSON.parse(v) as { expiresAt: number; stats: ContainerStats[] };
      if (expiresAt > now) out.push(...stats);
    }
    return out;
  }

  async reportUsage(host: string, reports: readonly UsageReport[], now: number, retentionMs: number): Promise<void> {
    if (reports.length === 0) return;
    const k = this.keys;
    const hour = now - (now % HOUR_MS);
    const args: (string | number)[] = [now, minuteOf(now), Math.max(1, Math.ceil(retentionMs + HOUR_MS)), usageFigures.length, ...usageFigures];
    for (const r of reports) {
      const t = wholeUsage(r.totals);
      args.push(r.container, r.app, r.final ? 1 : 0, ...usageFigures.map((f) => t[f]));
    }
    await this.run('report-usage', [k.usageCursors(host), ...reports.map((r) => k.usage(r.app, hour))], args);
  }

  async usageCursors(host: string): Promise<UsageCursor[]> {
    const all = await this.call(() => this.redis.hgetall(this.keys.usageCursors(host)));
    const out: UsageCursor[] = [];
    for (const [container, value] of Object.entries(all)) {
      const [app, at, figures] = value.split('\n');
      if (app === undefined || at === undefined || figures === undefined) continue;
      const values = figures.split(',').map(Number);
      const totals = zeroUsage();
      usageFigures.forEach((f, i) => { totals[f] = values[i] ?? 0; });
      out.push({ container, app, at: Number(at), totals });
    }
    return out;
  }

  async dropUsageCursors(host: string, containers: readonly string[]): Promise<void> {
    if (containers.length === 0) return;
    await this.call(() => this.redis.hdel(this.keys.usageCursors(host), ...containers));
  }

  async readUsage(app: string, from: number, to: number): Promise<UsageMinute[]> {
    const hours = hoursOf(from, to);
    if (hours.length === 0) return [];
    // A pipeline, not a MULTI: a long range (35 days are 840 hashes) must not hold Redis for the
    // other roles; each hour's hash is read whole, which is all the consistency a sum needs.
    const pipeline = this.redis.pipeline();
    for (const h of hours) pipeline.hgetall(this.keys.usage(app, h));
    const replies = (await this.exec(pipeline as unknown as ReturnType<Redis['multi']>)) as Record<string, string>[];
    const byMinute = new Map<number, UsageTotals>();
    for (const fields of replies) {
      for (const [field, value] of Object.entries(fields)) {
        const colon = field.indexOf(':');
        const at = Number(field.slice(0, colon));
        const figure = field.slice(colon + 1) as keyof UsageTotals;
        if (!(at >= from && at < to) || !(usageFigures as readonly string[]).includes(figure)) continue;
        let t = byMinute.get(at);
        if (t === undefined) byMinute.set(at, (t = zeroUsage()));
        t[figure] += Number(value);
      }
    }
    return [...byMinute].sort((a, b) => a[0] - b[0]).map(([at, usage]) => ({ at, usage }));
  }

  async appendLogs(app: string, lines: readonly NewLogLine[], keep: number): Promise<number> {
    const k = this.keys;
    const n = Math.min(MAX_LOG_LINES, Math.max(0, Math.floor(keep)));
    // Keeping none: the lines are not stored, but the app's existence still answers.
    const kept = n === 0 ? [] : lines.slice(-n);
    const last = await this.run('append-logs', [k.app(app), k.logs(app), k.logSeq(app)], [Math.max(1, n), LOGS_TTL_MS, ...kept.map((l) => JSON.stringify(l))]);
    return Number(last);
  }

  async readLogs(app: string, q: LogQuery): Promise<LogPage> {
    const k = this.keys;
    const limit = Math.max(0, Math.min(MAX_LOG_LINES, Math.floor(q.limit)));
    // Only the cursor asked for: the lines after it are the head of the list, at most `limit` of them.
    const onlyAfter = q.since === undefined && q.container === undefined;
    const scan = Math.max(limit, Math.min(MAX_LOG_LINES, Math.floor(onlyAfter ? limit : q.scan)));
    if (scan === 0) return { lines: [], last: Number((await this.call(() => this.redis.get(k.logSeq(app)))) ?? 0) };
    const [last, raw] = (await this.exec(this.redis.multi().get(k.logSeq(app)).lrange(k.logs(app), 0, scan - 1))) as [string | null, string[]];
    return { lines: pickLogLines(raw.map(parseLogEntry), q, limit), last: Number(last ?? 0) };
  }

  /**
   * The whole CMDB, read in pieces so that neither Redis nor this process holds it all at once
   * (100,000 apps are about 45 MB of JSON): first the revision and every id, in one MULTI, then
   * the objects, SNAPSHOT_CHUNK keys per MGET, a few MGETs in flight, each chunk parsed as it
   * arrives. Objects are read after the revision, so each is at least as new as `rev` and carries
   * its own: one written meanwhile may be newer, one deleted meanwhile is missing, one created
   * meanwhile is not listed. Each of those has a change with a higher revision than `rev`, which
   * a cache subscribed before the snapshot applies after it (see Snapshot).
   */
  async snapshot(): Promise<Snapshot> {
    const k = this.keys;
    const [rev, apps, containers, hosts] = (await this.exec(
      this.redis.multi().get(k.rev).smembers(k.apps).smembers(k.containers).smembers(k.hosts),
    )) as [string | null, string[], string[], string[]];
    return {
      rev: Number(rev ?? 0),
      apps: await this.readChunked<App>(apps, k.app),
      containers: await this.readChunked<ContainerEntry>(containers, k.container),
      hosts: await this.readChunked<ComputeHost>(hosts, k.host),
    };
  }

  /** The objects of these ids that still exist, SNAPSHOT_CHUNK per MGET, SNAPSHOT_IN_FLIGHT at a time. */
  private async readChunked<T>(ids: string[], key: (id: string) => string): Promise<T[]> {
    const out: T[] = [];
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < ids.length) {
        const chunk = ids.slice(next, (next += SNAPSHOT_CHUNK)).map(key);
        const values = await this.call(() => this.redis.mget(chunk));
        for (const v of values) if (v !== null) out.push(JSON.parse(v) as T);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SNAPSHOT_IN_FLIGHT, Math.ceil(ids.length / SNAPSHOT_CHUNK)) }, reader));
    return out;
  }

  async subscribe(listener: ChangeListener): Promise<Subscription> {
    // SUBSCRIBE is idempotent: the subscriber may queue and resend it across reconnections.
    const sub = this.redis.duplicate({ lazyConnect: true, maxRetriesPerRequest: null, enableOfflineQueue: true, autoResendUnfulfilledCommands: true });
    this.subscribers.add(sub);
    let connectedBefore = false;
    sub.on('error', (err: Error) => this.options.logger.warn({ err: err.message }, 'redis subscriber connection error'));
    sub.on('ready', () => {
      // After a reconnect, what was published meanwhile is lost: resync, but only once the
      // subscription is back (ioredis says "ready" before it has subscribed again), or changes
      // between the snapshot and the subscription would be lost too.
      if (connectedBefore) {
        sub.subscribe(this.keys.changes).then(
          () => listener.onResync(),
          (err: unknown) => this.options.logger.warn({ err }, 'could not subscribe again after a reconnect'),
        );
      }
      connectedBefore = true;
    });
    sub.on('message', (_channel: string, message: string) => {
      let change: Change;
      try {
        change = JSON.parse(message) as Change;
      } catch (err) {
        this.options.logger.error({ err, message }, 'unreadable CMDB change');
        return;
      }
      listener.onChange(change);
    });
    try {
      await sub.connect();
      await sub.subscribe(this.keys.changes);
    } catch (err) {
      this.subscribers.delete(sub);
      sub.disconnect();
      throw cmdbErrors.unavailable(err);
    }
    return {
      unsubscribe: async () => {
        this.subscribers.delete(sub);
        sub.disconnect();
      },
    };
  }

  async clusterSecret(candidate: string): Promise<string> {
    // SET NX GET: stores the candidate only if no secret is there, and returns the one that was.
    const had = await this.call(() => this.redis.call('SET', this.keys.clusterSecret, candidate, 'NX', 'GET') as Promise<string | null>);
    return had ?? candidate;
  }

  async ping(): Promise<void> {
    await this.call(() => this.redis.ping());
  }

  async probe(): Promise<CmdbProbe> {
    const [epoch, rev] = (await this.run('probe', [this.keys.epoch, this.keys.rev], [randomBytes(8).toString('hex')])) as [string, string];
    return { epoch, rev: Number(rev) };
  }

  async claimHost(id: string, owner: string, ttlMs: number): Promise<HostLease> {
    const reply = (await this.run('claim-host', [this.keys.hostLease(id)], [owner, Math.max(1, Math.ceil(ttlMs))])) as [number, string?, number?];
    return reply[0] === 1 ? { held: true } : { held: false, owner: String(reply[1]), ttlMs: Math.max(0, Number(reply[2])) };
  }

  async releaseHost(id: string, owner: string): Promise<void> {
    await this.run('release-host', [this.keys.hostLease(id)], [owner]);
  }

  async close(): Promise<void> {
    for (const sub of this.subscribers) sub.disconnect();
    this.subscribers.clear();
    // QUIT lets pending commands finish; the socket is then cut rather than left for the server
    // to close, which can keep a stopping process alive for seconds.
    await this.redis.quit().catch(() => undefined);
    this.redis.disconnect();
  }

  /** Runs a MULTI; a failed command fails the whole call. */
  private async exec(multi: ReturnType<Redis['multi']>): Promise<unknown[]> {
    const replies = await this.call(() => multi.exec());
    if (replies === null) throw cmdbErrors.unavailable(new Error('MULTI was aborted'));
    const failed = replies.find(([err]) => err !== null);
    if (failed !== undefined) throw cmdbErrors.unavailable(failed[0]);
    return replies.map(([, value]) => value);
  }

  private async getMany<T>(keys: string[]): Promise<T[]> {
    if (keys.length === 0) return [];
    const values = await this.call(() => this.redis.mget(keys));
    return values.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as T);
  }
}

/** "<seq> <json>", as append-logs.lua stores a line. */
function parseLogEntry(entry: string): LogLine {
  const space = entry.indexOf(' ');
  return { ...(JSON.parse(entry.slice(space + 1)) as NewLogLine), seq: Number(entry.slice(0, space)) };
}

