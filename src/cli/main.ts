// The `fastcontainer` command: runs the roles (up, proxy, dispatcher, coreapi) and talks to the
// CoreAPI (app, ps, events). Options come from flags and env vars, described once in shared/config.ts.

import { cpSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { App, AppEvent, ContainerEntry, ContainerStats, ComputeHost } from '../cmdb/types.js';
import { findApiToken, tokenPath } from '../shared/api-token.js';
import { configMarkdownTable, loadConfig, options as configOptions, parseArgsOptions, type Config } from '../shared/config.js';
import { FcError, describeFieldProblem, type FieldProblem } from '../shared/errors.js';
import { APP_PLACEHOLDER, rootsOf } from '../shared/volumes.js';
import { createLogger } from '../shared/logger.js';
import { ApiClient, ApiError } from './api-client.js';
import { startStack, type Stack, type StackRole } from './stack.js';
import { containerCommand } from './commands/container.js';
import { restartFields } from '../dispatcher/rollout.js';
import { helpFor } from './help.js';
import { UsageError } from './usage-error.js';
import { logsCommand } from './commands/logs.js';
import { usageCommand } from './commands/usage.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const usage = `Usage: fastcontainer <command> [options]

Run the system:
  up [--demo]            all roles in one process on this host (proxy :8080 on every address;
                         CoreAPI :8081, dispatcher :8082, admin :8083 with /healthz and /metrics: loopback)
  proxy                  the UserProxy only        (needs REDIS_URL)
  dispatcher             one compute host's dispatcher only (needs REDIS_URL)
  coreapi                the CoreAPI only          (needs REDIS_URL)

Talk to the CoreAPI (FC_API_URL, default http://127.0.0.1:8081):
  app create <name> --hostname <host> [--hostname ...] --image <image> [--port 8080]
             [--env KEY=VALUE ...] [--secret KEY=VALUE ...] [--volume /host/path:/container[:ro] ...]
             [--cpus 0.5] [--memory 256m] [--user UID[:GID]] [--read-only-rootfs] [--https-redirect]
             [--lifespan 600] [--min 0] [--max 4] [--command '["cmd","arg"]'] [--readiness-path /]
             [--max-cpus <2 x cpus>] [--latency-target 500 (ms)] [--idle-timeout 300 (s)] [--freeze-after 5 (s, 0: never)]
             [--no-autoscale | --autoscale true|false] [--egress open|closed] [--upstream-timeout 60 (s)] [--max-concurrency N]
                         durations also take a unit: --lifespan 10m, --latency-target 2s, --idle-timeout 90s
  app create --file spec.json
  app update <name> [any create option] [--unset-secret KEY ...]
                         change only what is given; secrets are set or unset key by key; a new image,
                         env, command, ... replaces the running containers make before break, one at a time
  app ls | app show <name> | app rm <name>
                         reads show secrets by key only (secretKeys)
  app scale <name> [--containers N] [--cpus X]
                         set the live containers to N (0 to max) and/or every live container's
                         CPU quota to X cores (cpus to maxCpus), now; the autoscaler may change it again
  ps [--app <name>]      container entries: state, host, age, time left, CPU quota, load
  container rm <id> ...  remove containers: never-started ones go, running ones drain and go
  events <name> [--limit 50]
                         what happened to an app's containers and why, newest first (1-200)
  hosts | host ls        compute hosts: heartbeat, live, drained, containers
  host rm <id> [--force] forget a host that will not come back, with its container entries
                         (refused for a live host unless --force)
  host drain <id> [--force]
                         no new containers there; its containers are replaced on other hosts,
                         each drained once its replacement is ready (refused for the last host
                         that takes containers unless --force)
  host undrain <id> | host resume <id>
                         the host takes new containers again
  logs <name> [--follow] [--container <id>] [--since 1h] [--limit 100]
                         the app's recent output (stdout, stderr), kept past its containers;
                         --since takes a time or a duration back (90s, 15m, 1h, 7d)
  usage [<name>] [--since 1h] [--until <time>]
                         what the app (or every app) used, for billing: CPU-seconds, memory
                         GiB-seconds (limit and used), container-seconds, requests, bytes, cold starts
  config [--markdown | --json]   every option, its env var, flag and value (--json: for scripts)

Every option can be given as a flag or an env var; \`fastcontainer config\` lists them.
\`fastcontainer <command> --help\` (e.g. app create --help) lists a command's flags with their units.`;

const appFlags = {
  hostname: { type: 'string', multiple: true },
  image: { type: 'string' },
  port: { type: 'string' },
  env: { type: 'string', multiple: true },
  secret: { type: 'string', multiple: true },
  'unset-secret': { type: 'string', multiple: true },
  user: { type: 'string' },
  'read-only-rootfs': { type: 'boolean' },
  'https-redirect': { type: 'boolean' },
  volume: { type: 'string', multiple: true },
  cpus: { type: 'string' },
  memory: { type: 'string' },
  lifespan: { type: 'string' },
  min: { type: 'string' },
  max: { type: 'string' },
  command: { type: 'string' },
  'readiness-path': { type: 'string' },
  'max-cpus': { type: 'string' },
  'latency-target': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'freeze-after': { type: 'string' },
  autoscale: { type: 'string' },
  'no-autoscale': { type: 'boolean' },
  egress: { type: 'string' },
  'upstream-timeout': { type: 'string' },
  'max-concurrency': { type: 'string' },
  containers: { type: 'string' },
  limit: { type: 'string' },
  file: { type: 'string' },
  app: { type: 'string' },
  markdown: { type: 'boolean' },
  json: { type: 'boolean' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  follow: { type: 'boolean', short: 'f' },
  container: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
} as const;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...parseArgsOptions(), ...appFlags }, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (command === undefined || command === 'help' || values.help === true) {
    // `app create --help`, `help app create`: that command's own help, if it has one.
    process.stdout.write(`${helpFor(command === 'help' ? rest : positionals) ?? usage}\n`);
    return command === undefined && values.help !== true ? 2 : 0;
  }
  try {
    const config = loadConfig({ flags: values as Record<string, string | boolean | undefined> });
    switch (command) {
      case 'up':
        return await runRoles(config, ['coreapi', 'dispatcher', 'proxy']);
      case 'proxy':
      case 'dispatcher':
      case 'coreapi':
        return await runRoles(config, [command]);
      case 'app':
        return await appCommand(config, rest, values);
      case 'ps':
        return await ps(config, values.app);
      case 'container':
        return await containerCommand(client(config), rest);
      case 'events':
        return await events(config, rest[0], values.limit);
      case 'hosts':
        return await hosts(config);
      case 'host':
        return await hostCommand(config, rest, values.force === true);
      case 'logs':
        if (rest[0] === undefined) throw new UsageError('logs needs the app name');
        return await logsCommand(client(config), rest[0], {
          follow: values.follow === true,
          ...(typeof values.container === 'string' ? { container: values.container } : {}),
          ...(typeof values.since === 'string' ? { since: values.since } : {}),
          ...(typeof values.limit === 'string' ? { limit: values.limit } : {}),
        });
      case 'usage':
        return await usageCommand(client(config), rest[0], {
          ...(typeof values.since === 'string' ? { since: values.since } : {}),
          ...(typeof values.until === 'string' ? { until: values.until } : {}),
        }, printTable);
      case 'config':
        process.stdout.write(`${values.markdown === true ? configMarkdownTable() : values.json === true ? configJson(config) : configText(config)}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    return report(err);
  }
}

function report(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`fastcontainer: ${err.message}\n\n${usage}\n`);
    return 2;
  }
  if (err instanceof ApiError) {
    const p = err.problem;
    const fields = Array.isArray(p.errors) ? (p.errors as FieldProblem[]).map((f) => `  - ${describeFieldProblem(f)}`).join('\n') : '';
    process.stderr.write(`fastcontainer: ${p.code ?? `HTTP ${err.status}`}: ${err.message}\n${fields === '' ? '' : `${fields}\n`}`);
    return 1;
  }
  if (err instanceof FcError) {
    process.stderr.write(`fastcontainer: ${err.code}: ${err.message}\n`);
    return 1;
  }
  process.stderr.write(`fastcontainer: ${(err as Error).stack ?? String(err)}\n`);
  return 1;
}

/** Options never printed (shown as "(set)"): those the option table marks secret. */
const SECRET_OPTIONS: ReadonlySet<string> = new Set(
  Object.entries(configOptions as Record<string, { secret?: boolean }>).filter(([, def]) => def.secret === true).map(([key]) => key),
);

/** The effective configuration as one JSON object by option key (scripts read it), secrets masked. */
export function configJson(config: Config): string {
  return JSON.stringify(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, SECRET_OPTIONS.has(k) && v !== '' ? '(set)' : v])), null, 2);
}

/** Every option as `fastcontainer config` shows it: env var, flag and value here (secrets hidden). */
export function configText(config: Config): string {
  const rows = Object.entries(config).map(([k, v]) => {
    const def = (configOptions as Record<string, { env: string; flag: string } | undefined>)[k];
    const value = SECRET_OPTIONS.has(k) && v !== '' ? '(set)' : JSON.stringify(v);
    return [def?.env ?? k, def === undefined ? '' : `--${def.flag}`, value];
  });
  const head = ['ENV VAR', 'FLAG', 'VALUE'];
  const widths = [0, 1].map((i) => Math.max((head[i] as string).length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => `${(r[0] as string).padEnd(widths[0] as number)}  ${(r[1] as string).padEnd(widths[1] as number)}  ${r[2] as string}`;
  return [line(head), ...rows.map(line)].join('\n');
}

async function runRoles(config: Config, roles: StackRole[]): Promise<number> {
  const logger = createLogger(config.logLevel);
  // The demo's files are in place before anything starts, and its app registered before the banner
  // says the stack is up: whoever reads the banner finds both.
  const site = config.demo ? demoSite(config) : undefined;
  const stack = await startStack({ config, roles, logger });
  if (site !== undefined && stack.coreapi !== undefined) await ensureDemoApp(stack.coreapi.listening.url, stack.coreapi.token.token, site);
  if (roles.length === 3) printBanner(stack, config);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: stopping at once');
        void stack.destroy().finally(resolve);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'stopping: draining connections (again to force)');
      const began = Date.now();
      void stack.close().finally(() => {
        logger.info({ ms: Date.now() - began }, 'stopped');
        resolve();
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

function printBanner(stack: Stack, config: Config): void {
  const lines = [
    '',
    `fastcontainer is up on this host (CMDB: ${config.redisSentinels.length > 0 ? `Redis primary "${config.redisSentinelName}" through ${config.redisSentinels.length} sentinels` : config.redisUrl === '' ? 'embedded, in this process' : `Redis at ${config.redisUrl}`})`,
    `  proxy       ${stack.proxy?.listening.url ?? ''}   tenant traffic, routed by Host`,
    ...(stack.proxy?.secure === undefined ? [] : [`  proxy TLS   ${stack.proxy.secure.url}   HTTPS (HTTP/1.1, HTTP/2), certificates from ${config.tlsDir} (${stack.proxy.secure.certs.names.length} loaded)`]),
    `  CoreAPI     ${stack.coreapi?.listening.url ?? ''}   token: ${stack.coreapi?.token.source === 'FC_API_TOKEN' ? 'as set in FC_API_TOKEN' : `in ${stack.coreapi?.token.source ?? tokenPath(config.stateDir)}`}` +
      ` (read-only: ${stack.coreapi?.readToken.source === 'FC_API_READ_TOKEN' ? 'as set in FC_API_READ_TOKEN' : `in ${stack.coreapi?.readToken.source ?? tokenPath(config.stateDir, 'read')}`})`,
    `  dashboard   ${stack.coreapi?.listening.url ?? ''}/   in a browser; log in with either token`,
    `  dispatcher  ${stack.dispatcher?.listening.url ?? ''}   host "${config.hostId}"; serves only requests the proxies sign`,
    `  admin       ${stack.admin?.url ?? ''}   /healthz, /metrics, /v1/containers (operator only)`,
  ];
  if (config.demo) {
    lines.push(`  demo site   curl http://demo.localhost:${stack.proxy?.listening.port ?? config.proxyPort}/`);
  }
  lines.push('Logs are JSON on stdout. Stop with Ctrl-C.', '');
  process.stderr.write(lines.join('\n'));
}

/**
 * The demo site's files, copied from examples/demo-site into the demo app's directory under the
 * first volume root (by default <state dir>/datapool/demo/site): apps mount only from there.
 */
function demoSite(config: Config): string {
  const configured = config.volumeRoots[0];
  if (configured === undefined) throw new FcError('FC_ERR_CONFIG', 'the demo app needs a volume root for its site, and FC_VOLUME_ROOTS is none');
  const root = rootsOf([configured], 'demo')[0] as string;
  // Under a root shared by every app, the demo keeps to a directory named for it all the same.
  const site = configured.split('/').includes(APP_PLACEHOLDER) ? path.join(root, 'site') : path.join(root, 'demo', 'site');
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 }); // as the API token would make it
  mkdirSync(site, { recursive: true, mode: 0o755 });
  cpSync(path.join(repoRoot, 'examples', 'demo-site'), site, { recursive: true, force: true });
  return site;
}

export function demoSpec(site: string): Record<string, unknown> {
  return {
    name: 'demo',
    hostnames: ['demo.localhost'],
    image: 'fastcontainer/php',
    port: 8080,
    volumes: [`${site}:/var/www/html:ro`],
    cpus: 0.5,
    memory: '256m',
    lifespan: 300,
    minContainers: 0,
    maxContainers: 4,
  };
}

/** Registers the demo app through the CoreAPI, or brings it up to date if it exists. */
async function ensureDemoApp(apiUrl: string, token: string, site: string): Promise<void> {
  const client = new ApiClient(apiUrl, token);
  const spec = demoSpec(site);
  try {
    await client.call('POST', '/v1/apps', spec);
  } catch (err) {
    if (!(err instanceof ApiError) || err.problem.code !== 'FC_ERR_APP_EXISTS') throw err;
    const { name: _name, ...changes } = spec;
    await client.call('PATCH', '/v1/apps/demo', changes);
  }
}

/** A client with the admin token if this user has it, else the read token (reads only). */
function client(config: Config): ApiClient {
  const token = findApiToken(config.apiToken, config.stateDir) ?? findApiToken(config.apiReadToken, config.stateDir, 'read');
  return new ApiClient(config.apiUrl, token);
}

type Values = Record<string, string | boolean | string[] | undefined>;

/** A number if it reads as one; otherwise the text, sent as is so the CoreAPI's answer names the field. */
function numberOrText(raw: string): number | string {
  const n = Number(raw);
  return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
}

/** The app spec described by `app create` flags. */
export function specFromFlags(name: string | undefined, values: Values): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  if (name !== undefined) spec.name = name;
  if (Array.isArray(values.hostname)) spec.hostnames = values.hostname;
  if (typeof values.image === 'string') spec.image = values.image;
  const numbers: [string, string][] = [
    ['port', 'port'], ['cpus', 'cpus'], ['lifespan', 'lifespan'], ['min', 'minContainers'], ['max', 'maxContainers'],
    ['max-cpus', 'maxCpus'], ['latency-target', 'latencyTargetMs'], ['idle-timeout', 'idleTimeout'], ['freeze-after', 'freezeAfter'],
    ['upstream-timeout', 'upstreamTimeout'], ['max-concurrency', 'maxConcurrency'],
  ];
  for (const [flag, field] of numbers) {
    const raw = values[flag];
    if (typeof raw === 'string') spec[field] = numberOrText(raw);
  }
  if (typeof values.memory === 'string') spec.memory = numberOrText(values.memory);
  if (Array.isArray(values.env)) spec.env = pairs('--env', values.env);
  if (Array.isArray(values.secret) || Array.isArray(values['unset-secret'])) {
    const secrets: Record<string, string | null> = Array.isArray(values.secret) ? pairs('--secret', values.secret) : {};
    for (const key of Array.isArray(values['unset-secret']) ? values['unset-secret'] : []) {
      if (name !== undefined) throw new UsageError('--unset-secret is for app update (a new app has no secrets to unset)');
      secrets[key] = null;
    }
    spec.secrets = secrets;
  }
  if (Array.isArray(values.volume)) spec.volumes = values.volume.map(absoluteVolume);
  if (typeof values.user === 'string') spec.user = values.user;
  if (values['read-only-rootfs'] === true) spec.readOnlyRootfs = true;
  if (values['https-redirect'] === true) spec.httpsRedirect = true;
  if (typeof values.command === 'string') {
    const c = values.command.trim();
    spec.command = c.startsWith('[') ? (JSON.parse(c) as unknown) : c.split(/\s+/);
  }
  if (typeof values['readiness-path'] === 'string') spec.readinessPath = values['readiness-path'];
  if (typeof values.egress === 'string') spec.egress = values.egress;
  if (values['no-autoscale'] === true) {
    if (values.autoscale !== undefined) throw new UsageError('give --no-autoscale or --autoscale, not both');
    spec.autoscale = false;
  } else if (typeof values.autoscale === 'string') {
    spec.autoscale = booleanOrText(values.autoscale);
  }
  return spec;
}

