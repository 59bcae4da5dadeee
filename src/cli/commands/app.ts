// `fastcontainer app create | update | ls | show | rm | scale`: an app's spec and its live
// containers, through the CoreAPI (/v1/apps). The request bodies come from spec-from-flags.ts.

import { existsSync, readFileSync } from 'node:fs';
import type { App, ContainerEntry } from '../../cmdb/types.js';
import { restartFields } from '../../dispatcher/rollout.js';
import type { ApiClient } from '../api-client.js';
import { formatBytes, formatNumber, printTable } from '../format.js';
import { scaleFromFlags, specFromFlags, type Values } from '../spec-from-flags.js';
import { UsageError } from '../usage-error.js';

export async function appCommand(api: ApiClient, args: string[], values: Values): Promise<number> {
  const [sub, name] = args;
  switch (sub) {
    case 'create': {
      let spec: Record<string, unknown>;
      if (typeof values.file === 'string') {
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
