// Times in query strings (?since=, ?from=, ?to=): an ISO 8601 date, milliseconds since the epoch,
// or a duration back from now ("90s", "15m", "1h", "7d"), one convention for logs and usage.

import { invalidFields } from '../shared/errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** ms since epoch, or a 400 naming the field. `raw` null: `fallback`. */
export function parseQueryTime(field: string, raw: string | null, now: number, fallback: number): number {
  if (raw === null || raw === '') return fallback;
  const allowed = 'an ISO 8601 time (2026-11-25T10:00:00Z), milliseconds since the epoch, or a duration back from now (90s, 15m, 1h, 7d)';
  const text = raw.trim();
  if (text.length > 40) throw invalidFields([{ field, value: raw, allowed }]);
  const ago = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text);
  if (ago !== null) return now - Number(ago[1]) * (UNITS[ago[2] as string] as number);
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (Number.isFinite(t)) return t;
  }
  throw invalidFields([{ field, value: raw, allowed }]);
}

/** An integer query field within [min, max], or its default when absent. */
export function parseQueryInt(field: string, raw: string | null, min: number, max: number, fallback: number): number {
  if (raw === null) return fallback;
  const n = /^\d{1,9}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= min && n <= max)) throw invalidFields([{ field, value: raw, allowed: `an integer from ${min} to ${max}` }]);
  return n;
}
