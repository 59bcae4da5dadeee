// `fastcontainer usage [NAME] [--since 1h] [--until TIME]`: what apps used, for billing, from
// the CMDB's per-minute rollup (GET /v1/apps/:name/usage). Without a name: every app.

import type { App } from '../../cmdb/types.js';
import type { UsageAnswer } from '../../coreapi/usage.js';
import type { ApiClient } from '../api-client.js';

const HEAD = ['APP', 'CPU-S', 'MEM-LIMIT-GiB-S', 'MEM-USED-GiB-S', 'CONTAINER-S', 'REQUESTS', 'BYTES-IN', 'BYTES-OUT', 'COLD-STARTS'];

const n3 = (v: number) => String(Math.round(v * 1000) / 1000);

export function usageRow(u: UsageAnswer): string[] {
  const t = u.totals;
  return [u.app, n3(t.cpuSeconds), n3(t.memoryLimitGiBSeconds), n3(t.memoryUsedGiBSeconds), n3(t.containerSeconds), String(t.requests), String(t.bytesIn), String(t.bytesOut), String(t.coldStarts)];
}

export async function usageCommand(
  api: ApiClient, name: string | undefined, o: { since?: string; until?: string },
  printTable: (head: string[], rows: string[][]) => void,
): Promise<number> {
  const q = new URLSearchParams({ from: o.since ?? '1h', step: 'hour' });
  if (o.until !== undefined) q.set('to', o.until);
  const names = name !== undefined ? [name] : (await api.call<{ apps: App[] }>('GET', '/v1/apps')).apps.map((a) => a.name);
  const answers: UsageAnswer[] = [];
  for (const n of names) answers.push(await api.call<UsageAnswer>('GET', `/v1/apps/${encodeURIComponent(n)}/usage?${q}`));
  const first = answers[0];
  if (first !== undefined) process.stdout.write(`usage from ${new Date(first.from).toISOString()} to ${new Date(first.to).toISOString()}\n`);
  printTable(HEAD, answers.map(usageRow));
  return 0;
}
