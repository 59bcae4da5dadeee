// SIGTERM to a proxy that keep-alive clients are hammering (issue 8): it stops accepting, answers
// what is in flight and whatever still arrives on open connections with `Connection: close`, and
// exits within FC_DRAIN_TIMEOUT, cutting a request that would take longer. The proxy runs as its
// own process (the built CLI, `fastcontainer proxy`) on the real Redis, in front of a stand-in
// dispatcher in the test process.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/cmdb/index.js';
import { listen, type Listening } from '../../src/shared/http.js';
import { silentLogger } from '../../src/shared/logger.js';
import { redisUrl, uniqueName } from '../helpers/env.js';
import { freePort } from '../helpers/net.js';
import { dropPrefix } from '../helpers/redis.js';
import { appSpec } from '../helpers/specs.js';
import { eventually } from '../helpers/wait.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/fastcontainer.js');
const prefix = uniqueName('fctest');
const DRAIN_MS = 2_000;

let store: Store;
let dispatcher: Listening;
let child: ChildProcess | undefined;
let output = '';
let proxyUrl: string;

beforeAll(async () => {
  dispatcher = await listen(
    (req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? '0');
      req.resume();
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      };
      if (ms > 0) setTimeout(answer, ms);
      else answer();
    },
    0,
    '127.0.0.1',
  );
  store = await openStore({ redisUrl, redisPrefix: prefix, logger: silentLogger });
  await store.heartbeatHost({ id: uniqueName('fctest-host'), dispatcherUrl: dispatcher.url, capacity: 10, startedAt: Date.now(), heartbeatAt: Date.now() });
  await store.createApp(appSpec({ name: 'drain', hostnames: ['drain.test'] }), Date.now());
  const port = await freePort();
  proxyUrl = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [bin, 'proxy'], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      FC_REDIS_PREFIX: prefix,
      FC_LISTEN_HOST: '127.0.0.1',
      FC_PROXY_PORT: String(port),
      FC_DRAIN_TIMEOUT: `${DRAIN_MS}ms`,
      FC_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await eventually(async () => {
    const res = await request(`${proxyUrl}/`, { headers: { host: 'drain.test' } });
    await res.body.text();
    return res.statusCode === 200;
  }, { timeout: 20_000, what: 'the proxy process to serve' }).catch((err: Error) => {
    throw new Error(`${err.message}; its output:\n${output}`);
  });
});

afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await dispatcher?.destroy();
  await store?.close();
  await dropPrefix(prefix);
});

describe('SIGTERM with keep-alive clients hammering', () => {
  it('answers with Connection: close, stops accepting, and exits within the drain timeout', async () => {
    const proc = child as ChildProcess;
    const exited = new Promise<number>((resolve) => proc.once('exit', () => resolve(Date.now())));
    const pool = new Pool(proxyUrl, { connections: 4, pipelining: 1 });
    let stopAt = Number.POSITIVE_INFINITY;
    let signalledAt = Number.POSITIVE_INFINITY;
    const after: { connection: string | undefined }[] = [];
    let before = 0;
    let refused = 0;
    const hammer = async () => {
      while (Date.now() < stopAt) {
        const sentAt = Date.now();
        try {
          const res = await pool.request({ path: '/', method: 'GET', headers: { host: 'drain.test' } });
          await res.body.text();
          if (sentAt > signalledAt) after.push({ connection: res.headers.connection as string | undefined });
          else before += 1;
        } catch {
          if (sentAt > signalledAt) refused += 1;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    };
    // One request that would outlast the drain timeout: it is cut, it does not hold the exit.
    const long = pool.request({ path: '/?ms=60000', method: 'GET', headers: { host: 'drain.test' } }).then(
      (res) => res.body.text().then(() => 'answered', () => 'cut'),
      () => 'cut',
    );
    const workers = Array.from({ length: 4 }, hammer);
    await eventually(() => before > 200, { what: 'the clients to be under way' });
    signalledAt = Date.now();
    proc.kill('SIGTERM');
    // The clients keep going; the old proxy went on serving them for as long as they did.
    const exitAt = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(Number.NaN), DRAIN_MS + 10_000))]);
    stopAt = Date.now();
    await Promise.all(workers);
    await pool.destroy();
    expect(exitAt, `the proxy did not exit while clients hammered it; output:\n${output.slice(-3000)}`).not.toBeNaN();
    expect(proc.exitCode).toBe(0);
    expect(await long).toBe('cut');
    // Each open connection got at most about one answer more, each with Connection: close.
    expect(after.length).toBeLessThan(40);
    expect(after.filter((a) => a.connection !== 'close')).toEqual([]);
    expect(refused).toBeGreaterThan(0);
    expect(output).toContain('stopping: draining connections');
  });
});
