// `fastcontainer logs NAME [--follow] [--container ID] [--since 1h] [--limit 100]`: an app's
// recent output, kept in the CMDB past its containers. Lines are the tenant's bytes: printed with
// every control character escaped (ANSI escapes, NUL, bidi overrides), so a line can neither
// drive the operator's terminal nor disguise itself as another.

import { StringDecoder } from 'node:string_decoder';
import type { LogLine } from '../../cmdb/logs.js';
import type { ApiClient } from '../api-client.js';

/**
 * The text with C0 and C1 control characters (tab excepted), DEL, line and paragraph separators
 * and bidirectional controls written as \xNN or \u{NNNN}: what a terminal would act on, shown.
 */
export function safeText(text: string): string {
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ufeff]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/** One printed line: local time, container, stream (stderr and platform lines marked), text. */
export function formatLogLine(l: LogLine): string {
  const d = new Date(l.at);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const time = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  const mark = l.stream === 'stderr' ? ' [stderr]' : l.stream === 'system' ? ' [fastcontainer]' : '';
  return `${time} ${safeText(String(l.container))}${mark} ${safeText(String(l.text))}`;
}

export interface LogsOptions {
  follow: boolean;
  container?: string;
  since?: string;
  limit?: string;
  /** Ends a follow (the CLI follows until interrupted). */
  signal?: AbortSignal;
}

export async function logsCommand(api: ApiClient, name: string, o: LogsOptions, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const q = new URLSearchParams();
  if (o.limit !== undefined) q.set('limit', o.limit);
  if (o.since !== undefined) q.set('since', o.since);
  if (o.container !== undefined) q.set('container', o.container);
  const base = `/v1/apps/${encodeURIComponent(name)}/logs`;
  if (!o.follow) {
    const page = await api.call<{ lines: LogLine[] }>('GET', `${base}?${q}`);
    for (const l of page.lines) out(`${formatLogLine(l)}\n`);
    return 0;
  }
  q.set('follow', '1');
  let after: number | undefined;
  // The CoreAPI ends a follow after an hour (or when it stops): taken up again from the cursor.
  const stopped = () => o.signal?.aborted === true;
  while (!stopped()) {
    if (after !== undefined) {
      q.delete('since');
      q.set('after', String(after));
    }
    let rest = '';
    // A character split between two chunks stays whole.
    const decoder = new StringDecoder('utf8');
    let body: AsyncIterable<Buffer>;
    try {
      body = await api.stream(`${base}?${q}`, o.signal);
    } catch (err) {
      if (stopped()) break;
      throw err;
    }
    try {
      for await (const chunk of body) {
        rest += decoder.write(chunk);
        let nl: number;
        while ((nl = rest.indexOf('\n')) !== -1) {
          const text = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          if (text.trim() === '') continue; // keep-alive
          const l = JSON.parse(text) as LogLine;
          after = Math.max(after ?? 0, l.seq);
          out(`${formatLogLine(l)}\n`);
        }
      }
    } catch (err) {
      if (stopped()) break;
      throw err;
    }
    after ??= 0;
  }
  return 0;
}
