// `fastcontainer <command> --help`: each command's flags, each with the app field it sets and that
// field's meaning and unit, taken from the app's schema (cmdb/app-schema.ts), so the CLI's help
// and the API's document say the same. A command added elsewhere adds its entry to commandHelp.

import { AppSpecSchema, type AppField } from '../cmdb/app-schema.js';
import { appDefaults } from '../cmdb/app-defaults.js';

/** A flag of `app create` / `app update` and the app field it sets. */
export interface AppFlag {
  flag: string;
  field: AppField;
  /** What it takes, e.g. DURATION; absent for a switch. */
  arg?: string;
  repeat?: boolean;
  /** Said after the field's own description. */
  note?: string;
}

/** Every app field but name (the positional argument) has a flag: the CLI covers the API. */
export const appFlags: readonly AppFlag[] = [
  { flag: 'hostname', field: 'hostnames', arg: 'HOST', repeat: true },
  { flag: 'image', field: 'image', arg: 'IMAGE' },
  { flag: 'port', field: 'port', arg: 'PORT' },
  { flag: 'command', field: 'command', arg: 'CMD', note: 'A JSON list \'["php","-S","0.0.0.0:8080"]\' or words split on spaces.' },
  { flag: 'env', field: 'env', arg: 'KEY=VALUE', repeat: true, note: 'On app update, the env given replaces the whole env.' },
  { flag: 'secret', field: 'secrets', arg: 'KEY=VALUE', repeat: true, note: 'On app update, set key by key; --unset-secret KEY removes one.' },
  { flag: 'volume', field: 'volumes', arg: '/host/path:/container/path[:ro|rw]', repeat: true, note: 'The host path is absolute, as the compute hosts see it.' },
  { flag: 'cpus', field: 'cpus', arg: 'CORES' },
  { flag: 'memory', field: 'memory', arg: 'SIZE'},
  { flag: 'lifespan', field: 'lifespan', arg: 'DURATION' },
  { flag: 'min', field: 'minContainers', arg: 'N' },
  { flag: 'max', field: 'maxContainers', arg: 'N' },
  { flag: 'readiness-path', field: 'readinessPath', arg: 'PATH' },
  { flag: 'max-cpus', field: 'maxCpus', arg: 'CORES', note: 'Default: twice cpus.' },
  { flag: 'latency-target', field: 'latencyTargetMs', arg: 'DURATION' },
  { flag: 'idle-timeout', field: 'idleTimeout', arg: 'DURATION' },
  { flag: 'autoscale', field: 'autoscale', arg: 'true|false', note: '--no-autoscale is --autoscale false.' },
  { flag: 'freeze-after', field: 'freezeAfter', arg: 'DURATION' },
  { flag: 'user', field: 'user', arg: 'UID[:GID]' },
  { flag: 'read-only-rootfs', field: 'readOnlyRootfs' },
  { flag: 'https-redirect', field: 'httpsRedirect' },
  { flag: 'upstream-timeout', field: 'upstreamTimeout', arg: 'DURATION' },
  { flag: 'max-concurrency', field: 'maxConcurrency', arg: 'N' },
  { flag: 'egress', field: 'egress', arg: 'open|closed' },
];

function appFlagLines(): string {
  const rows = appFlags.map((f) => {
    const schema = AppSpecSchema.properties[f.field] as { description?: string };
    const dflt = (appDefaults as Record<string, unknown>)[f.field];
    const head = `  --${f.flag}${f.arg === undefined ? '' : ` ${f.arg}`}${f.repeat === true ? ' ...' : ''}`;
    const text = `${f.field}: ${schema.description ?? ''}${f.note === undefined ? '' : ` ${f.note}`}${dflt === undefined ? '' : ` Default: ${JSON.stringify(dflt)}.`}`;
    return `${head}\n${wrap(text, 6)}`;
  });
  return rows.join('\n');
}

/** Words wrapped at 100 columns, indented. */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent + line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => `${' '.repeat(indent)}${l}`).join('\n');
}

/** Help per command ("app create", "ps", ...), by the words that name it. */
export const commandHelp: Record<string, () => string> = {
  'app create': () => `Usage: fastcontainer app create NAME --hostname HOST --image IMAGE [options]
       fastcontainer app create [NAME] --file spec.json     (the API's JSON; NAME overrides its name)

Creates an app. Durations take a number in the field's unit or a string with a unit ("90s", "5m", "1h");
the JSON the API answers has the number (seconds; latencyTargetMs: milliseconds).

${appFlagLines()}`,
  'app update': () => `Usage: fastcontainer app update NAME [any app create option] [--unset-secret KEY ...]

Changes only the fields given. A change of what containers start from (image, command, env, secrets,
port, volumes, memory, user, read-only root) replaces the running containers make before break, one at
a time (each is drained once its replacement is ready; an image that cannot start stalls the update at
the first one, and the old containers keep serving). Other fields apply live.

${appFlagLines()}
  --unset-secret KEY ...
      Removes that secret.`,
  'app scale': () => `Usage: fastcontainer app scale NAME [--containers N] [--cpus CORES]

  --containers N   live containers now, from the app's minContainers to its maxContainers
  --cpus CORES     CPU quota of every live container now, cores, from the app's cpus to its maxCpus
The autoscaler may change either again (unless the app has autoscale false).`,
  'app ls': () => 'Usage: fastcontainer app ls\n\nEvery app: hostnames, image, cpus, memory, lifespan (seconds), min/max containers.',
  'app show': () => 'Usage: fastcontainer app show NAME\n\nThe app as JSON; secrets by key only (secretKeys).',
  'app rm': () => 'Usage: fastcontainer app rm NAME\n\nRemoves the app; its containers drain (in-flight requests finish) and go.',
  'container rm': () => `Usage: fastcontainer container rm ID ...

Removes container entries (ids as \`fastcontainer ps\` shows them): one never started goes at once; a
running one drains (no new requests, in-flight ones finish within FC_DRAIN_TIMEOUT) and is removed.
An app below its minContainers gets a new one.`,
  ps: () => `Usage: fastcontainer ps [--app NAME]

Container entries: state, host, age, time left of the lifespan, CPU quota, in-flight requests, p95
latency, throttled share. --app names an app that must exist (an unknown one is an error, exit 1).`,
  events: () => 'Usage: fastcontainer events NAME [--limit N]\n\nWhat happened to an app\'s containers and why, newest first; --limit from 1 to 200 (default 50).',
  hosts: () => 'Usage: fastcontainer hosts | host ls\n\nCompute hosts: dispatcher, capacity, live, last heartbeat, drained since, containers.',
  host: () => `Usage: fastcontainer host ls | rm ID [--force] | drain ID [--force] | undrain ID | resume ID

  rm       forget a host that will not come back, with its container entries (refused for a live host unless --force)
  drain    no new containers there; its containers are replaced on other hosts, make before break
           (refused for the last host that takes containers unless --force)
  undrain  the host takes new containers again (resume: the same)`,
  config: () => `Usage: fastcontainer config [--markdown | --json]

Every option with its env var, its flag and the value it has here (tokens and secrets shown as (set)).
--json prints one object of the values by option key, for scripts; --markdown the README's table.
Durations take "500ms", "2s", "5m", "1h"; a bare number is milliseconds.`,
};

/** The help of the command named by the first positionals, if it has one. */
export function helpFor(positionals: readonly string[]): string | undefined {
  const [a, b] = positionals;
  if (a === undefined) return undefined;
  return (b !== undefined ? commandHelp[`${a} ${b}`] : undefined)?.() ?? commandHelp[a]?.();
}
