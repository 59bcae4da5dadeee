// Fairness between apps at the proxy: each app may have only so many requests forwarded at once
// (its maxConcurrency, else FC_APP_CONCURRENCY); more wait in the app's own queue, which has a cap
// (FC_APP_QUEUE) and a deadline (FC_APP_QUEUE_TIMEOUT), and past either the request gets 503 with
// Retry-After at once. One app's slow traffic so fills its own queue, never another app's path.
// (Knative's activator throttles per revision the same way, pkg/queue/breaker.go.)

import type { Clock, Timer } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';

export interface GateLimits {
  /** Requests of the app forwarded at once. */
  concurrency: number;
  /** Requests of the app that may wait for a slot. */
  queue: number;
  /** Longest wait in the queue, ms. */
  queueTimeout: number;
}

export type Admission = 'enter' | 'queue' | 'reject';

/** Pure: what a new request of an app does, given what the app has in flight and waiting. */
export function admit(inflight: number, waiting: number, l: GateLimits): Admission {
  if (inflight < l.concurrency && waiting === 0) return 'enter';
  if (waiting < l.queue && l.queueTimeout > 0) return 'queue';
  return 'reject';
}

/** Something that says when the client went away (a ServerResponse). */
export interface Closable {
  once(event: 'close', fn: () => void): unknown;
  off(event: 'close', fn: () => void): unknown;
}

interface Waiter {
  grant: () => void;
  timer: Timer;
  done: boolean;
}

interface AppLine {
  inflight: number;
  waiting: Waiter[];
}

export type GateOutcome = 'queued' | 'rejected' | 'timeout';

export class AppGate {
  private readonly lines = new Map<string, AppLine>();

  constructor(private readonly clock: Clock, private readonly onLimited: (app: string, outcome: GateOutcome) => void = () => undefined) {}

  /**
   * A slot for one request of `app`; call the returned release() once the request is done. Waits
   * in the app's queue when all its slots are taken; rejects with FC_ERR_APP_BUSY (503) when the
   * queue is full or the wait runs out, and with the client's going away while it waits.
   */
  enter(app: string, l: GateLimits, client: Closable): Promise<() => void> | (() => void) {
    let line = this.lines.get(app);
    if (line === undefined) {
      line = { inflight: 0, waiting: [] };
      this.lines.set(app, line);
    }
    const decision = admit(line.inflight, line.waiting.length, l);
    if (decision === 'enter') {
      line.inflight += 1;
      return this.releaser(app, line);
    }
    if (decision === 'reject') {
      this.onLimited(app, 'rejected');
      this.forget(app, line);
      throw busy(app, l, 'its queue is full');
    }
    this.onLimited(app, 'queued');
    const queued = line;
    return new Promise<() => void>((resolve, reject) => {
      const onGone = () => {
        if (waiter.done) return;
        waiter.done = true;
        waiter.timer.cancel();
        this.dequeue(queued, waiter);
        this.forget(app, queued);
        reject(new Error('client went away'));
      };
      const waiter: Waiter = {
        done: false,
        grant: () => {
          client.off('close', onGone);
          resolve(this.releaser(app, queued));
        },
        timer: this.clock.setTimeout(() => {
          if (waiter.done) return;
          waiter.done = true;
          client.off('close', onGone);
          this.dequeue(queued, waiter);
          this.forget(app, queued);
          this.onLimited(app, 'timeout');
          reject(busy(app, l, `no slot came free within ${l.queueTimeout} ms`));
        }, l.queueTimeout),
      };
      client.once('close', onGone);
      queued.waiting.push(waiter);
    });
  }

  /** Requests of `app` forwarded now and waiting now (for metrics and tests). */
  load(app: string): { inflight: number; waiting: number } {
    const line = this.lines.get(app);
    return { inflight: line?.inflight ?? 0, waiting: line?.waiting.length ?? 0 };
  }

  private releaser(app: string, line: AppLine): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes to the first live waiter as it is; only with none waiting does it free up.
      for (let next = line.waiting.shift(); next !== undefined; next = line.waiting.shift()) {
        if (next.done) continue;
        next.done = true;
        next.timer.cancel();
        next.grant();
        return;
      }
      line.inflight -= 1;
      this.forget(app, line);
    };
  }

  private dequeue(line: AppLine, waiter: Waiter): void {
    const i = line.waiting.indexOf(waiter);
    if (i >= 0) line.waiting.splice(i, 1);
  }

  /** An app with nothing in flight or waiting costs no memory. */
  private forget(app: string, line: AppLine): void {
    if (line.inflight === 0 && line.waiting.length === 0 && this.lines.get(app) === line) this.lines.delete(app);
  }
}

function busy(app: string, l: GateLimits, why: string): FcError {
  return new FcError('FC_ERR_APP_BUSY', `app "${app}" has ${l.concurrency} requests in flight at this proxy and ${why}`, { app }, { retryAfter: 1 });
}