/** true/false (yes/no, on/off, 1/0) if it reads as one; otherwise the text, for the CoreAPI to name. */
function booleanOrText(raw: string): boolean | string {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  return raw;
}

/** The body of `app scale`: only the flags given, numbers where they read as numbers. */
export function scaleFromFlags(values: Values): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (typeof values.containers === 'string') body.containers = numberOrText(values.containers);
  if (typeof values.cpus === 'string') body.cpus = numberOrText(values.cpus);
  if (Object.keys(body).length === 0) throw new UsageError('app scale needs --containers N and/or --cpus X');
  return body;
}

/** KEY=VALUE pairs of a repeated flag. */
function pairs(flag: string, list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of list) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`${flag} takes KEY=VALUE, not "${pair.slice(0, 40)}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * A volume's host path must be absolute: it names a directory on the compute hosts (under the
 * volume roots), not one where the command runs, so a relative one is refused, not guessed.
 */
function absoluteVolume(v: string): string {
  const [host] = v.split(':');
  if (host === undefined || !path.isAbsolute(host)) {
    throw new UsageError(`--volume needs an absolute host path, as the compute hosts see it (under the volume roots, FC_VOLUME_ROOTS), not "${v}"`);
  }
  return v;
}

async function appCommand(config: Config, args: string[], values: Values): Promise<number> {
  const [sub, name] = args;
  const api = client(config);
  switch (sub) {
    case 'create': {
      let spec: Record<string, unknown>;
      if (typeof values.file === 'string') {
        const { readFileSync } = await import('node:fs');
        if (!existsSync(values.file)) throw new UsageError(`no such file: ${values.file}`);
        spec = { ...(JSON.parse(readFileSync(values.file, 'utf8')) as Record<string, unknown>), ...(name === undefined ? {} : { name }) };
      } else {
        spec = specFromFlags(name, values);
      }
      const app = await api.call<App>('POST', '/v1/apps', spec);
      process.stdout.write(`created app ${app.name}: ${app.hostnames.join(', ')} -> ${app.image}\n`);
      return 0;
    }
    case 'update': {
      if (name === undefined) throw new UsageError('app update needs the app name');
      const changes = specFromFlags(undefined, values);
      if (Object.keys(changes).length === 0) throw new UsageError('app update needs at least one option to change (see app create)');
      const app = await api.call<App & { secretKeys?: string[] }>('PATCH', `/v1/apps/${encodeURIComponent(name)}`, changes);
      process.stdout.write(`updated app ${app.name}${(app.secretKeys ?? []).length > 0 ? ` (secrets: ${(app.secretKeys ?? []).join(', ')})` : ''}\n`);
      // What a running container cannot take live: its containers are replaced (dispatcher/rollout.ts).
      const restart = Object.keys(changes).filter((f) => (restartFields as readonly string[]).includes(f));
      if (restart.length > 0) {
        process.stdout.write(`${restart.join(', ')} changed: running containers are replaced one at a time, each drained once its replacement is ready (\`fastcontainer events ${app.name}\` shows it)\n`);
      }
      return 0;
    }
    case 'ls': {
      const { apps } = await api.call<{ apps: App[] }>('GET', '/v1/apps');
      printTable(
        ['NAME', 'HOSTNAMES', 'IMAGE', 'CPUS', 'MEMORY', 'LIFESPAN', 'MIN/MAX'],
        apps.map((a) => [a.name, a.hostnames.join(','), a.image, String(a.cpus), formatBytes(a.memory), `${a.lifespan}s`, `${a.minContainers}/${a.maxContainers}`]),
      );
      return 0;
    }
    case 'show': {
      if (name === undefined) throw new UsageError('app show needs the app name');
      process.stdout.write(`${JSON.stringify(await api.call<App>('GET', `/v1/apps/${encodeURIComponent(name)}`), null, 2)}\n`);
      return 0;
    }
    case 'rm': {
      if (name === undefined) throw new UsageError('app rm needs the app name');
      await api.call<App>('DELETE', `/v1/apps/${encodeURIComponent(name)}`);
      process.stdout.write(`removed app ${name}; its containers drain and go\n`);
      return 0;
    }
    case 'scale': {
      if (name === undefined) throw new UsageError('app scale needs the app name');
      const body = scaleFromFlags(values);
      const res = await api.call<{ app: string; containers: ContainerEntry[] }>('POST', `/v1/apps/${encodeURIComponent(name)}/scale`, body);
      process.stdout.write(`scaled app ${res.app}: ${describeLive(res.containers)}\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown app command "${sub ?? ''}" (create, update, ls, show, rm, scale)`);
  }
}

