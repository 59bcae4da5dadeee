// Live updates for the dashboard: GET /v1/events/stream, Server-Sent Events. Each stream starts
// with a snapshot of the CMDB (apps without their secrets, container entries, hosts, stats and
// the rate/latency history), then carries every change the CMDB publishes (store.subscribe(), one
// subscription per CoreAPI process shared by all streams) and, every SAMPLE_MS, the containers'
// stats (which the CMDB does not publish). Bounded: at most FC_API_STREAMS streams, a comment
// every HEARTBEAT_MS so idle connections stay open through proxies, and a reader that does not
// keep up is cut (its browser reconnects and starts from a new snapshot).

import type { ServerResponse } from 'node:http';
import type { Change, Store, Subscription } from '../../cmdb/types.js';
import type { Clock, Timer } from '../../shared/clock.js';
import { FcError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { publicApp } from '../app-spec.js';

/** A comment line this often keeps an idle stream open through proxies and load balancers. */
export const HEARTBEAT_MS = 15_000;
/** Bytes a stream may have waiting unsent before it is cut as a reader that does not keep up. */
const MAX_UNSENT_BYTES = 1 << 20;
/** Changes held for a stream while its snapshot is read; a burst past it cuts the stream. */
const MAX_PENDING = 10_000;
/** How soon a browser reconnects after its stream ended. */
const RETRY_MS = 2_000;

/** A change as streams carry it: apps without their secrets. */
export type StreamChange =
  | { kind: Change['kind']; op: 'put'; rev: number; id: string; value: unknown }
  | { kind: Change['kind']; op: 'delete'; rev: number; id: string };

export function streamChange(c: Change): StreamChange {
  const id = c.kind === 'app' ? c.value.name : c.value.id;
  if (c.op === 'delete') return { kind: c.kind, op: 'delete', rev: c.rev, id };
  return { kind: c.kind, op: 'put', rev: c.rev, id, value: c.kind === 'app' ? publicApp(c.value) : c.value };
}

interface Client {
  res: ServerResponse;
  /** Changes that came while the snapshot was read; null once the snapshot is sent. */
  pending: StreamChange[] | null;
}

export interface StreamHubDeps {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** FC_API_STREAMS. */
  maxStreams: number;
}

export class StreamHub {
  private readonly clients = new Set<Client>();
  private subscription: Promise<Subscription> | undefined;
  private heartbeat: Timer | undefined;
  private closed = false;

  constructor(private readonly deps: StreamHubDeps) {}

  get size(): number {
    return this.clients.size;
  }

  /**
   * Opens a stream: refuses past the limit, subscribes (once per process), answers 200, sends the
   * snapshot `snapshot()` reads, then the changes that came meanwhile and every one after.
   */
  async open(res: ServerResponse, snapshot: () => Promise<unknown>): Promise<void> {
    if (this.closed) throw new FcError('FC_ERR_TOO_MANY_STREAMS', 'the CoreAPI is shutting down', {}, { retryAfter: 2 });
    if (this.clients.size >= this.deps.maxStreams) {
      throw new FcError('FC_ERR_TOO_MANY_STREAMS', `this CoreAPI already serves ${this.clients.size} live-update streams (FC_API_STREAMS=${this.deps.maxStreams}); close one or try again later`, { limit: this.deps.maxStreams }, { retryAfter: 5 });
    }
    const client: Client = { res, pending: [] };
    // Counted before the first await, so that concurrent opens cannot pass the limit together.
    this.clients.add(client);
    const drop = () => this.clients.delete(client);
    // The response's close: the client went away or the stream was ended (a request's own 'close'
    // only says its body was read).
    res.once('close', drop);
    try {
      await this.subscribe();
      const snap = await snapshot();
      if (!this.clients.has(client)) return;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      res.flushHeaders();
      res.write(`retry: ${RETRY_MS}\n\n`);
      this.send(client, 'snapshot', snap);
      const pending = client.pending ?? [];
      client.pending = null;
      for (const c of pending) this.send(client, 'change', c);
      this.heartbeat ??= this.deps.clock.setInterval(() => this.beat(), HEARTBEAT_MS);
    } catch (err) {
      drop();
      throw err;
    }
  }

  /** Sends an event to every stream past its snapshot. */
  broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const text = frame(event, data);
    for (const c of this.clients) if (c.pending === null) this.write(c, text);
  }

  /** Ends every stream (their browsers reconnect elsewhere or later) and the CMDB subscription. */
  async close(): Promise<void> {
    this.closed = true;
    this.heartbeat?.cancel();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
    const sub = this.subscription;
    this.subscription = undefined;
    if (sub !== undefined) await sub.then((s) => s.unsubscribe(), () => undefined).catch(() => undefined);
  }

  private subscribe(): Promise<Subscription> {
    if (this.subscription === undefined) {
      const p = this.deps.store.subscribe({
        onChange: (c) => this.onChange(streamChange(c)),
        // Changes may have been missed: each stream ends with a word of why, and its browser
        // reconnects to a new snapshot.
        onResync: () => {
          for (const c of this.clients) {
            if (c.pending === null) this.write(c, frame('resync', {}));
            c.res.end();
          }
          this.clients.clear();
        },
      });
      this.subscription = p;
      // A failed subscription is tried again by the next stream.
      p.catch(() => {
        if (this.subscription === p) this.subscription = undefined;
      });
    }
    return this.subscription;
  }

  private onChange(change: StreamChange): void {
    for (const c of this.clients) {
      if (c.pending === null) {
        this.send(c, 'change', change);
      } else if (c.pending.length < MAX_PENDING) {
        c.pending.push(change);
      } else {
        this.cut(c, 'too many changes while its snapshot was read');
      }
    }
  }

  private beat(): void {
    for (const c of this.clients) if (c.pending === null) this.write(c, ': heartbeat\n\n');
  }

  private send(c: Client, event: string, data: unknown): void {
    this.write(c, frame(event, data));
  }

  private write(c: Client, text: string): void {
    if (c.res.destroyed || c.res.writableEnded) return;
    if (c.res.writableLength > MAX_UNSENT_BYTES) return this.cut(c, `more than ${MAX_UNSENT_BYTES} bytes unsent`);
    c.res.write(text);
  }

  private cut(c: Client, why: string): void {
    this.deps.logger.info({ why }, 'live-update stream cut: its reader does not keep up; the browser reconnects');
    this.clients.delete(c);
    c.res.destroy();
  }
}

/** One SSE event; JSON has no raw newlines, so one data line carries it. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
