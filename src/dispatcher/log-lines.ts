// Output bytes into lines, bounded: a line longer than the limit is cut (its rest skipped up to
// the next newline), so a container that prints megabytes without a newline costs the dispatcher
// at most the limit in memory. Pure: bytes in, lines out; the runtimes feed it what the engine
// streams.

/** Marks a line that was cut at the byte limit. */
export const CUT_MARK = '…';

export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  /** Past the limit: the rest of this line is skipped. */
  private skipping = false;

  constructor(private readonly maxBytes: number, private readonly onLine: (line: Buffer, cut: boolean) => void) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.skipping) {
        const room = this.maxBytes - this.size;
        const take = Math.min(room, end - start);
        if (take > 0) {
          this.parts.push(chunk.subarray(start, start + take));
          this.size += take;
        }
        if (end - start > room) {
          this.emit(true);
          this.skipping = true;
        }
      }
      if (nl === -1) break;
      if (this.skipping) this.skipping = false;
      else this.emit(false);
      start = nl + 1;
    }
  }

  /** The end of the stream: a last line without its newline. */
  end(): void {
    if (!this.skipping && this.size > 0) this.emit(false);
    this.skipping = false;
  }

  private emit(cut: boolean): void {
    // Copied out of the engine's chunks, so that a kept line does not pin a whole chunk.
    const line = Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    this.onLine(line, cut);
  }
}

/**
 * A line's text: UTF-8 (invalid bytes become U+FFFD), a cut line marked, a trailing CR dropped.
 * Control characters stay: the CMDB stores JSON, and the CLI escapes them when it prints.
 */
export function lineText(line: Buffer, cut: boolean): string {
  let text = line.toString('utf8');
  // A cut in the middle of a multi-byte character leaves a replacement character: drop it.
  if (cut && text.endsWith('\uFFFD')) text = text.slice(0, -1);
  else if (text.endsWith('\r')) text = text.slice(0, -1);
  return cut ? text + CUT_MARK : text;
}

/**
 * Docker's `timestamps` prefix, "2026-11-25T21:50:00.123456789Z ", split off: the time in ms
 * and the rest. Without a parsable prefix, `fallback` and the whole line.
 */
export function splitTimestamp(line: Buffer, fallback: number): { at: number; rest: Buffer } {
  const space = line.indexOf(0x20);
  if (space < 20 || space > 40) return { at: fallback, rest: line };
  const at = Date.parse(line.subarray(0, space).toString('latin1'));
  return Number.isFinite(at) ? { at, rest: line.subarray(space + 1) } : { at: fallback, rest: line };
}
