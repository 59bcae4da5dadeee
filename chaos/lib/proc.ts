// The processes a chaos run starts: each is kept by pid in one registry so that a scenario can
// kill -9, SIGSTOP or restart exactly its own, and the run ends exactly those it started (never
// by name) even when a scenario throws.

import { spawn, type ChildProcess } from 'node:child_process';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Output so far (the last 64 KB), for the report when something does not start. */
  output(): string;
  alive(): boolean;
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the process has exited (at once if it has). */
  exited(): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. A stopped process is woken first. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Proc>();

export function startProc(name: string, command: string, args: string[], env: Record<string, string | undefined>): Proc {
  const child = spawn(command, args, { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${command}`);
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 65_536) out = out.slice(-65_536);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const p: Proc = {
    name,
    child,
    pid: child.pid,
    output: () => out,
    alive: () => child.exitCode === null && child.signalCode === null,
    signal(sig) {
      if (p.alive()) child.kill(sig);
    },
    exited: () => gone,
    async stop(graceMs = 5000) {
      if (!p.alive()) return;
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    },
  };
  running.add(p);
  void gone.then(() => running.delete(p));
  return p;
}

/** Ends every process this run started and that still runs (each by its pid). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop(2000)));
}

/** Synchronous last resort for process exit: SIGKILL to each own pid still running. */
export function killAllNow(): void {
  for (const p of running) {
    try {
      p.child.kill('SIGCONT');
      p.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it returns a value other than undefined, or `ms` pass (then undefined). */
export async function pollUntil<T>(ms: number, probe: () => Promise<T | undefined>, everyMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    if (Date.now() >= deadline) return undefined;
    await sleep(everyMs);
  }
}
