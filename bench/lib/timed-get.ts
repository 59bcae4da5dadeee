// One GET through a stack's proxy, timed from sending to the first byte (the body is read too),
// and how a set of them failed, for the benchmarks that time first answers (burst, freeze).

import { request, type Agent } from 'undici';
import type { Fastcontainer } from './fastcontainer.js';

export interface Timed {
  /** ms from sending to the status and headers. */
  ms: number;
  status: number;
  error: string | null;
}

export async function timedGet(fc: Fastcontainer, host: string, agent?: Agent): Promise<Timed> {
  const t0 = performance.now();
  try {
    const res = await request(`${fc.proxyUrl}/`, { ...(agent ? { dispatcher: agent } : {}), headers: { host }, headersTimeout: 60_000, bodyTimeout: 60_000 });
    const ms = performance.now() - t0;
    await res.body.text();
    return { ms, status: res.statusCode, error: null };
  } catch (err) {
    return { ms: performance.now() - t0, status: 0, error: String(err) };
  }
}

export const ok = (t: Timed): boolean => t.status === 200;

/** "0", or how many failed and how, for a table cell. */
export function failureText(ts: readonly Timed[]): string {
  const bad = ts.filter((t) => !ok(t));
  if (bad.length === 0) return '0';
  const kinds = new Map<string, number>();
  for (const t of bad) {
    const k = t.error === null ? `status ${t.status}` : t.error.slice(0, 60);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  return `**${bad.length}** (${[...kinds].map(([k, n]) => `${n}× ${k}`).join(', ')})`;
}