/** "3 live containers (2 ready, 1 registered) at 0.8 cores", from an app's entries. */
export function describeLive(entries: ContainerEntry[]): string {
  const live = entries.filter((c) => c.state === 'registered' || c.state === 'starting' || c.state === 'ready');
  if (live.length === 0) return 'no live containers';
  const states = (['ready', 'starting', 'registered'] as const)
    .map((st) => [st, live.filter((c) => c.state === st).length] as const)
    .filter(([, n]) => n > 0)
    .map(([st, n]) => `${n} ${st}`);
  const cpus = [...new Set(live.map((c) => c.cpus).filter((c): c is number => c !== null))].sort((a, b) => a - b);
  const quota = cpus.length === 0 ? '' : ` at ${cpus.length === 1 ? formatNumber(cpus[0] as number) : `${formatNumber(cpus[0] as number)}-${formatNumber(cpus.at(-1) as number)}`} cores`;
  return `${live.length} live container${live.length === 1 ? '' : 's'} (${states.join(', ')})${quota}`;
}

async function events(config: Config, name: string | undefined, limit: string | boolean | string[] | undefined): Promise<number> {
  if (name === undefined) throw new UsageError('events needs the app name');
  const query = typeof limit === 'string' ? `?limit=${encodeURIComponent(limit)}` : '';
  const { events: list } = await client(config).call<{ events: AppEvent[] }>('GET', `/v1/apps/${encodeURIComponent(name)}/events${query}`);
  printTable(['TIME', 'KIND', 'CONTAINER', 'FROM→TO', 'REASON'], eventRows(list));
  return 0;
}

