// `fastcontainer ps [--app NAME]`: container entries with their state, host, age, time left, CPU
// quota and load (GET /v1/containers).

import type { ContainerEntry, ContainerStats } from '../../cmdb/types.js';
import type { ApiClient } from '../api-client.js';
import { formatDuration, formatNumber, printTable } from '../format.js';

type ListedContainer = ContainerEntry & { stats?: ContainerStats | null };

export async function psCommand(api: ApiClient, app: string | boolean | string[] | undefined): Promise<number> {
  const query = typeof app === 'string' ? `?app=${encodeURIComponent(app)}` : '';
  const { now, containers } = await api.call<{ now: number; containers: ListedContainer[] }>('GET', `/v1/containers${query}`);
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
