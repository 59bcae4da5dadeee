// A whole fastcontainer stack in the test process, on ephemeral loopback ports, with its own
// Redis key prefix, host id (the label on its containers) and state directory. cleanup() removes
// all of it.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { startStack, type Stack, type StackRole } from '../../src/cli/stack.js';
import type { ContainerRuntime } from '../../src/dispatcher/container-runtime.js';
import type { Clock } from '../../src/shared/clock.js';
import { loadConfig, type Config } from '../../src/shared/config.js';
import { createLogger, silentLogger } from '../../src/shared/logger.js';
import { removeContainersOfHost, removeHostAndNetwork } from './docker.js';
import { redisUrl, uniqueName } from './env.js';
import { dropPrefix } from './redis.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';

export interface TestStack {
  stack: Stack;
  config: Config;
  proxyUrl: string;
  apiUrl: string;
  dispatcherUrl: string;
  /** The process's admin listener: /healthz, /metrics, the dispatcher's /v1/containers. */
  adminUrl: string;
  hostId: string;
  prefix: string;
  /** POSTs, PATCHes or DELETEs on the CoreAPI with the token. */
  api(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  /** A request through the proxy for a host name. */
  get(host: string, path?: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }>;
  cleanup(): Promise<void>;
}

export interface TestStackOptions {
  store?: 'redis' | 'memory';
  roles?: StackRole[];
  env?: Record<string, string>;
  runtime?: ContainerRuntime;
  hostId?: string;
  prefix?: string;
  clock?: Clock;
}

export async function startTestStack(o: TestStackOptions = {}): Promise<TestStack> {
  const hostId = o.hostId ?? uniqueName('fctest-host');
  const prefix = o.prefix ?? uniqueName('fctest');
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'fctest-state-'));
  const config = loadConfig({
    env: {
      FC_LISTEN_HOST: '127.0.0.1',
      FC_PROXY_PORT: '0',
      FC_API_PORT: '0',
      FC_DISPATCHER_PORT: '0',
      FC_ADMIN_PORT: '0',
      FC_HOST_ID: hostId,
      FC_API_TOKEN: TEST_TOKEN,
      FC_STATE_DIR: stateDir,
      FC_REDIS_PREFIX: prefix,
      // Tests keep their sites in temporary directories; the volume tests set roots of their own.
      FC_VOLUME_ROOTS: os.tmpdir(),
      ...(o.store === 'memory' ? {} : { REDIS_URL: redisUrl }),
      FC_LOG_LEVEL: process.env.FC_TEST_LOG_LEVEL ?? 'silent',
      ...o.env,
    },
  });
  const logger = config.logLevel === 'silent' ? silentLogger : createLogger(config.logLevel);
  const stack = await startStack({ config, roles: o.roles ?? ['coreapi', 'dispatcher', 'proxy'], logger, ...(o.runtime ? { runtime: o.runtime } : {}), ...(o.clock ? { clock: o.clock } : {}) });
  const dispatcherUrl = stack.dispatcher?.listening.url ?? '';
  const proxyUrl = stack.proxy?.listening.url ?? '';
  const apiUrl = stack.coreapi?.listening.url ?? '';
  const adminUrl = stack.admin?.url ?? '';
  const t: TestStack = {
    stack, config, proxyUrl, apiUrl, dispatcherUrl, adminUrl, hostId, prefix,
    async api(method, p, body) {
      const res = await request(`${apiUrl}${p}`, {
        method,
        headers: { authorization: `Bearer ${TEST_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? null : JSON.stringify(body),
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
    },
    async get(host, p = '/') {
      const res = await request(`${proxyUrl}${p}`, { headers: { host } });
      return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
    },
    async cleanup() {
      await stack.destroy().catch(() => undefined);
      // The dispatcher's network and its isolation rules (destroy() leaves them to the containers).
      if (o.runtime === undefined) await removeHostAndNetwork(hostId, config.dockerNetwork);
      else await removeContainersOfHost(hostId);
      await dropPrefix(prefix);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return t;
}