/** The rows of `events`, in the order given (the CoreAPI's: newest first). */
export function eventRows(list: AppEvent[]): string[][] {
  return list.map((e) => [formatLocalTime(e.at), e.kind, e.container ?? '-', formatFromTo(e.from, e.to), e.reason]);
}

function formatFromTo(from: number | null, to: number | null): string {
  if (from === null && to === null) return '-';
  return `${from === null ? '?' : formatNumber(from)}→${to === null ? '?' : formatNumber(to)}`;
}

/** Local time as ISO 8601 to the second, without a zone: 2025-03-01T14:05:09. */
export function formatLocalTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** At most three decimals: 0.30000000000000004 reads 0.3. */
function formatNumber(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}

type ListedContainer = ContainerEntry & { stats?: ContainerStats | null };

async function ps(config: Config, app: string | boolean | string[] | undefined): Promise<number> {
  const query = typeof app === 'string' ? `?app=${encodeURIComponent(app)}` : '';
  const { now, containers } = await client(config).call<{ now: number; containers: ListedContainer[] }>('GET', `/v1/containers${query}`);
  printTable(psHead, psRows(now, containers));
  return 0;
}

const psHead = ['CONTAINER', 'APP', 'STATE', 'HOST', 'AGE', 'LEFT', 'CPU', 'INFLIGHT', 'P95', 'THROTTLED', 'ADDRESS', 'LAST ERROR'];

