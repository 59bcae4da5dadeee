// Configuration: defaults, then parse, then validate, then freeze. Each option is described once
// here (env var, flag, default, meaning, which roles read it); the CLI's flags, the start-up
// validation and the README's configuration table all come from this table.

import os from 'node:os';
import path from 'node:path';
import { FcError } from './errors.js';
import { withoutPassword } from './redact.js';
import { parseVolumeRoots } from './volumes.js';
import { parseCidrList, parseTenantServices, type TenantService } from './network-policy.js';

export type Role = 'proxy' | 'dispatcher' | 'coreapi' | 'cli';

interface OptionDef<T> {
  env: string;
  flag: string;
  /** The default, or a function of the options parsed so far (for defaults built from others). */
  default: T | ((c: Readonly<Record<string, unknown>>) => T);
  /** How the default reads in the docs when it is computed. */
  defaultDoc?: string;
  allowed: string;
  doc: string;
  roles: readonly Role[];
  parse(raw: string): T | undefined;
  boolean?: boolean;
  /**
   * A secret: a bad value is not repeated in the error (it lands in logs), and `fastcontainer
   * config` shows "(set)" instead of the value.
   */
  secret?: boolean;
}

const ALL: readonly Role[] = ['proxy', 'dispatcher', 'coreapi', 'cli'];
const SERVERS: readonly Role[] = ['proxy', 'dispatcher', 'coreapi'];

/** An integer option: its parser and the allowed range as the docs and errors say it. */
function int(min: number, max: number, note = '') {
  return {
    allowed: `integer ${min}-${max}${note}`,
    parse: (raw: string): number | undefined => {
      if (!/^-?\d+$/.test(raw.trim())) return undefined;
      const n = Number(raw);
      return n >= min && n <= max ? n : undefined;
    },
  };
}

