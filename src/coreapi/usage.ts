// GET /v1/apps/:name/usage: an app's usage for billing over [from, to), from the per-minute
// rollup the dispatchers write (src/dispatcher/usage-meter.ts), in the units people bill in.

import { cmdbErrors } from '../cmdb/errors.js';
import type { Store } from '../cmdb/types.js';
import { addUsage, HOUR_MS, hourOf, MINUTE_MS, minuteOf, zeroUsage, type UsageMinute, type UsageTotals } from '../cmdb/usage.js';
import { invalidFields } from '../shared/errors.js';
import { parseQueryTime } from './query-time.js';

/** The figures as the API answers them. */
export interface UsageFigures {
  cpuSeconds: number;
  containerSeconds: number;
  memoryLimitGiBSeconds: number;
  memoryUsedGiBSeconds: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  coldStarts: number;
}

export interface UsageAnswer {
  app: string;
  from: number;
  to: number;
  step: 'minute' | 'hour';
  totals: UsageFigures;
  series: ({ at: number } & UsageFigures)[];
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

export function usageFigures(t: UsageTotals): UsageFigures {
  return {
    cpuSeconds: round(t.cpuUs / 1e6, 6),
    containerSeconds: round(t.containerMs / 1e3, 3),
    memoryLimitGiBSeconds: round(t.memLimitMiBMs / (1024 * 1000), 6),
    memoryUsedGiBSeconds: round(t.memUsedMiBMs / (1024 * 1000), 6),
    requests: t.requests,
    bytesIn: t.bytesIn,
    bytesOut: t.bytesOut,
    coldStarts: t.coldStarts,
  };
}

/** Minutes summed per hour. */
function byHour(minutes: UsageMinute[]): UsageMinute[] {
  const out = new Map<number, UsageTotals>();
  for (const m of minutes) {
    const h = hourOf(m.at);
    addUsage(out.get(h) ?? out.set(h, zeroUsage()).get(h) as UsageTotals, m.usage);
  }
  return [...out].map(([at, usage]) => ({ at, usage }));
}

export async function appUsage(
  store: Store, name: string, query: URLSearchParams, now: number, retentionMs: number,
): Promise<UsageAnswer> {
  const oldest = minuteOf(now - retentionMs);
  // to: the end of the current minute by default; never past it (nothing is there).
  const to = Math.min(parseQueryTime('to', query.get('to'), now, now + MINUTE_MS), minuteOf(now) + MINUTE_MS);
  // Bounded: nothing older than the retention is kept, so nothing older is read.
  const from = Math.max(oldest, parseQueryTime('from', query.get('from'), now, now - HOUR_MS));
  if (!(from < to)) {
    throw invalidFields([{ field: 'from', value: query.get('from'), allowed: `a time before to (${new Date(to).toISOString()}) and within the retention (FC_USAGE_RETENTION: after ${new Date(oldest).toISOString()})` }]);
  }
  const stepRaw = query.get('step');
  if (stepRaw !== null && stepRaw !== 'minute' && stepRaw !== 'hour') throw invalidFields([{ field: 'step', value: stepRaw, allowed: 'minute or hour (default: minute up to a day, else hour)' }]);
  const step = stepRaw ?? (to - from <= 24 * HOUR_MS ? 'minute' : 'hour');
  // A bounded answer: at most a week of minutes (10,080 rows).
  if (step === 'minute' && to - from > 7 * 24 * HOUR_MS) throw invalidFields([{ field: 'step', value: step, allowed: 'hour for ranges over 7 days' }]);
  const [app, minutes] = await Promise.all([store.getApp(name), store.readUsage(name, minuteOf(from), to)]);
  // A deleted app's usage stays readable (it is billed) for as long as its rollup is kept.
  if (app === null && minutes.length === 0) throw cmdbErrors.appNotFound(name);
  const totals = zeroUsage();
  for (const m of minutes) addUsage(totals, m.usage);
  const series = (step === 'minute' ? minutes : byHour(minutes)).map((m) => ({ at: m.at, ...usageFigures(m.usage) }));
  return { app: name, from: minuteOf(from), to, step, totals: usageFigures(totals), series };
}