/**
 * The rows of `ps`: CPU is the quota the dispatcher measured under, else the entry's (also when a
 * quota was set by hand after the last stats, which are up to 2 s old); "-" without stats.
 */
export function psRows(now: number, containers: ListedContainer[]): string[][] {
  return containers.map((c) => {
    const st = c.stats ?? null;
    const cpus = st !== null && (c.cpusSetAt ?? 0) <= st.at ? st.cpus : c.cpus;
    return [
      c.id, c.app, c.state === 'ready' && c.frozenAt != null ? 'frozen' : c.state, c.host, formatDuration(now - c.createdAt),
      c.expiresAt === null ? '-' : formatDuration(Math.max(0, c.expiresAt - now)),
      cpus === null ? '-' : formatNumber(cpus),
      st === null ? '-' : String(st.inflight),
      st?.p95Ms == null ? '-' : `${Math.round(st.p95Ms)}ms`,
      st?.throttledShare == null ? '-' : `${Math.round(st.throttledShare * 100)}%`,
      c.address ?? '-', c.lastError === null ? '' : c.lastError.slice(0, 80),
    ];
  });
}

type ListedHost = ComputeHost & { live: boolean; containers?: number };

async function hosts(config: Config): Promise<number> {
  const { now, hosts: list } = await client(config).call<{ now: number; hosts: ListedHost[] }>('GET', '/v1/hosts');
  printTable(hostHead, hostRows(now, list));
  return 0;
}

