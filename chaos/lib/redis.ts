// A Redis of the chaos run's own: redis-server on a free loopback port, started and ended by pid,
// with append-only persistence in a directory of its own, so a scenario can stop it (SIGTERM: it
// comes back with its data), stall it (SIGSTOP/SIGCONT), or lose it (SIGKILL and a restart on an
// empty directory) without touching the machine's shared Redis.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../test/helpers/net.js';
import { pollUntil, startProc, type Proc } from './proc.js';

export interface OwnRedis {
  port: number;
  url: string;
  proc(): Proc;
  /** SIGTERM: Redis writes its append-only file and exits. */
  stop(): Promise<void>;
  /** Starts it again on the same port; `empty` on a fresh directory (all data lost). */
  start(o?: { empty?: boolean }): Promise<void>;
  pause(): void;
  resume(): void;
  kill9(): Promise<void>;
  /** Ends it and removes its directory. */
  destroy(): Promise<void>;
}

export async function ping(url: string, timeoutMs = 500): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, commandTimeout: timeoutMs });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export function redisServerArgs(port: number, dir: string, extra: string[] = []): string[] {
  return ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--protected-mode', 'no', ...extra];
}

export async function startOwnRedis(name: string, o: { port?: number; extraArgs?: string[] } = {}): Promise<OwnRedis> {
  const port = o.port ?? (await freePort());
  const dirs: string[] = [];
  let proc: Proc | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const start = async (so: { empty?: boolean } = {}) => {
    if (dirs.length === 0 || so.empty === true) dirs.push(mkdtempSync(path.join(os.tmpdir(), `fcchaos-redis-`)));
    proc = startProc(`${name}:redis`, 'redis-server', redisServerArgs(port, dirs[dirs.length - 1] as string, o.extraArgs), { PATH: process.env.PATH });
    const up = await pollUntil(10_000, async () => ((await ping(url)) ? true : undefined), 50);
    if (up === undefined) throw new Error(`redis-server on port ${port} did not answer:\n${proc.output()}`);
  };
  await start();
  return {
    port,
    url,
    proc: () => proc as Proc,
    stop: async () => proc?.stop(),
    start,
    pause: () => proc?.signal('SIGSTOP'),
    resume: () => proc?.signal('SIGCONT'),
    async kill9() {
      proc?.signal('SIGKILL');
      await proc?.exited();
    },
    async destroy() {
      await proc?.stop(2000);
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    },
  };
}