function formatMs(ms: number): string {
  if (ms === 0) return '0';
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Durations: "500ms", "2s", "1.5m", "1h"; a bare number is milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
  if (m === null) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** A duration option, in milliseconds: its parser and the allowed range. */
function duration(min: number, max: number) {
  return {
    allowed: `duration ${formatMs(min)}-${formatMs(max)}`,
    parse: (raw: string): number | undefined => {
      const ms = parseDuration(raw);
      return ms !== undefined && ms >= min && ms <= max ? ms : undefined;
    },
  };
}

function url(protocols: readonly string[]) {
  return (raw: string): string | undefined => {
    try {
      const u = new URL(raw);
      return protocols.includes(u.protocol) ? raw.replace(/\/+$/, '') : undefined;
    } catch {
      return undefined;
    }
  };
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T | undefined => (values as readonly string[]).includes(raw) ? (raw as T) : undefined;
}

function bool(raw: string): boolean | undefined {
  if (['1', 'true', 'yes', 'on', ''].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  return undefined;
}

/** A listen address: FC_LISTEN_HOST when set (the older single switch), else the role's default. */
function listenDefault(c: Readonly<Record<string, unknown>>, fallback: string): string {
  return typeof c.listenHost === 'string' && c.listenHost !== '' ? c.listenHost : fallback;
}

/** "host:port,host:port" (IPv6 hosts in brackets) to a list; undefined when any part is malformed. */
export function parseSentinels(raw: string): { host: string; port: number }[] | undefined {
  const out: { host: string; port: number }[] = [];
  for (const part of raw.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(part);
    if (m === null) return undefined;
    const port = Number(m[2]);
    if (port < 1 || port > 65535) return undefined;
    out.push({ host: (m[1] as string).replace(/^\[|\]$/g, ''), port });
  }
  return out.length > 0 ? out : undefined;
}

const nonEmpty = (raw: string): string | undefined => (raw.trim() === '' ? undefined : raw.trim());

/**
 * A credential taken as given (no trimming: a space may be part of a password), up to `max`
 * characters. A line break or NUL is refused: it is a value pasted with its newline, or one a
 * C string would cut short, never the password the server was given.
 */
function credential(max: number, noSpaces = false) {
  return (raw: string): string | undefined =>
    raw.length >= 1 && raw.length <= max && !/[\r\n\0]/.test(raw) && !(noSpaces && /\s/.test(raw)) ? raw : undefined;
}

export const options = {
  redisUrl: {
    env: 'REDIS_URL', flag: 'redis-url', default: '', defaultDoc: '(none: the embedded in-process store)',
    allowed: 'redis:// or rediss:// URL', roles: SERVERS,
    doc: 'CMDB in Redis, shared by every role on every host. Without it `up` keeps the CMDB in the process (one host only).',
    parse: url(['redis:', 'rediss:']),
  },
  redisPrefix: {
    env: 'FC_REDIS_PREFIX', flag: 'redis-prefix', default: 'fc', allowed: '1-64 of [A-Za-z0-9_.-]', roles: SERVERS,
    doc: 'Prefix of every Redis key and channel, so several installations can share one Redis.',
    parse: (raw: string) => (/^[A-Za-z0-9_.-]{1,64}$/.test(raw) ? raw : undefined),
  },
  redisSentinels: {
    env: 'REDIS_SENTINELS', flag: 'redis-sentinels', default: [] as readonly { host: string; port: number }[], defaultDoc: '(none)',
    allowed: 'comma-separated host:port list', roles: SERVERS,
    doc: 'Redis Sentinels to ask for the CMDB\'s primary (high availability): every connection, the change subscriber included, follows a failover. REDIS_URL then only lends its password, database and TLS; its host and port are not used.',
    parse: parseSentinels,
  },
  redisSentinelName: {
    env: 'FC_REDIS_SENTINEL_NAME', flag: 'redis-sentinel-name', default: 'mymaster', allowed: '1-64 of [A-Za-z0-9_.-]', roles: SERVERS,
    doc: 'Name the Sentinels monitor the CMDB\'s primary under (`sentinel monitor <name> ...`).',
    parse: (raw: string) => (/^[A-Za-z0-9_.-]{1,64}$/.test(raw) ? raw : undefined),
  },
  redisSentinelPassword: {
    env: 'REDIS_SENTINEL_PASSWORD', flag: 'redis-sentinel-password', default: '', defaultDoc: '(none)',
    allowed: '1-512 characters, no line break or NUL', roles: SERVERS, secret: true,
    doc: 'Password of the Sentinels themselves (their `requirepass`, or REDIS_SENTINEL_USERNAME\'s), sent by every connection that asks them for the primary or listens to them for a failover. The primary and replicas take theirs from REDIS_URL.',
    parse: credential(512),
  },
  redisSentinelUsername: {
    env: 'REDIS_SENTINEL_USERNAME', flag: 'redis-sentinel-username', default: '', defaultDoc: '(none: the `default` user)',
    allowed: '1-128 characters, no space, line break or NUL; only with REDIS_SENTINEL_PASSWORD', roles: SERVERS,
    doc: 'ACL user (Redis 6.2 and later) the Sentinels are asked as, with REDIS_SENTINEL_PASSWORD.',
    parse: credential(128, true),
  },
  cmdbTimeout: {
    env: 'FC_CMDB_TIMEOUT', flag: 'cmdb-timeout', default: 1000, roles: SERVERS,
    doc: 'Deadline of every CMDB call: a CMDB that does not answer within it (stalled, unreachable) is a fast 503 `FC_ERR_STORE_UNAVAILABLE`, and the caches mark it unhealthy (warm traffic keeps flowing from them).',
    ...duration(100, 60_000),
  },
  dockerHost: {
    env: 'DOCKER_HOST', flag: 'docker-host', default: 'unix:///var/run/docker.sock',
    allowed: 'unix:///path or tcp://host:port', roles: ['dispatcher'],
    doc: 'Docker engine the dispatcher starts containers on.',
    parse: url(['unix:', 'tcp:', 'http:']),
  },
  dockerNetwork: {
    env: 'FC_DOCKER_NETWORK', flag: 'docker-network',
    default: (c: Readonly<Record<string, unknown>>) => `fc-${String(c.hostId ?? os.hostname())}`, defaultDoc: '`fc-<host id>`',
    allowed: 'a Docker network name ([A-Za-z0-9][A-Za-z0-9_.-]*)', roles: ['dispatcher'],
    doc: 'Network the containers join; the dispatcher reaches them at their address on it, and creates it (a bridge with inter-container traffic off) if it does not exist. One dispatcher per network.',
    parse: (raw: string) => (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(raw.trim()) ? raw.trim() : undefined),
  },
  networkIsolation: {
    env: 'FC_NETWORK_ISOLATION', flag: 'network-isolation', default: true, allowed: 'true or false', roles: ['dispatcher'], boolean: true,
    doc: 'iptables rules (installed by the dispatcher, removed when it stops cleanly with no container left) that keep containers from the host\'s own addresses, from each other, from link-local addresses (cloud metadata) and from FC_BLOCKED_NETWORKS; the internet stays open unless an app sets `egress: "closed"`. Needs root, iptables and a network of its own (not `bridge`).',
    parse: bool,
  },
  blockedNetworks: {
    env: 'FC_BLOCKED_NETWORKS', flag: 'blocked-networks', default: [] as string[], defaultDoc: '(none besides 169.254.0.0/16, always blocked)',
    allowed: 'IPv4 CIDRs separated by commas or spaces, e.g. "10.0.0.0/8,192.168.0.0/16"', roles: ['dispatcher'],
    doc: 'The operator\'s internal networks, which no container may reach (with FC_NETWORK_ISOLATION) except for FC_TENANT_SERVICES. List the compute hosts\' LAN here too: only this host\'s own addresses are blocked without it, and other hosts\' dispatchers, a Redis or a CoreAPI on another machine would be reachable like the internet.',
    parse: parseCidrList,
  },
  tenantServices: {
    env: 'FC_TENANT_SERVICES', flag: 'tenant-services', default: [] as TenantService[], defaultDoc: '(none)',
    allowed: 'entries <app or *>=<IPv4>:<port>[/tcp|/udp] separated by commas or spaces, e.g. "blog=10.0.0.5:3306 *=10.0.0.9:2049"', roles: ['dispatcher'],
    doc: 'Services of the operator\'s that containers may reach although on the host or a blocked network: each for the app named (its own database) or for every app (`*`). Read at start; a restarted dispatcher applies a change to running containers too.',
    parse: parseTenantServices,
  },
  apiToken: {
    env: 'FC_API_TOKEN', flag: 'api-token', default: '', defaultDoc: '(generated once, kept in `<state dir>/api-token`)',
    allowed: 'at least 16 characters', roles: ['coreapi', 'cli'], secret: true,
    doc: 'Bearer token every CoreAPI write must carry (it may read too).',
    parse: (raw: string) => (raw.length >= 16 ? raw : undefined),
  },
  apiReadToken: {
    env: 'FC_API_READ_TOKEN', flag: 'api-read-token', default: '', defaultDoc: '(generated once, kept in `<state dir>/api-read-token`)',
    allowed: 'at least 16 characters', roles: ['coreapi', 'cli'], secret: true,
    doc: 'Bearer token for CoreAPI reads only (every GET under /v1); the CLI uses it when it has no admin token.',
    parse: (raw: string) => (raw.length >= 16 ? raw : undefined),
  },
  apiStreams: {
    env: 'FC_API_STREAMS', flag: 'api-streams', default: 32, roles: ['coreapi'],
    doc: 'Most live-update streams (the dashboard\'s Server-Sent Events, GET /v1/events/stream) one CoreAPI serves at once; one more is refused with 503.',
    ...int(1, 10_000),
  },
  stateDir: {
    env: 'FC_STATE_DIR', flag: 'state-dir', default: () => path.join(os.homedir(), '.fastcontainer'), defaultDoc: '`~/.fastcontainer`',
    allowed: 'a directory path', roles: ['coreapi', 'dispatcher', 'cli'],
    doc: 'Where the generated API tokens are kept; the default volume root is under it.',
    parse: (raw: string) => (raw.trim() === '' ? undefined : path.resolve(raw)),
  },
  volumeRoots: {
    env: 'FC_VOLUME_ROOTS', flag: 'volume-roots',
    default: (c: Readonly<Record<string, unknown>>): readonly string[] => Object.freeze([path.join(String(c.stateDir), 'datapool', '{app}')]),
    defaultDoc: '`<state dir>/datapool/{app}`',
    allowed: 'comma-separated absolute directories other than /, `{app}` allowed as a whole segment; `none` allows no volumes',
    roles: ['coreapi', 'dispatcher'],
    doc: 'Host directories under which apps\' volumes must lie (the DataPool). `{app}` stands for the app\'s name, so each app mounts only its own directory; a root without it is shared by every app. The dispatcher resolves symbolic links and refuses paths that leave the root or do not exist (it never creates one). Give the CoreAPI and every dispatcher the same value.',
    parse: (raw: string): readonly string[] | undefined => {
      const roots = parseVolumeRoots(raw);
      return roots === undefined ? undefined : Object.freeze(roots);
    },
  },
  listenHost: {
    env: 'FC_LISTEN_HOST', flag: 'listen-host', default: '', defaultDoc: '(unset)', allowed: 'an IP address or host name', roles: SERVERS,
    doc: 'Older single switch: when set, the default of every `FC_*_LISTEN` option (each of which still wins when set itself).',
    parse: nonEmpty,
  },
  proxyListen: {
    env: 'FC_PROXY_LISTEN', flag: 'proxy-listen', default: (c: Readonly<Record<string, unknown>>) => listenDefault(c, '0.0.0.0'),
    defaultDoc: '`0.0.0.0`', allowed: 'an IP address or host name', roles: ['proxy'],
    doc: 'Address the UserProxy (tenants\' traffic) listens on.',
    parse: nonEmpty,
  },
  dispatcherListen: {
    env: 'FC_DISPATCHER_LISTEN', flag: 'dispatcher-listen', default: (c: Readonly<Record<string, unknown>>) => listenDefault(c, '127.0.0.1'),
    defaultDoc: '`127.0.0.1`', allowed: 'an IP address or host name', roles: ['dispatcher'],
    doc: 'Address the dispatcher listens on. Loopback is enough for `up` (the proxy calls it in process); with proxies on other hosts, an address of the hosts\' private network (and set `FC_DISPATCHER_URL`, `FC_CLUSTER_SECRET`).',
    parse: nonEmpty,
  },
  apiListen: {
    env: 'FC_API_LISTEN', flag: 'api-listen', default: (c: Readonly<Record<string, unknown>>) => listenDefault(c, '127.0.0.1'),
    defaultDoc: '`127.0.0.1`', allowed: 'an IP address or host name', roles: ['coreapi'],
    doc: 'Address the CoreAPI listens on.',
    parse: nonEmpty,
  },
  adminListen: {
    env: 'FC_ADMIN_LISTEN', flag: 'admin-listen', default: (c: Readonly<Record<string, unknown>>) => listenDefault(c, '127.0.0.1'),
    defaultDoc: '`127.0.0.1`', allowed: 'an IP address or host name', roles: SERVERS,
    doc: 'Address of the admin listener (`/healthz`, `/metrics` and the dispatcher\'s `/v1/containers` of every role in the process).',
    parse: nonEmpty,
  },
  adminPort: {
    env: 'FC_ADMIN_PORT', flag: 'admin-port', default: 8083, roles: SERVERS,
    doc: 'Port of the admin listener, one per process (give each process on a machine its own).',
    ...int(0, 65535, ' (0: any free port)'),
  },
  clusterSecret: {
    env: 'FC_CLUSTER_SECRET', flag: 'cluster-secret', default: '', defaultDoc: '(generated once, kept in the CMDB)',
    allowed: 'at least 32 characters', roles: ['proxy', 'dispatcher'], secret: true,
    doc: 'Key the proxies sign each request to a dispatcher with (HMAC); a dispatcher answers 403 to anything unsigned. Every proxy and dispatcher of one installation needs the same.',
    parse: (raw: string) => (raw.length >= 32 ? raw : undefined),
  },
  hopAuthWindow: {
    env: 'FC_HOP_AUTH_WINDOW', flag: 'hop-auth-window', default: 30_000, roles: ['dispatcher'],
    doc: 'How far the time in a proxy\'s signature may be from the dispatcher\'s clock (either way); keep hosts\' clocks in sync (NTP) well within it.',
    ...duration(1000, 600_000),
  },
  proxyPort: {
    env: 'FC_PROXY_PORT', flag: 'proxy-port', default: 8080, roles: ['proxy'],
    doc: 'UserProxy port: the front door for tenants\' HTTP traffic.',
    ...int(0, 65535, ' (0: any free port)'),
  },
  tlsPort: {
    env: 'FC_TLS_PORT', flag: 'tls-port', default: 8443, roles: ['proxy'],
    doc: 'UserProxy HTTPS port (HTTP/1.1 and HTTP/2 by ALPN), on FC_PROXY_LISTEN; open only when FC_TLS_DIR is set.',
    ...int(0, 65535, ' (0: any free port)'),
  },
  tlsDir: {
    env: 'FC_TLS_DIR', flag: 'tls-dir', default: '', defaultDoc: '(none: no HTTPS listener)',
    allowed: 'a directory path', roles: ['proxy'],
    doc: 'Certificates of the HTTPS listener, one pair per host name: `<host>.crt` (the chain, PEM) and `<host>.key`; `*.<domain>` for a wildcard; `_default` for clients that name no known host (without it their handshake is refused). Changes are picked up within FC_TLS_RELOAD, without a restart.',
    parse: (raw: string) => (raw.trim() === '' ? '' : path.resolve(raw)),
  },
  tlsReload: {
    env: 'FC_TLS_RELOAD', flag: 'tls-reload', default: 5_000, roles: ['proxy'],
    doc: 'How often the proxy looks for new, changed or removed certificates in FC_TLS_DIR (file modification times).',
    ...duration(100, 3_600_000),
  },
  apiPort: {
    env: 'FC_API_PORT', flag: 'api-port', default: 8081, roles: ['coreapi'],
    doc: 'CoreAPI port.',
    ...int(0, 65535, ' (0: any free port)'),
  },
  dispatcherPort: {
    env: 'FC_DISPATCHER_PORT', flag: 'dispatcher-port', default: 8082, roles: ['dispatcher'],
    doc: 'Dispatcher port; the proxies send it requests for the containers on this host.',
    ...int(0, 65535, ' (0: any free port)'),
  },
  hostId: {
    env: 'FC_HOST_ID', flag: 'host-id', default: () => os.hostname(), defaultDoc: 'the machine\'s host name',
    allowed: '1-63 of [A-Za-z0-9_.-]', roles: ['dispatcher'],
    doc: 'This compute host\'s id in the CMDB; also the label that marks its containers.',
    parse: (raw: string) => (/^[A-Za-z0-9_.-]{1,63}$/.test(raw) ? raw : undefined),
  },
  dispatcherUrl: {
    env: 'FC_DISPATCHER_URL', flag: 'dispatcher-url', default: (c: Readonly<Record<string, unknown>>) => `http://127.0.0.1:${String(c.dispatcherPort ?? 8082)}`,
    defaultDoc: '`http://127.0.0.1:<dispatcher port>`', allowed: 'http:// URL', roles: ['dispatcher'],
    doc: 'URL the proxies use to reach this dispatcher (set it to an address other hosts can reach).',
    parse: url(['http:']),
  },
  hostCapacity: {
    env: 'FC_HOST_CAPACITY', flag: 'host-capacity', default: 100, roles: ['dispatcher'],
    doc: 'How many live containers this host takes; placement prefers the host with the most room.',
    ...int(1, 100_000),
  },
  heartbeatInterval: {
    env: 'FC_HEARTBEAT_INTERVAL', flag: 'heartbeat-interval', default: 2000, roles: ['dispatcher'],
    doc: 'How often the dispatcher renews its host entry.',
    ...duration(100, 60_000),
  },
  hostTimeout: {
    env: 'FC_HOST_TIMEOUT', flag: 'host-timeout', default: 10_000, roles: ['proxy', 'dispatcher', 'coreapi'],
    doc: 'A host whose last heartbeat is older than this gets no new containers; after six times this, its container entries are removed. Time during which this process could not reach the CMDB does not count (nobody could write a heartbeat then): an outage takes no host out.',
    ...duration(1000, 600_000),
  },
  startTimeout: {
    env: 'FC_START_TIMEOUT', flag: 'start-timeout', default: 30_000, roles: ['dispatcher'],
    doc: 'How long a starting container may take to accept connections before it is given up.',
    ...duration(1000, 600_000),
  },
  readyPollInterval: {
    env: 'FC_READY_POLL_INTERVAL', flag: 'ready-poll-interval', default: 2, roles: ['dispatcher'],
    doc: 'How often a starting container\'s port is tried.',
    ...duration(1, 1000),
  },
  startBackoff: {
    env: 'FC_START_BACKOFF', flag: 'start-backoff', default: 5000, roles: ['dispatcher'],
    doc: 'After a failed start, requests for that container fail fast with the same error for this long before the next try.',
    ...duration(0, 600_000),
  },
  queueLimit: {
    env: 'FC_QUEUE_LIMIT', flag: 'queue-limit', default: 1000, roles: ['dispatcher'],
    doc: 'Requests held per starting container; beyond it, 503 at once.',
    ...int(1, 1_000_000),
  },
  queueTimeout: {
    env: 'FC_QUEUE_TIMEOUT', flag: 'queue-timeout', default: 30_000, roles: ['dispatcher', 'proxy'],
    doc: 'Deadline of a request held while its container starts; past it, 503 with Retry-After. The proxy waits for a dispatcher\'s answer up to this plus the upstream timeout plus 5 s.',
    ...duration(100, 600_000),
  },
  drainTimeout: {
    env: 'FC_DRAIN_TIMEOUT', flag: 'drain-timeout', default: 30_000, roles: ['dispatcher', 'proxy', 'coreapi'],
    doc: 'Longest wait for a draining container\'s in-flight requests before it is stopped anyway; also, after SIGTERM, for a server\'s in-flight requests (answered with `Connection: close`) before the rest are cut.',
    ...duration(0, 3_600_000),
  },
  drainGrace: {
    env: 'FC_DRAIN_GRACE', flag: 'drain-grace', default: 1000, roles: ['dispatcher'],
    doc: 'A draining container still serves requests that proxies sent before they heard of the drain, for this long.',
    ...duration(0, 60_000),
  },
  stopTimeout: {
    env: 'FC_STOP_TIMEOUT', flag: 'stop-timeout', default: 5000, roles: ['dispatcher'],
    doc: 'Time between SIGTERM and SIGKILL when a container is stopped.',
    ...duration(0, 300_000),
  },
  reconcileInterval: {
    env: 'FC_RECONCILE_INTERVAL', flag: 'reconcile-interval', default: 10_000, roles: ['dispatcher'],
    doc: 'How often the dispatcher compares the engine\'s containers with the CMDB (it also does so at start).',
    ...duration(1000, 600_000),
  },
  sandboxPool: {
    env: 'FC_SANDBOX_POOL', flag: 'sandbox-pool', default: 2, roles: ['dispatcher'],
    doc: 'Network sandboxes (a namespace held by a sleeping busybox of a few MB) the dispatcher keeps made ahead of need; a new container joins one and starts in about half the time. Each serves one container and goes with it. 0 turns this off.',
    ...int(0, 64),
  },
  sandboxImage: {
    env: 'FC_SANDBOX_IMAGE', flag: 'sandbox-image', default: 'fastcontainer/hello', allowed: 'an image on the engine with /bin/busybox', roles: ['dispatcher'],
    doc: 'Image of the network sandboxes.',
    parse: nonEmpty,
  },
  rootImages: {
    env: 'FC_ROOT_IMAGES', flag: 'root-images', default: Object.freeze([]) as readonly string[], defaultDoc: '(none)',
    allowed: 'comma-separated image references', roles: ['dispatcher'],
    doc: 'Images whose containers may run as root (their configured user is root or unset). Any other image configured to run as root runs as 65534:65534 (nobody) instead, or as the app\'s `user`.',
    parse: (raw: string): readonly string[] | undefined => {
      const images = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      return images.every((i) => /^[A-Za-z0-9][A-Za-z0-9._\-/:@]{0,254}$/.test(i)) ? Object.freeze(images) : undefined;
    },
  },
  pidsLimit: {
    env: 'FC_PIDS_LIMIT', flag: 'pids-limit', default: 256, roles: ['dispatcher'],
    doc: 'Most processes one container may run.',
    ...int(16, 65_536),
  },
  upstreamConnections: {
    env: 'FC_UPSTREAM_CONNECTIONS', flag: 'upstream-connections', default: 256, roles: ['proxy'],
    doc: 'Most keep-alive connections from a proxy to one dispatcher for one app (each app has its own, as many as its concurrency at the proxy, up to this).',
    ...int(1, 65_536),
  },
  bufferBody: {
    env: 'FC_BUFFER_BODY', flag: 'buffer-body', default: 1_048_576, roles: ['proxy'],
    doc: 'Request bodies up to this many bytes are read whole at the proxy before the request takes an upstream slot (as nginx `proxy_request_buffering`), so a client that uploads slowly holds no connection of the app\'s; larger ones are streamed, at `FC_BODY_MIN_RATE`. 1 MiB holds every form post and JSON call of a typical site. 0: stream every body.',
    ...int(0, 64 * 1_048_576, ' (bytes)'),
  },
  bufferTotal: {
    env: 'FC_BUFFER_TOTAL', flag: 'buffer-total', default: 256 * 1_048_576, roles: ['proxy'],
    doc: 'Most bytes of request bodies the proxy holds in memory at once; past it, a body is streamed instead (at `FC_BODY_MIN_RATE`).',
    ...int(0, 16 * 1024 * 1_048_576, ' (bytes)'),
  },
  bufferAnswer: {
    env: 'FC_BUFFER_ANSWER', flag: 'buffer-answer', default: 1_048_576, roles: ['proxy', 'dispatcher'],
    doc: 'For a client that reads its answer slower than the app sends it, up to this many bytes of the answer are held in memory (as nginx `proxy_buffering`), so the connection to the app is free at once: slow downloads do not take up the app\'s connections. A larger answer waits for its client beyond that. 0: never hold (backpressure only).',
    ...int(0, 64 * 1_048_576, ' (bytes)'),
  },
  bufferAnswerTotal: {
    env: 'FC_BUFFER_ANSWER_TOTAL', flag: 'buffer-answer-total', default: 256 * 1_048_576, roles: ['proxy', 'dispatcher'],
    doc: 'Most bytes of answers a process holds for slow readers at once (`FC_BUFFER_ANSWER` each); past it, answers wait for their clients.',
    ...int(0, 16 * 1024 * 1_048_576, ' (bytes)'),
  },
  sendTimeout: {
    env: 'FC_SEND_TIMEOUT', flag: 'send-timeout', default: 60_000, roles: ['proxy', 'dispatcher'],
    doc: 'A client that takes none of its answer for this long, while the answer waits for it, is cut off (as nginx `send_timeout`); a slow reader that keeps reading is not.',
    ...duration(1000, 3_600_000),
  },
  bodyMinRate: {
    env: 'FC_BODY_MIN_RATE', flag: 'body-min-rate', default: 10_240, roles: ['proxy'],
    doc: 'A streamed request body (larger than `FC_BUFFER_BODY`) must arrive at least this fast on average, counted from 5 s after it began; a slower client gets 408 and is cut off. 0: no minimum.',
    ...int(0, 1_073_741_824, ' (bytes per second)'),
  },
  bodyTimeout: {
    env: 'FC_BODY_TIMEOUT', flag: 'body-timeout', default: 30_000, roles: ['proxy'],
    doc: 'Longest wait for the next piece of a request body; past it, 408.',
    ...duration(100, 3_600_000),
  },
  requestTimeout: {
    env: 'FC_REQUEST_TIMEOUT', flag: 'request-timeout', default: 300_000, roles: ['proxy'],
    doc: 'Longest time to receive a whole request body, from the end of its headers (which have 60 s); past it, 408.',
    ...duration(100, 24 * 3_600_000),
  },
  upstreamTimeout: {
    env: 'FC_UPSTREAM_TIMEOUT', flag: 'upstream-timeout', default: 60_000, roles: ['proxy', 'dispatcher'],
    doc: 'How long an app may take to start its answer (status and headers) once its container has the whole request; past it, 504 (never sent again). An app\'s `upstreamTimeout` field overrides it.',
    ...duration(100, 3_600_000),
  },
  appConcurrency: {
    env: 'FC_APP_CONCURRENCY', flag: 'app-concurrency', default: 128, roles: ['proxy'],
    doc: 'Most requests of one app a proxy forwards at once; more wait in the app\'s queue at the proxy. An app\'s `maxConcurrency` field overrides it. Each app has its own connections to a dispatcher, so one app\'s slow requests do not hold another\'s.',
    ...int(1, 65_536),
  },
  appQueue: {
    env: 'FC_APP_QUEUE', flag: 'app-queue', default: 1024, roles: ['proxy'],
    doc: 'Requests of one app that may wait at a proxy for a slot; beyond it, 503 with Retry-After at once.',
    ...int(0, 1_000_000),
  },
  appQueueTimeout: {
    env: 'FC_APP_QUEUE_TIMEOUT', flag: 'app-queue-timeout', default: 10_000, roles: ['proxy'],
    doc: 'Longest wait of a request in its app\'s queue at the proxy; past it, 503 with Retry-After.',
    ...duration(0, 600_000),
  },
  upgradeIdleTimeout: {
    env: 'FC_UPGRADE_IDLE_TIMEOUT', flag: 'upgrade-idle-timeout', default: 300_000, roles: ['proxy', 'dispatcher'],
    doc: 'A WebSocket (HTTP Upgrade) with no byte either way for this long is closed with 1001 by the proxy and the dispatcher. Apps that keep one open longer send pings.',
    ...duration(1000, 24 * 3_600_000),
  },
  upgradeMaxPerApp: {
    env: 'FC_UPGRADE_MAX_PER_APP', flag: 'upgrade-max-per-app', default: 1024, roles: ['proxy'],
    doc: 'Most WebSockets of one app open at once through a proxy (handshakes included); beyond it, 503 with Retry-After. Each also holds one of the app\'s slots (FC_APP_CONCURRENCY) only until its container answers the upgrade.',
    ...int(0, 1_000_000),
  },
  containerConnections: {
    env: 'FC_CONTAINER_CONNECTIONS', flag: 'container-connections', default: 16, roles: ['dispatcher'],
    doc: 'Most connections from the dispatcher to one container, so most requests it serves at once; more wait in the dispatcher. Keep it at or below what the app serves in parallel (Apache prefork: its MaxRequestWorkers): connections beyond that wait in the container\'s accept queue instead.',
    ...int(1, 4096),
  },
  usageInterval: {
    env: 'FC_USAGE_INTERVAL', flag: 'usage-interval', default: 15_000, roles: ['dispatcher'],
    doc: 'How often each dispatcher reads its containers\' cgroup counters (CPU, memory) and writes their usage to the CMDB, in one call per host. Usage since the last write is what a dispatcher that crashes loses (a clean stop writes it first).',
    ...duration(1_000, 300_000),
  },
  usageRetention: {
    env: 'FC_USAGE_RETENTION', flag: 'usage-retention', default: 35 * 24 * 3_600_000, roles: ['dispatcher', 'coreapi'],
    doc: 'How long the per-minute usage rollups stay in the CMDB (past the hour they are in); `GET /v1/apps/:name/usage` answers within it.',
    ...duration(3_600_000, 400 * 24 * 3_600_000),
  },
  logLines: {
    env: 'FC_LOG_LINES', flag: 'log-lines', default: 1000, roles: ['dispatcher', 'coreapi'],
    doc: 'Recent output lines (stdout, stderr) kept per app in the CMDB, past its containers; 0 keeps none. The CoreAPI reads at most this many.',
    ...int(0, 100_000),
  },
  logLineBytes: {
    env: 'FC_LOG_LINE_BYTES', flag: 'log-line-bytes', default: 4096, roles: ['dispatcher'],
    doc: 'Longest output line kept, in bytes; longer lines are cut (marked with …).',
    ...int(256, 65_536),
  },
  logRate: {
    env: 'FC_LOG_RATE', flag: 'log-rate', default: 100, roles: ['dispatcher'],
    doc: 'Output lines per second kept per container (bursts of ten seconds\' worth); beyond it lines are dropped and counted (fc_dispatcher_log_lines_dropped_total, and a line saying how many), and a container that goes on flooding is not read for a second at a time.',
    ...int(1, 100_000),
  },
  apiUrl: {
    env: 'FC_API_URL', flag: 'api-url', default: 'http://127.0.0.1:8081', allowed: 'http(s):// URL', roles: ['cli'],
    doc: 'CoreAPI the `app` and `ps` commands talk to.',
    parse: url(['http:', 'https:']),
  },
  logLevel: {
    env: 'FC_LOG_LEVEL', flag: 'log-level', default: 'info' as LogLevel, allowed: 'fatal, error, warn, info, debug, trace, silent', roles: ALL,
    doc: 'Least severe log level written (pino JSON on stdout).',
    parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
  },
  demo: {
    env: 'FC_DEMO', flag: 'demo', default: false, allowed: 'true or false', roles: ['coreapi'], boolean: true,
    doc: '`up` only: register the demo app `demo` (hostname `demo.localhost`, image `fastcontainer/php`, site `examples/demo-site`).',
    parse: bool,
  },
} satisfies Record<string, OptionDef<unknown>>;

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
type Options = typeof options;
export type OptionKey = keyof Options;
type ValueOf<K extends OptionKey> = Options[K] extends OptionDef<infer T> ? T : never;
export type Config = { readonly [K in OptionKey]: ValueOf<K> };

export interface ConfigSources {
  env?: NodeJS.ProcessEnv;
  flags?: Record<string, string | boolean | undefined>;
}

/**
 * Builds the frozen config: flag beats env var beats default. Every bad value is reported in one
 * error that names the option (as the user spelled it), the value and what is allowed.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const flags = sources.flags ?? {};
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  const computed: OptionKey[] = [];
  for (const key of Object.keys(options) as OptionKey[]) {
    const def: OptionDef<unknown> = options[key];
    const flagValue = flags[def.flag];
    const [raw, source] =
      flagValue !== undefined ? [flagValue === true ? 'true' : String(flagValue), `--${def.flag}`]
      : env[def.env] !== undefined && env[def.env] !== '' ? [env[def.env] as string, def.env]
      : [undefined, undefined];
    if (raw === undefined) {
      if (typeof def.default === 'function') computed.push(key);
      else out[key] = def.default;
      continue;
    }
    const value = def.parse(raw);
    if (value === undefined) problems.push(`${source}=${def.secret === true ? `(${raw.length} characters, not shown)` : JSON.stringify(withoutPassword(raw))} is not allowed (allowed: ${def.allowed})`);
    else out[key] = value;
  }
  for (const key of computed) out[key] = (options[key].default as (c: Readonly<Record<string, unknown>>) => unknown)(out);
  // Fine alone, wrong together: a user without its password would be sent as AUTH <user> "".
  if (typeof out.redisSentinelUsername === 'string' && out.redisSentinelUsername !== '' && out.redisSentinelPassword === '') {
    problems.push(`${options.redisSentinelUsername.env} is set without ${options.redisSentinelPassword.env} (allowed: a username only with its password)`);
  }
  if (problems.length > 0) {
    throw new FcError('FC_ERR_CONFIG', `invalid configuration: ${problems.join('; ')}`, { problems });
  }
  return Object.freeze(out) as Config;
}

/** The README's configuration table, generated from the option table above. */
export function configMarkdownTable(): string {
  const rows = (Object.keys(options) as OptionKey[]).map((key) => {
    const def: OptionDef<unknown> = options[key];
    const dflt = def.defaultDoc ?? (typeof def.default === 'function' ? '' : `\`${String(def.default)}\``);
    return `| \`${def.env}\` | \`--${def.flag}\` | ${dflt} | ${def.roles.join(', ')} | ${def.doc} Allowed: ${def.allowed}. |`;
  });
  return ['| Env var | Flag | Default | Read by | Meaning |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

/** Flag definitions for node:util parseArgs. */
export function parseArgsOptions(): Record<string, { type: 'string' | 'boolean' }> {
  const out: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const key of Object.keys(options) as OptionKey[]) {
    const def: OptionDef<unknown> = options[key];
    out[def.flag] = { type: def.boolean === true ? 'boolean' : 'string' };
  }
  return out;
}
