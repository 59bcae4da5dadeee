// The `fastcontainer` command: runs the roles (up, proxy, dispatcher, coreapi) and talks to the
// CoreAPI (app, ps, events, ...). Options come from flags and env vars, described once in
// shared/config.ts. This file parses the arguments, hands each command to its module (run-roles.ts,
// commands/*.ts, config-output.ts) and reports errors: a usage error exits 2, any other 1.

import { parseArgs } from 'node:util';
import { findApiToken } from '../shared/api-token.js';
import { configMarkdownTable, loadConfig, parseArgsOptions, type Config } from '../shared/config.js';
import { FcError, describeFieldProblem, type FieldProblem } from '../shared/errors.js';
import { ApiClient, ApiError } from './api-client.js';
import { appCommand } from './commands/app.js';
import { containerCommand } from './commands/container.js';
import { eventsCommand } from './commands/events.js';
import { hostCommand, hostsCommand } from './commands/host.js';
import { logsCommand } from './commands/logs.js';
import { psCommand } from './commands/ps.js';
import { usageCommand } from './commands/usage.js';
import { configJson, configText } from './config-output.js';
import { printTable } from './format.js';
import { helpFor } from './help.js';
import { runRoles } from './run-roles.js';
import { UsageError } from './usage-error.js';

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
        return await appCommand(client(config), rest, values);
      case 'ps':
        return await psCommand(client(config), values.app);
      case 'container':
        return await containerCommand(client(config), rest);
      case 'events':
        return await eventsCommand(client(config), rest[0], values.limit);
      case 'hosts':
        return await hostsCommand(client(config));
      case 'host':
        return await hostCommand(client(config), rest, values.force === true);
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

/** A client with the admin token if this user has it, else the read token (reads only). */
function client(config: Config): ApiClient {
  const token = findApiToken(config.apiToken, config.stateDir) ?? findApiToken(config.apiReadToken, config.stateDir, 'read');
  return new ApiClient(config.apiUrl, token);
}
