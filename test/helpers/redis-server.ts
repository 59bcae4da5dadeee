// A redis-server of a test's own, on a free loopback port with its own directory, started and
// ended by pid: the tests that stop, stall, restart or fail over Redis do it to this one, never to
// the shared Redis the other tests use.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './net.js';
import { eventually } from './wait.js';

export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  readonly pid: number | undefined;
  /** SIGSTOP: the process holds its connections and answers nothing (a stall). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port; `empty` wipes its directory first (data lost). */
  restart(options?: { empty?: boolean }): Promise<void>;
  /** Kills it and removes its directory. */
  cleanup(): Promise<void>;
}

export interface OwnRedisOptions {
  /** Append-only persistence with fsync at every write, so a restart keeps what was acknowledged. */
  persistent?: boolean;
  /** More redis-server arguments, e.g. ['--replicaof', '127.0.0.1', '6400']. */
  args?: string[];
  port?: number;
  /** The program: redis-server, or redis-sentinel with a config file as the first argument. */
  program?: string;
  /** Arguments before the options (a config file for redis-sentinel). */
  leading?: (dir: string, port: number) => string[];
  /** Only port, bind, dir and daemonize (a sentinel has no persistence of data). */
  plain?: boolean;
  /**
   * The password the server requires (its requirepass, given by the caller in `args` or the
   * config file): the readiness check authenticates with it, and `url` carries it.
   */
  password?: string;
}

async function answers(port: number, password: string | undefined): Promise<boolean> {
  const r = new Redis({
    host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500, commandTimeout: 500,
    ...(password === undefined ? {} : { password }),
  });
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

export async function startOwnRedis(options: OwnRedisOptions = {}): Promise<OwnRedis> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fctest-redis-'));
  let child: ChildProcess | undefined;
  let output = '';
  const launch = async () => {
    const persistence = options.persistent === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    child = spawn(options.program ?? 'redis-server', [
      ...(options.leading?.(dir, port) ?? []),
      '--port', String(port), '--bind', '127.0.0.1', ...(options.plain === true ? [] : ['--save', '', ...persistence]), '--dir', dir, '--daemonize', 'no',
      ...(options.args ?? []),
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    await eventually(() => answers(port, options.password), { timeout: 10_000, interval: 50, what: `redis on port ${port} (output: ${output})` });
  };
  const kill = async () => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGCONT');
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: options.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid;
    },
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    kill,
    async restart(o = {}) {
      await kill();
      if (o.empty === true) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
      }
      await launch();
    },
    async cleanup() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
