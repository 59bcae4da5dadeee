// Requests held while their container starts: a bounded queue with a deadline. Past the cap a
// request fails at once; past the deadline it fails with 503 and Retry-After, so a slow or broken
// start never piles up unbounded work.

import type { Clock } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';

export class HeldRequests {
  private held = 0;

  constructor(
    private readonly what: string,
    private readonly limit: number,
    private readonly timeoutMs: number,
    private readonly clock: Clock,
  ) {}

  get size(): number {
    return this.held;
  }

  /** Waits for `ready`, within the cap and the deadline; the signal aborts the wait (client gone). */
  async hold<T>(ready: Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.held >= this.limit) {
      throw new FcError('FC_ERR_QUEUE_FULL', `${this.limit} requests are already waiting for ${this.what} to start`, { limit: this.limit }, { retryAfter: 2 });
    }
    this.held += 1;
    let timer: { cancel(): void } | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        ready,
        new Promise<never>((_, reject) => {
          timer = this.clock.setTimeout(
            () => reject(new FcError('FC_ERR_QUEUE_TIMEOUT', `${this.what} did not become ready within ${this.timeoutMs} ms`, { timeoutMs: this.timeoutMs }, { retryAfter: 5 })),
            this.timeoutMs,
          );
          if (signal !== undefined) {
            onAbort = () => reject(signal.reason);
            if (signal.aborted) onAbort();
            else signal.addEventListener('abort', onAbort, { once: true });
          }
        }),
      ]);
    } finally {
      this.held -= 1;
      timer?.cancel();
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    }
  }
}
