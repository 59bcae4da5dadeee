// GET /v1/apps/:name/logs: an app's recent output lines, kept in the CMDB by the dispatchers
// (src/dispatcher/log-shipper.ts) past its containers. Plain: one JSON page. With follow=1: a
// stream of NDJSON, one line object per line, first the page, then new lines as they come
// (the CMDB is polled every FOLLOW_POLL_MS from the page's cursor: a cheap read of the list's
// head), until the client goes, the app is deleted, FOLLOW_MAX_MS passes (the CLI follows on from
// its cursor) or the CoreAPI stops. Followers are bounded per CoreAPI.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { cmdbErrors } from '../cmdb/errors.js';
import { MAX_LOG_LINES, type LogLine, type LogQuery } from '../cmdb/logs.js';
import type { Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { FcError, invalidFields } from '../shared/errors.js';
import { sendJson } from '../shared/http.js';
import { parseQueryInt, parseQueryTime } from './query-time.js';

const FOLLOW_POLL_MS = 1_000;
/** A follow ends after this long; the client takes up again from its cursor (after=). */
const FOLLOW_MAX_MS = 3_600_000;
/** Followers per CoreAPI at once. */
const MAX_FOLLOWERS = 100;
/** A blank line this often keeps proxies between the client and the CoreAPI from timing out. */
const KEEPALIVE_MS = 15_000;

export class LogsApi {
  private followers = 0;
  private readonly stopping = new AbortController();

  constructor(private readonly store: Store, private readonly clock: Clock, private readonly keptLines: number) {}

  async serve(name: string, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const now = this.clock.now();
    const kept = Math.max(1, this.keptLines);
    const limit = Math.min(kept, parseQueryInt('limit', query.get('limit'), 1, MAX_LOG_LINES, 100));
    const sinceRaw = query.get('since');
    const q: LogQuery = { limit, scan: kept };
    if (sinceRaw !== null) q.since = parseQueryTime('since', sinceRaw, now, 0);
    const afterRaw = query.get('after');
    if (afterRaw !== null) {
      if (!/^\d{1,15}$/.test(afterRaw)) throw invalidFields([{ field: 'after', value: afterRaw, allowed: 'a line sequence number (the `last` or a line\'s `seq` of an earlier answer)' }]);
      q.after = Number(afterRaw);
    }
    const container = query.get('container');
    if (container !== null) {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/.test(container)) throw invalidFields([{ field: 'container', value: container, allowed: 'a container entry id' }]);
      q.container = container;
    }
    const followRaw = query.get('follow');
    if (followRaw !== null && !['1', 'true', '0', 'false'].includes(followRaw)) throw invalidFields([{ field: 'follow', value: followRaw, allowed: '1 or true (stream new lines as NDJSON), 0 or false' }]);
    const follow = followRaw === '1' || followRaw === 'true';
    if ((await this.store.getApp(name)) === null) throw cmdbErrors.appNotFound(name);
    const page = await this.store.readLogs(name, q);
    if (!follow) return sendJson(res, 200, { app: name, last: page.last, lines: page.lines });
    if (this.followers >= MAX_FOLLOWERS) {
      throw new FcError('FC_ERR_TOO_MANY_FOLLOWERS', `this CoreAPI already streams ${MAX_FOLLOWERS} log follows; try again later, or read without follow`, { max: MAX_FOLLOWERS }, { retryAfter: 5 });
    }
    this.followers += 1;
    try {
      await this.stream(name, q, page.lines, page.last, req, res);
    } finally {
      this.followers -= 1;
    }
  }

  private async stream(name: string, q: LogQuery, first: LogLine[], last: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    // Sent now, not with the first line: a quiet app's follower knows at once it is following.
    res.flushHeaders();
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.once('close', onClose);
    req.once('aborted', onClose);
    const stop = AbortSignal.any([gone.signal, this.stopping.signal]);
    const write = (lines: LogLine[]) => {
      if (lines.length > 0) res.write(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    };
    try {
      write(first);
      const began = this.clock.now();
      let cursor = last;
      let quietSince = began;
      let polls = 0;
      while (!stop.aborted && this.clock.now() - began < FOLLOW_MAX_MS) {
        await Promise.race([this.clock.sleep(FOLLOW_POLL_MS), new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }))]);
        if (stop.aborted) break;
        polls += 1;
        // Every few polls: an app deleted meanwhile ends the follow.
        if (polls % 10 === 0 && (await this.store.getApp(name).catch(() => undefined)) === null) break;
        let page;
        try {
          // Only the lines after the cursor, at most what is kept (more came than that: the oldest are gone).
          const next: LogQuery = { after: cursor, limit: q.scan, scan: q.scan };
          if (q.container !== undefined) next.container = q.container;
          page = await this.store.readLogs(name, next);
        } catch {
          continue; // The CMDB away for a moment: the next poll tries again.
        }
        const lines = page.lines;
        write(lines);
        if (lines.length > 0) quietSince = this.clock.now();
        else if (this.clock.now() - quietSince >= KEEPALIVE_MS) {
          res.write('\n');
          quietSince = this.clock.now();
        }
        cursor = Math.max(cursor, page.last);
      }
    } finally {
      res.off('close', onClose);
      res.end();
    }
  }

  /** Ends every follow (the CoreAPI stops). */
  close(): void {
    this.stopping.abort();
  }
}
