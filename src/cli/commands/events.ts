// `fastcontainer events NAME [--limit 50]`: what happened to an app's containers and why,
// newest first (GET /v1/apps/:name/events).

import type { AppEvent } from '../../cmdb/types.js';
import type { ApiClient } from '../api-client.js';
import { formatLocalTime, formatNumber, printTable } from '../format.js';
import { UsageError } from '../usage-error.js';

export async function eventsCommand(api: ApiClient, name: string | undefined, limit: string | boolean | string[] | undefined): Promise<number> {
  if (name === undefined) throw new UsageError('events needs the app name');
  const query = typeof limit === 'string' ? `?limit=${encodeURIComponent(limit)}` : '';
  const { events: list } = await api.call<{ events: AppEvent[] }>('GET', `/v1/apps/${encodeURIComponent(name)}/events${query}`);
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
