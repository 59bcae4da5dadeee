// Keeps each app's recent output past its containers: the dispatcher follows the stdout and
// stderr of every container it runs (ContainerRuntime.followLogs) and writes the lines to the
// CMDB in batches, one call per app about every second (Store.appendLogs keeps the newest
// FC_LOG_LINES per app). Why the CMDB and not files on the host: a container's lines must outlive
// the container and be readable from the CoreAPI wherever the app ran (hosts come and go, an app
// moves between them); the CMDB is already where every role reads from, and a capped list per
// app bounds what it holds.
//
// A tenant flooding its output must hurt neither this dispatcher nor the CMDB: each container
// has a token bucket of FC_LOG_RATE lines a second (bursts of ten seconds' worth); lines beyond
// it are dropped and counted (fc_dispatcher_log_lines_dropped_total, and one "dropped" line in
// the app's log per batch). A container that keeps flooding (ten times its rate dropped within a
// second) is not read at all for a second: the follow is cut and taken up again from then, so the
// engine's log file, not this process, absorbs the flood. Lines waiting for the CMDB are bounded
// too (PENDING_MAX lines, PENDING_CHARS_MAX of text); past it they are dropped and counted.

import { Counter } from 'prom-client';
import type { NewLogLine } from '../cmdb/logs.js';
import type { Timer } from '../shared/clock.js';
import { toFcError } from '../shared/errors.js';
import type { LogFollow, RuntimeLogLine } from './container-runtime.js';
import type { DispatcherContext } from './context.js';
import type { LocalContainer } from './local-container.js';

/** Lines waiting for the CMDB, all apps together, and their text's length (UTF-16 units, ≈ bytes). */
const PENDING_MAX = 20_000;
const PENDING_CHARS_MAX = 8 * 1024 * 1024;
/** How often the lines go to the CMDB. */
const FLUSH_MS = 1_000;
/** How long a flooding container is not read. */
const PAUSE_MS = 1_000;
/** How long a retired container's follow may take to deliver its last lines. */
const LAST_LINES_MS = 1_000;
/** A follow that ends while its container is still here (the engine restarted, a stream broke) is taken up again after this, so many times in a row. */
const REOPEN_MS = 1_000;
const REOPEN_TRIES = 3;

/** Lines allowed per second with bursts: a token bucket. Pure but for its own state. */
export class LineBudget {
  private tokens: number;
  private at: number;

