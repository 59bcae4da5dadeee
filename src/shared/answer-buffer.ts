// Answers for slow readers (as nginx `proxy_buffering` and `send_timeout`). Without it, a client
// that reads its answer slowly holds the upstream connection it came on (one of the few to the
// app's container) until it has read it all: a hundred slow downloads take a site offline. With it,
// an answer the client's socket cannot take at once is read on from the upstream into memory, up to
// FC_BUFFER_ANSWER bytes per answer within FC_BUFFER_ANSWER_TOTAL per process, so the upstream
// connection is free as soon as the answer is in; larger answers wait for the client beyond that.
// A client that takes nothing of its answer for FC_SEND_TIMEOUT is cut, held or not.
//
// The held chunks stay here, not in the response: the response is given one more only when it has
// passed on the last ('drain'), so each 'drain' is the client taking something, which is what the
// send timeout watches (a response's own buffer is written out in one piece, its progress unseen).
// Nothing here runs for a client that keeps up: it begins at the first write the client's socket
// could not take at once (forward.ts).

import type { ServerResponse } from 'node:http';
import { BufferBudget } from './buffer-budget.js';
import { options } from './config.js';

export interface AnswerBuffering {
  /** Bytes of one answer held for a slow reader (FC_BUFFER_ANSWER); 0: none, the upstream waits for the client. */
  perAnswer: number;
  /** What every held answer of this process may take together (FC_BUFFER_ANSWER_TOTAL). */
  budget: BufferBudget;
  /** Longest time (ms) a client may take none of an answer that waits for it (FC_SEND_TIMEOUT). */
  sendTimeout: number;
  /** Told of each answer cut because its client stopped reading. */
  onCut?: () => void;
}

/** A process's answer buffering from its settings (FC_BUFFER_ANSWER, FC_BUFFER_ANSWER_TOTAL, FC_SEND_TIMEOUT). */
export function answerBuffering(s: { bufferAnswer?: number; bufferAnswerTotal?: number; sendTimeout?: number }, onCut?: () => void): AnswerBuffering {
  return {
    perAnswer: s.bufferAnswer ?? options.bufferAnswer.default,
    budget: new BufferBudget(s.bufferAnswerTotal ?? options.bufferAnswerTotal.default),
    sendTimeout: s.sendTimeout ?? options.sendTimeout.default,
    ...(onCut === undefined ? {} : { onCut }),
  };
}

/**
 * One answer whose client could not take a write at once. From then on its chunks go through
 * push(); the upstream is paused (push() false) once the held bytes reach what the budget gave.
 */
export class HeldAnswer {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private reserved = 0;
  /** The upstream is paused, waiting for room. */
  private paused = false;
  /** The upstream has ended: end the response after the last held chunk. */
  private ending = false;
  private lastTaken: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly b: AnswerBuffering,
    /** Lets the upstream go on after push() said false. */
    private readonly resumeUpstream: () => void,
  ) {
    this.lastTaken = Date.now();
    res.on('drain', this.drained);
    res.once('close', this.closed);
  }

  /** Whether chunks must come here rather than to the response: some are held, or it has not drained. */
  get active(): boolean {
    return this.bytes > 0 || this.res.writableNeedDrain;
  }

  /**
   * The response, caught up until now, just refused more (its write returned false): a wait for
   * the client begins. Whether the upstream may go on.
   */
  blocked(): boolean {
    this.lastTaken = Date.now();
    // Taken whole: a budget counted in answers, not in chunks.
    if (this.reserved === 0 && this.b.perAnswer > 0 && this.b.budget.take(this.b.perAnswer)) this.reserved = this.b.perAnswer;
    this.arm();
    return this.room();
  }

  /** A chunk while active: held. Whether the upstream may go on. */
  push(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.arm();
    return this.room();
  }

  /** The upstream ended. */
  end(): void {
    if (this.bytes === 0) this.res.end();
    else this.ending = true;
  }

  private room(): boolean {
    if (this.bytes < this.reserved) return true;
    this.paused = true;
    return false;
  }

  /** The response passed on what it had: the client took something. Give it the next held chunks. */
  private readonly drained = (): void => {
    this.lastTaken = Date.now();
    const piece = this.res.writableHighWaterMark;
    while (this.chunks.length > 0) {
      // In pieces of the response's own buffer size: each 'drain' is then the client taking one,
      // which is what the send timeout sees (a slow reader that keeps reading is not cut).
      let chunk = this.chunks[0] as Buffer;
      if (chunk.length > piece) {
        this.chunks[0] = chunk.subarray(piece);
        chunk = chunk.subarray(0, piece);
      } else {
        this.chunks.shift();
      }
      this.bytes -= chunk.length;
      if (!this.res.write(chunk)) break;
    }
    if (this.bytes === 0 && this.ending) {
      this.ending = false;
      this.res.end();
    }
    // Caught up: the reservation goes back until the client falls behind again (a long stream
    // that was slow once does not keep it), before the upstream, resumed, may take it again.
    if (this.bytes === 0 && !this.res.writableNeedDrain) this.unreserve();
    // Nothing held (the response took it all), or room again within the reservation.
    if (this.paused && (this.bytes === 0 || this.bytes < this.reserved)) {
      this.paused = false;
      this.resumeUpstream();
    }
  };

  private readonly closed = (): void => {
    this.res.off('drain', this.drained);
    this.chunks.length = 0;
    this.bytes = 0;
    this.unreserve();
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  };

  private unreserve(): void {
    this.b.budget.give(this.reserved);
    this.reserved = 0;
  }

  /** Something waits for the client: watch that it takes some within the send timeout. */
  private arm(): void {
    if (this.timer !== undefined || this.res.destroyed) return;
    this.timer = setTimeout(this.check, Math.max(0, this.lastTaken + this.b.sendTimeout - Date.now()));
    this.timer.unref();
  }

  private readonly check = (): void => {
    this.timer = undefined;
    const { res } = this;
    if (res.destroyed || res.writableFinished) return;
    // Caught up (the next block arms it again), unless the answer has ended and is not through yet.
    if (!this.active && !this.ending && !res.writableEnded) return;
    if (Date.now() - this.lastTaken < this.b.sendTimeout) {
      this.arm();
      return;
    }
    this.b.onCut?.();
    res.destroy(new Error(`the client took none of its answer for ${this.b.sendTimeout} ms`));
  };
}
