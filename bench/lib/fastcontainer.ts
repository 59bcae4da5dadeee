// A whole fastcontainer (`fastcontainer up`, the built CLI) in a child process for benchmarks,
// on free loopback ports, with its own host id (the label on its containers) and state dir.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { request } from 'undici';
import { freePort } from '../../test/helpers/net.js';
import { stop } from './proc.js';

export { freePort };

const bin = fileURLToPath(new URL('../../../bin/fastcontainer.js', import.meta.url));
const TOKEN = `bench-${randomBytes(12).toString('hex')}`;

export interface Fastcontainer {
  proxyUrl: string;
  apiUrl: string;
  hostId: string;
  api(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', p: string, body?: unknown): Promise<any>;
  stop(): Promise<void>;
}

export async function startFastcontainer(): Promise<Fastcontainer> {
  const [proxyPort, apiPort, dispatcherPort] = [await freePort(), await freePort(), await freePort()];
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
      FC_HOST_ID: hostId,
      FC_API_TOKEN: TOKEN,
      FC_STATE_DIR: stateDir,
      FC_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  // The CoreAPI starts last: once it answers, the proxy and the dispatcher do too.
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await request(`${apiUrl}/healthz`);
      await res.body.dump();
      if (res.statusCode === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('fastcontainer up did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    apiUrl,
    hostId,
    async api(method, p, body) {
      const res = await request(`${apiUrl}${p}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode >= 400) throw new Error(`${method} ${p}: ${res.statusCode} ${text}`);
      return text === '' ? undefined : JSON.parse(text);
    },
    async stop() {
      await stop(child);
      rmSync(stateDir, { recursive: true, force: true });
      // Whatever the stack left behind (it removes its containers on a clean stop).
      const docker = new Docker({ socketPath: '/var/run/docker.sock' });
      for (const c of await docker.listContainers({ all: true, filters: { label: [`fastcontainer.host=${hostId}`] } })) {
        await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
      }
    },
  };
}
