// `fastcontainer hosts | host ls | rm | drain | undrain | resume`: the operator's view of the
// compute hosts and commands on them (/v1/hosts).

import type { ComputeHost } from '../../cmdb/types.js';
import type { ApiClient } from '../api-client.js';
import { formatDuration, printTable } from '../format.js';
import { UsageError } from '../usage-error.js';

type ListedHost = ComputeHost & { live: boolean; containers?: number };

export async function hostsCommand(api: ApiClient): Promise<number> {
  const { now, hosts: list } = await api.call<{ now: number; hosts: ListedHost[] }>('GET', '/v1/hosts');
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
export async function hostCommand(api: ApiClient, args: string[], force: boolean): Promise<number> {
  const [sub, id, ...extra] = args;
  if (sub === 'ls' && id === undefined) return hostsCommand(api);
  if (sub === undefined || !['rm', 'drain', 'undrain', 'resume'].includes(sub)) throw new UsageError(`host needs one of ls, rm, drain, undrain, resume${sub === undefined ? '' : ` (not "${sub}")`}`);
  if (id === undefined || id === '' || extra.length > 0) throw new UsageError(`host ${sub} needs exactly one host id`);
  const path = `/v1/hosts/${encodeURIComponent(id)}`;
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
