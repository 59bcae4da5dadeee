// Apps' recent log lines as the CMDB keeps them: per app, the newest lines (a capped list), each
// with a sequence number of its app (a cursor for `logs --follow`: the lines after it are the head
// of the list). Written in batches by the dispatchers that follow their containers' output
// (src/dispatcher/log-shipper.ts); read by the CoreAPI. Bounded: lines per app (FC_LOG_LINES),
// bytes per line (FC_LOG_LINE_BYTES, cut by the dispatcher), and a list nobody writes fades
// after LOGS_TTL_MS.

export type LogStream = 'stdout' | 'stderr' | 'system';

export interface NewLogLine {
  /** When the engine received it (its timestamp), ms since epoch. */
  at: number;
  /** Container entry id. */
  container: string;
  host: string;
  /** system: written by the platform (e.g. "N lines dropped"), not by the app. */
  stream: LogStream;
  /** The line as printed, without its newline; may hold any character (it is JSON when stored). */
  text: string;
}

export interface LogLine extends NewLogLine {
  /** 1, 2, 3, … per app. */
  seq: number;
}

export interface LogQuery {
  /** Only lines with a greater sequence number (follow's cursor). */
  after?: number;
  /** Only lines at or after this time (ms). */
  since?: number;
  /** Only this container entry's lines. */
  container?: string;
  /** The newest this many lines that match. */
  limit: number;
  /** How many of the newest lines to look through (at least limit; at most what is kept). */
  scan: number;
}

export interface LogPage {
  /** Oldest first. */
  lines: LogLine[];
  /** The app's newest sequence number (0: none yet): follow asks for the lines after it next. */
  last: number;
}

/** A list nobody has written for this long goes (its app may be gone). */
export const LOGS_TTL_MS = 7 * 24 * 3600 * 1000;
/** The most lines per app any setting keeps. */
export const MAX_LOG_LINES = 100_000;

/** Of lines newest first, the newest `limit` that match the query, oldest first. */
export function pickLogLines(newestFirst: readonly LogLine[], q: LogQuery, limit: number): LogLine[] {
  const out: LogLine[] = [];
  for (const l of newestFirst) {
    if (out.length >= limit) break;
    if (q.after !== undefined && l.seq <= q.after) break;
    if (q.since !== undefined && l.at < q.since) continue;
    if (q.container !== undefined && l.container !== q.container) continue;
    out.push(l);
  }
  return out.reverse();
}
