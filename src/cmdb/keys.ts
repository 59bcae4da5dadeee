// Every Redis key and channel name is built here, and only here. Lua scripts get the keys they
// touch as KEYS, and, where they must find keys from data they read (an app's old hostnames, the
// members of a set), the key prefixes as ARGV, also built here.

export interface CmdbKeys {
  /** Global revision counter: every write takes the next value. */
  readonly rev: string;
  /** Channel every change is published on. */
  readonly changes: string;
  readonly apps: string;
  readonly containers: string;
  readonly hosts: string;
  app(name: string): string;
  hostname(hostname: string): string;
  container(id: string): string;
  appContainers(app: string): string;
  host(id: string): string;
  /** An app's events, a list newest first (LPUSH), trimmed and expiring. */
  events(app: string): string;
  /** A host's container stats, one JSON value set with PX. */
  stats(host: string): string;
  /** Hosts that reported stats, a sorted set scored by when their stats expire. */
  readonly statsHosts: string;
  /** The cluster secret proxies sign their hop to the dispatchers with (set once, NX). */
  readonly clusterSecret: string;
  /** A random id written at first use: a new one means the CMDB lost its data (probe.lua). */
  readonly epoch: string;
  /** Who holds a host id: a random owner token, set with PX and renewed with the heartbeat. */
  hostLease(id: string): string;
  /** An app's recent log lines, a list newest first ("<seq> <json>"), trimmed and expiring. */
  logs(app: string): string;
  /** An app's last log sequence number. */
  logSeq(app: string): string;
  /** A host's usage cursors: a hash, container entry id -> "<app>\n<at>\n<figures, comma-separated>". */
  usageCursors(host: string): string;
  /** An app's usage rollup of one hour: a hash, "<minute ms>:<figure>" -> integer, expiring. */
  usage(app: string, hour: number): string;
  readonly prefixes: {
    readonly app: string;
    readonly hostname: string;
    readonly container: string;
    readonly appContainers: string;
    readonly host: string;
  };
}

export function cmdbKeys(prefix: string): CmdbKeys {
  const prefixes = {
    app: `${prefix}:app:`,
    hostname: `${prefix}:hostname:`,
    container: `${prefix}:container:`,
    appContainers: `${prefix}:app-containers:`,
    host: `${prefix}:host:`,
  };
  return {
    rev: `${prefix}:rev`,
    changes: `${prefix}:changes`,
    apps: `${prefix}:apps`,
    containers: `${prefix}:containers`,
    hosts: `${prefix}:hosts`,
    app: (name) => prefixes.app + name,
    hostname: (hostname) => prefixes.hostname + hostname,
    container: (id) => prefixes.container + id,
    appContainers: (app) => prefixes.appContainers + app,
    host: (id) => prefixes.host + id,
    events: (app) => `${prefix}:events:${app}`,
    stats: (host) => `${prefix}:stats:${host}`,
    statsHosts: `${prefix}:stats-hosts`,
    clusterSecret: `${prefix}:cluster-secret`,
    epoch: `${prefix}:epoch`,
    hostLease: (id) => `${prefix}:host-lease:${id}`,
    logs: (app) => `${prefix}:logs:${app}`,
    logSeq: (app) => `${prefix}:log-seq:${app}`,
    usageCursors: (host) => `${prefix}:usage-cursors:${host}`,
    usage: (app, hour) => `${prefix}:usage:${app}:${hour}`,
    prefixes,
  };
}