  constructor(private readonly rate: number, private readonly burst: number, now: number) {
    this.tokens = burst;
    this.at = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

interface Followed {
  local: LocalContainer;
  follow: LogFollow | null;
  budget: LineBudget;
  /** Dropped since the last batch (reported as one line), and within the current second. */
  dropped: number;
  droppedThisSecond: number;
  second: number;
  resume: Timer | null;
  stopped: boolean;
  /** The time of the last line seen (ms), where a follow that broke is taken up again. */
  lastAt: number | null;
  /** Follows that ended in a row without a line: past REOPEN_TRIES the container is left alone. */
  emptyEnds: number;
}

export class LogShipper {
  private readonly followed = new Map<string, Followed>();
  private pending = new Map<string, NewLogLine[]>();
  private pendingCount = 0;
  private pendingChars = 0;
  private timer: Timer | null = null;
  private flushing: Promise<void> | null = null;
  readonly dropped: Counter<'app' | 'reason'>;
  readonly shipped: Counter<'app'>;

  constructor(private readonly ctx: DispatcherContext) {
    const registers = [ctx.deps.registry];
    this.dropped = new Counter({ name: 'fc_dispatcher_log_lines_dropped_total', help: 'Output lines of containers not kept, by app and reason (rate: over FC_LOG_RATE; paused: not read while flooding; buffer: too many waiting for the CMDB)', labelNames: ['app', 'reason'], registers });
    this.shipped = new Counter({ name: 'fc_dispatcher_log_lines_total', help: 'Output lines of containers written to the CMDB, by app', labelNames: ['app'], registers });
  }

  private get enabled(): boolean {
    return (this.ctx.s.logLines ?? 1000) > 0;
  }

  start(): void {
    if (!this.enabled || this.timer !== null) return;
    this.timer = this.ctx.deps.clock.setInterval(() => void this.flush(), FLUSH_MS);
  }

  /**
   * Follows a container's output from sinceMs (ms since epoch): null for a container this process
   * started (from its start, boot output included); for an adopted one, from when the earlier
   * process last wrote its usage (its stop, for a clean one; a crash repeats up to an interval of
   * lines), or from now when that is not known.
   */
  follow(local: LocalContainer, sinceMs: number | null): void {
    if (!this.enabled || local.runtimeId === null || this.followed.has(local.id)) return;
    const rate = this.ctx.s.logRate ?? 100;
    const now = this.ctx.deps.clock.now();
    const f: Followed = { local, follow: null, budget: new LineBudget(rate, rate * 10, now), dropped: 0, droppedThisSecond: 0, second: 0, resume: null, stopped: false, lastAt: null, emptyEnds: 0 };
    this.followed.set(local.id, f);
    this.open(f, sinceMs);
  }

  private open(f: Followed, sinceMs: number | null): void {
    const runtimeId = f.local.runtimeId;
    if (f.stopped || runtimeId === null) return;
    const follow = this.ctx.deps.runtime.followLogs(runtimeId, { sinceMs, maxLineBytes: this.ctx.s.logLineBytes ?? 4096 }, (line) => this.onLine(f, line));
    f.follow = follow;
    const linesBefore = f.lastAt;
    void follow.ended.then(() => {
      // Stopped, paused or replaced meanwhile: not this follow's business any more.
      if (f.stopped || f.follow !== follow || this.followed.get(f.local.id) !== f) return;
      f.follow = null;
      f.emptyEnds = f.lastAt === linesBefore ? f.emptyEnds + 1 : 0;
      if (f.emptyEnds > REOPEN_TRIES) return;
      f.resume = this.ctx.deps.clock.setTimeout(() => {
        f.resume = null;
        this.open(f, f.lastAt === null ? sinceMs : f.lastAt + 1);
      }, REOPEN_MS);
    });
  }

  private onLine(f: Followed, line: RuntimeLogLine): void {
    const now = this.ctx.deps.clock.now();
    f.lastAt = line.at;
    const app = f.local.app;
    if (!f.budget.take(now)) {
      f.dropped += 1;
      this.dropped.inc({ app, reason: 'rate' });
      const second = Math.floor(now / 1000);
      if (second !== f.second) {
        f.second = second;
        f.droppedThisSecond = 0;
      }
      f.droppedThisSecond += 1;
      if (f.droppedThisSecond > 10 * (this.ctx.s.logRate ?? 100) && f.resume === null && !f.stopped) this.pause(f);
      return;
    }
    this.queue(app, { at: line.at, container: f.local.id, host: this.ctx.s.hostId, stream: line.stream, text: line.text });
  }

  /** Stops reading a flooding container for a while; what it prints meanwhile is skipped. */
  private pause(f: Followed): void {
    f.follow?.stop();
    f.follow = null;
    const from = Date.now() + PAUSE_MS;
    f.resume = this.ctx.deps.clock.setTimeout(() => {
      f.resume = null;
      this.queue(f.local.app, { at: Date.now(), container: f.local.id, host: this.ctx.s.hostId, stream: 'system', text: `[fastcontainer] output not read for ${PAUSE_MS / 1000} s: over ${this.ctx.s.logRate ?? 100} lines/s` });
      this.dropped.inc({ app: f.local.app, reason: 'paused' });
      this.open(f, from);
    }, PAUSE_MS);
  }

  private queue(app: string, line: NewLogLine): void {
    if (this.pendingCount >= PENDING_MAX || this.pendingChars + line.text.length > PENDING_CHARS_MAX) {
      this.dropped.inc({ app, reason: 'buffer' });
      return;
    }
    let list = this.pending.get(app);
    if (list === undefined) this.pending.set(app, (list = []));
    list.push(line);
    this.pendingCount += 1;
    this.pendingChars += line.text.length;
  }

  /**
   * A container is leaving: once stopped (lastLines), its last lines arrive as its follow ends
   * (within LAST_LINES_MS); then it is forgotten.
   */
  async stop(local: LocalContainer, lastLines: boolean): Promise<void> {
    const f = this.followed.get(local.id);
    if (f === undefined) return;
    this.followed.delete(local.id);
    if (f.resume !== null) f.resume.cancel();
    const follow = f.follow;
    if (follow !== null) {
      if (lastLines) {
        // Real time, not the injected clock: this waits on the engine, which a test clock does not drive.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([follow.ended, new Promise<void>((resolve) => { timer = setTimeout(resolve, LAST_LINES_MS); })]);
        clearTimeout(timer);
      }
      follow.stop();
    }
    f.stopped = true;
    this.noteDropped(f);
  }

  private noteDropped(f: Followed): void {
    if (f.dropped === 0) return;
    this.queue(f.local.app, { at: this.ctx.deps.clock.now(), container: f.local.id, host: this.ctx.s.hostId, stream: 'system', text: `[fastcontainer] ${f.dropped} lines dropped: over ${this.ctx.s.logRate ?? 100} lines/s` });
    f.dropped = 0;
  }

  /** Writes the waiting lines, one call per app. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async write(): Promise<void> {
    for (const f of this.followed.values()) this.noteDropped(f);
    if (this.pendingCount === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.pendingCount = 0;
    this.pendingChars = 0;
    const keep = this.ctx.s.logLines ?? 1000;
    await Promise.all([...batch].map(async ([app, lines]) => {
      try {
        await this.ctx.deps.store.appendLogs(app, lines, keep);
        this.shipped.inc({ app }, lines.length);
      } catch (err) {
        // Back in line for the next batch, ahead of what came meanwhile, within the bound.
        const newer = this.pending.get(app) ?? [];
        // The newest that fit, within both bounds.
        let room = Math.max(0, PENDING_MAX - this.pendingCount);
        let chars = Math.max(0, PENDING_CHARS_MAX - this.pendingChars);
        let from = lines.length;
        while (from > 0 && room > 0 && (lines[from - 1] as NewLogLine).text.length <= chars) {
          from -= 1;
          room -= 1;
          chars -= (lines[from] as NewLogLine).text.length;
        }
        const back = lines.slice(from);
        if (from > 0) this.dropped.inc({ app, reason: 'buffer' }, from);
        this.pending.set(app, [...back, ...newer]);
        this.pendingCount += back.length;
        for (const l of back) this.pendingChars += l.text.length;
        this.ctx.log.warn({ err: toFcError(err).message, app, lines: lines.length }, 'could not write log lines to the CMDB; trying again');
      }
    }));
  }

  /** Stops every follow (the containers go on: the next process follows them) and writes what waits. */
  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    for (const f of this.followed.values()) {
      f.stopped = true;
      f.resume?.cancel();
      f.follow?.stop();
    }
    this.followed.clear();
    await this.flush();
  }
}
