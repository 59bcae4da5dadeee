// What the parts of a dispatcher share: its settings, its dependencies and the containers it runs
// on this host. Each concern (request path, container lifecycle, host loops, autoscaler) is its
// own file and reads and changes this state through the same object, so no concern reaches into
// another's fields.

import type { Registry } from 'prom-client';
import type { CmdbCache } from '../cmdb/cache.js';
import type { App, Store } from '../cmdb/types.js';
import type { AnswerBuffering } from '../shared/answer-buffer.js';
import type { Clock } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { ContainerRuntime } from './container-runtime.js';
import type { HeldRequests } from './held-requests.js';
import type { HostLease } from './host-lease.js';
import type { LocalContainer } from './local-container.js';
import type { DispatcherMetrics } from './metrics.js';
import type { CgroupCpu } from './signals/cgroup.js';
import type { LogShipper } from './log-shipper.js';
import type { UsageMeter } from './usage-meter.js';

export interface DispatcherSettings {
  hostId: string;
  dispatcherUrl: string;
  hostCapacity: number;
  heartbeatInterval: number;
  startTimeout: number;
  readyPollInterval: number;
  startBackoff: number;
  queueLimit: number;
  queueTimeout: number;
  drainTimeout: number;
  drainGrace: number;
  stopTimeout: number;
  reconcileInterval: number;
  hostTimeout: number;
  pidsLimit: number;
  containerConnections: number;
  /** FC_VOLUME_ROOTS; absent: no volumes allowed. */
  volumeRoots?: readonly string[];
  /** FC_UPSTREAM_TIMEOUT, ms: an app without its own upstreamTimeout gets 504 past this. */
  upstreamTimeout?: number;
  /** FC_UPGRADE_IDLE_TIMEOUT, ms: a WebSocket with no byte either way for this long is closed (1001). */
  upgradeIdleTimeout?: number;
  /** FC_USAGE_INTERVAL, FC_USAGE_RETENTION, ms (usage-meter.ts). */
  usageInterval?: number;
  usageRetention?: number;
  /** FC_LOG_LINES, FC_LOG_LINE_BYTES, FC_LOG_RATE (log-shipper.ts). */
  logLines?: number;
  logLineBytes?: number;
  logRate?: number;
  /** FC_BUFFER_ANSWER, FC_BUFFER_ANSWER_TOTAL, FC_SEND_TIMEOUT (answer-buffer.ts). */
  bufferAnswer?: number;
  bufferAnswerTotal?: number;
  sendTimeout?: number;
}

export interface DispatcherDeps {
  store: Store;
  cache: CmdbCache;
  runtime: ContainerRuntime;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

export interface DispatcherContext {
  readonly deps: DispatcherDeps;
  readonly s: DispatcherSettings;
  readonly metrics: DispatcherMetrics;
  readonly log: Logger;
  /** The containers this dispatcher runs (or is starting), by entry id. */
  readonly locals: Map<string, LocalContainer>;
  /** Requests held while their container starts, by entry id. */
  readonly held: Map<string, HeldRequests>;
  /** Set once the dispatcher stops: loops and reactions do nothing more. */
  closed: boolean;
  /** The URL this host advertises to the proxies (known once the server listens). */
  url: string;
  startedAt: number;
  /** Recent start durations per app, for the lead time of replacements. */
  readonly startTimes: StartTimes;
  /** The containers' cgroup CPU files: counters read, quotas written. */
  readonly cgroup: CgroupCpu;
  /** This dispatcher's lease on its host id: nothing is touched on the host without it. */
  readonly lease: HostLease;
  /** Usage for billing of the containers here (set once, right after the context is made). */
  usage: UsageMeter;
  /** Their output, kept in the CMDB (set once, right after the context is made). */
  logs: LogShipper;
  /** Answers held for clients slower than the container (in process, the public's own clients). */
  readonly answers: AnswerBuffering;
}

/** The last few start durations (ms) of each app, bounded in apps and in starts per app. */
export class StartTimes {
  private readonly byApp = new Map<string, number[]>();

  constructor(private readonly perApp = 5, private readonly maxApps = 10_000) {}

  record(app: string, ms: number): void {
    let list = this.byApp.get(app);
    if (list === undefined) {
      if (this.byApp.size >= this.maxApps) this.byApp.delete(this.byApp.keys().next().value as string);
      list = [];
      this.byApp.set(app, list);
    }
    list.push(ms);
    if (list.length > this.perApp) list.shift();
  }

  recent(app: string): readonly number[] {
    return this.byApp.get(app) ?? [];
  }
}

export function gone(entryId: string, why: string): FcError {
  return new FcError('FC_ERR_CONTAINER_GONE', `container ${entryId} ${why}`, { container: entryId }, { retryAfter: 1 });
}

export async function appOf(ctx: DispatcherContext, name: string): Promise<App | null> {
  return ctx.deps.cache.app(name) ?? (await ctx.deps.store.getApp(name));
}
