// `fastcontainer config`: the effective configuration as text (env var, flag and value of every
// option) or as JSON for scripts, secrets masked in both. `config --markdown` is the README's
// table, made in shared/config.ts.

import { options as configOptions, type Config } from '../shared/config.js';
import { withoutPassword } from '../shared/redact.js';

/** Options never printed (shown as "(set)"): those the option table marks secret. */
const SECRET_OPTIONS: ReadonlySet<string> = new Set(
  Object.entries(configOptions as Record<string, { secret?: boolean }>).filter(([, def]) => def.secret === true).map(([key]) => key),
);

/** A value as shown: a secret as "(set)", a URL without its password. */
function shown(key: string, value: unknown): unknown {
  if (SECRET_OPTIONS.has(key) && value !== '') return '(set)';
  return typeof value === 'string' ? withoutPassword(value) : value;
}

/** The effective configuration as one JSON object by option key (scripts read it), secrets masked. */
export function configJson(config: Config): string {
  return JSON.stringify(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, shown(k, v)])), null, 2);
}

/** Every option as `fastcontainer config` shows it: env var, flag and value here (tokens hidden). */
export function configText(config: Config): string {
  const rows = Object.entries(config).map(([k, v]) => {
    const def = (configOptions as Record<string, { env: string; flag: string } | undefined>)[k];
    const value = SECRET_OPTIONS.has(k) && v !== '' ? '(set)' : JSON.stringify(shown(k, v));
    return [def?.env ?? k, def === undefined ? '' : `--${def.flag}`, value];
  });
  const head = ['ENV VAR', 'FLAG', 'VALUE'];
  const widths = [0, 1].map((i) => Math.max((head[i] as string).length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]) => `${(r[0] as string).padEnd(widths[0] as number)}  ${(r[1] as string).padEnd(widths[1] as number)}  ${r[2] as string}`;
  return [line(head), ...rows.map(line)].join('\n');
}
