// The memory a process may spend on bodies it holds for clients slower than their other side:
// request bodies read whole at the proxy (FC_BUFFER_TOTAL, proxy/body-buffer.ts), answers held for
// slow readers (FC_BUFFER_ANSWER_TOTAL, answer-buffer.ts). Past it, bodies stream with
// backpressure instead: slower for that client, never more memory.

export class BufferBudget {
  private used = 0;
  constructor(readonly limit: number) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  get inUse(): number {
    return this.used;
  }
}