const hostHead = ['HOST', 'DISPATCHER', 'CAPACITY', 'LIVE', 'LAST HEARTBEAT', 'DRAINED', 'CONTAINERS'];

export function hostRows(now: number, list: ListedHost[]): string[][] {
  return list.map((h) => [
    h.id, h.dispatcherUrl, String(h.capacity), h.live ? 'yes' : 'no', `${formatDuration(now - h.heartbeatAt)} ago`,
    h.drainedAt == null ? '-' : `${formatDuration(now - h.drainedAt)} ago`, h.containers === undefined ? '-' : String(h.containers),
  ]);
}

/** `host ls | rm | drain | undrain | resume`: the operator's commands on compute hosts. */
async function hostCommand(config: Config, args: string[], force: boolean): Promise<number> {
  const [sub, id, ...extra] = args;
  if (sub === 'ls' && id === undefined) return hosts(config);
  if (sub === undefined || !['rm', 'drain', 'undrain', 'resume'].includes(sub)) throw new UsageError(`host needs one of ls, rm, drain, undrain, resume${sub === undefined ? '' : ` (not "${sub}")`}`);
  if (id === undefined || id === '' || extra.length > 0) throw new UsageError(`host ${sub} needs exactly one host id`);
  const path = `/v1/hosts/${encodeURIComponent(id)}`;
  const api = client(config);
  if (sub === 'rm') {
    const { removedContainers } = await api.call<{ removedContainers: number }>('DELETE', `${path}${force ? '?force=true' : ''}`);
    process.stdout.write(`host ${id} removed with ${removedContainers} container entr${removedContainers === 1 ? 'y' : 'ies'}\n`);
    return 0;
  }
  if (sub === 'drain') {
    const h = await api.call<ListedHost>('POST', `${path}/drain${force ? '?force=true' : ''}`);
    process.stdout.write(`host ${id} drained: no new containers; its ${h.containers ?? 0} container${h.containers === 1 ? '' : 's'} move to other hosts (\`fastcontainer hosts\` shows how many are left)\n`);
    return 0;
  }
  await api.call<ListedHost>('POST', `${path}/undrain`);
  process.stdout.write(`host ${id} takes new containers again\n`);
  return 0;
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  process.stdout.write(`${[line(head), ...rows.map(line)].join('\n')}\n`);
}

export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

function formatBytes(n: number): string {
  for (const [unit, size] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return String(n);
}
