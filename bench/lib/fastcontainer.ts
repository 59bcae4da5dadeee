// A whole fastcontainer (`fastcontainer up`, the built CLI) in a child process for benchmarks,
// on free loopback ports, with its own host id (the label on its containers) and state dir; and
// a lone proxy (`fastcontainer proxy`) beside it on the same Redis CMDB, for the multi-host path.
// FC_BENCH_BIN points at another build's bin/fastcontainer.js (e.g. a copy of the last commit).

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { request } from 'undici';
import { removeTenantNetwork } from '../../src/dispatcher/runtime/tenant-network.js';
import { freePort } from '../../test/helpers/net.js';
import { stop } from './proc.js';

export { freePort };

const bin = process.env.FC_BENCH_BIN ?? fileURLToPath(new URL('../../../bin/fastcontainer.js', import.meta.url));
const TOKEN = `bench-${randomBytes(12).toString('hex')}`;

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** A CoreAPI answer of 400 or more; `code` is the problem's stable code (FC_ERR_...). */
export class ApiError extends Error {
  constructor(readonly method: string, readonly path: string, readonly status: number, readonly code: string | undefined, readonly body: string) {
    super(`${method} ${path}: ${status} ${body}`);
  }

  /** The path is not in this build's API at all (not: the app is missing). */
  get noSuchRoute(): boolean {
    return this.status === 404 && this.code === 'FC_ERR_NOT_FOUND';
  }
}

export interface Fastcontainer {
  proxyUrl: string;
  apiUrl: string;
  dispatcherUrl: string;
  hostId: string;
  /** Throws ApiError on a status of 400 or more. */
  api(method: Method, p: string, body?: unknown): Promise<any>;
  /** The dispatcher's Prometheus text. */
  dispatcherMetrics(): Promise<string>;
  stop(): Promise<void>;
}

export interface FastcontainerOptions {
  /** More environment for `up`, e.g. { FC_RECONCILE_INTERVAL: '1s' }; wins over the defaults here. */
  env?: Record<string, string>;
}

async function untilHealthy(url: string, child: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await request(url);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${what} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startFastcontainer(o: FastcontainerOptions = {}): Promise<Fastcontainer> {
  const [proxyPort, apiPort, dispatcherPort, adminPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const hostId = `fcbench-${randomBytes(4).toString('hex')}`;
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-'));
  const child: ChildProcess = spawn(process.execPath, [bin, 'up'], {
    env: {
      ...process.env,
      REDIS_URL: '',
      FC_LISTEN_HOST: '127.0.0.1',
      FC_PROXY_PORT: String(proxyPort),
      FC_API_PORT: String(apiPort),
      FC_DISPATCHER_PORT: String(dispatcherPort),
      FC_ADMIN_PORT: String(adminPort),
      FC_HOST_ID: hostId,
      FC_API_TOKEN: TOKEN,
      FC_STATE_DIR: stateDir,
      // The benchmarks keep their sites in temporary directories, shared by their apps.
      FC_VOLUME_ROOTS: os.tmpdir(),
      FC_LOG_LEVEL: 'warn',
      ...o.env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  // The CoreAPI starts last: once it answers, the proxy and the dispatcher do too.
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  await untilHealthy(`${apiUrl}/healthz`, child, 'fastcontainer up');
  return {
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    apiUrl,
    dispatcherUrl: `http://127.0.0.1:${dispatcherPort}`,
    hostId,
    async api(method, p, body) {
      const res = await request(`${apiUrl}${p}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode >= 400) {
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { code?: string }).code;
        } catch {
          // not problem+json
        }
        throw new ApiError(method, p, res.statusCode, code, text);
      }
      return text === '' ? undefined : JSON.parse(text);
    },
    async dispatcherMetrics() {
      // Served by the process's admin listener (the dispatcher's port serves only signed requests).
      const res = await request(`http://127.0.0.1:${adminPort}/metrics`);
      return res.body.text();
    },
    async stop() {
      await stop(child);
      rmSync(stateDir, { recursive: true, force: true });
      // Whatever the stack left behind (it removes its containers on a clean stop).
      const docker = new Docker({ socketPath: '/var/run/docker.sock' });
      for (const c of await docker.listContainers({ all: true, filters: { label: [`fastcontainer.host=${hostId}`] } })) {
        await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
      // And its network and isolation rules, if it could not remove them itself.
      await removeTenantNetwork(docker, `fc-${hostId}`, hostId).catch(() => undefined);
    },
  };
}

/**
 * `fastcontainer proxy` on its own, in a child process, on a free loopback port: it reaches the
 * dispatchers registered in the Redis CMDB at `redisUrl` under `prefix` over HTTP, as a proxy on
 * another machine would (start `up` with the same REDIS_URL and FC_REDIS_PREFIX for one).
 */
export async function startProxyRole(o: { redisUrl: string; prefix: string; env?: Record<string, string> }): Promise<{ url: string; stop(): Promise<void> }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn(process.execPath, [bin, 'proxy'], {
    env: { ...process.env, REDIS_URL: o.redisUrl, FC_REDIS_PREFIX: o.prefix, FC_LISTEN_HOST: '127.0.0.1', FC_PROXY_PORT: String(port), FC_ADMIN_PORT: String(adminPort), FC_LOG_LEVEL: 'warn', ...o.env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await untilHealthy(`http://127.0.0.1:${adminPort}/healthz`, child, 'fastcontainer proxy');
  } catch (err) {
    await stop(child);
    throw err;
  }
  return { url, stop: () => stop(child) };
}
