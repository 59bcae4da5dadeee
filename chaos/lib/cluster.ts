// A whole fastcontainer cluster for one chaos scenario, every role in its own process from the
// real CLI (`node bin/fastcontainer.js dispatcher|proxy|coreapi`), as compose/cluster.sh runs
// them: N dispatchers (N compute hosts, each with its own host id: the label on its containers),
// one proxy and one CoreAPI, on free loopback ports and a Redis of the scenario's own
// (chaos/lib/redis.ts). Measurements use only the public proxy port, the CoreAPI (with the token)
// and the Docker engine, so that moving /metrics and /healthz to an admin port changes nothing
// here. Each process gets an FC_ADMIN_PORT of its own (ignored by builds without one).
//
// CHAOS_ENV ("K=V K=V ...") is added to every role's environment (e.g. a cluster secret).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from '../../test/helpers/net.js';
import { appContainers, removeByLabel, removeTenantNetworks, type DockerContainer } from './docker.js';
import { pollUntil, startProc, type Proc } from './proc.js';
import { startOwnRedis, type OwnRedis } from './redis.js';

export const bin = process.env.FC_CHAOS_BIN ?? fileURLToPath(new URL('../../../bin/fastcontainer.js', import.meta.url));
/** One id per chaos run: in host ids, key prefixes and the labels of the run's own containers. */
export const runId = randomBytes(3).toString('hex');

export function chaosEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (process.env.CHAOS_ENV ?? '').split(/\s+/).filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

export interface ApiAnswer {
  status: number;
  body: any;
  ms: number;
  headers: Record<string, unknown>;
  error?: string;
}

export interface Dispatcher {
  hostId: string;
  port: number;
  url: string;
  proc(): Proc;
  /** kill -9: no drain, no clean-up, as a power cut would. */
  kill9(): Promise<void>;
  /** Starts it again with the same host id and port. */
  restart(): Promise<void>;
}

export interface Entry {
  id: string;
  app: string;
  host: string;
  state: string;
  runtimeId: string | null;
  address: string | null;
}

export interface Cluster {
  name: string;
  prefix: string;
  token: string;
  redis: OwnRedis;
  proxyUrl: string;
  apiUrl: string;
  dispatchers: Dispatcher[];
  hostIds: string[];
  /** The proxy's process (to signal it). */
  proxy: Proc;
  api(method: string, p: string, body?: unknown, timeoutMs?: number): Promise<ApiAnswer>;
  /** Runs the real CLI (`fastcontainer <args>`) against this cluster's CoreAPI: exit code and output. */
  cli(args: string[], timeoutMs?: number): Promise<{ code: number | null; output: string }>;
  createApp(spec: Record<string, unknown>): Promise<void>;
  /** The CMDB's entries (all, or an app's) through the CoreAPI; null when the CoreAPI did not answer 200. */
  entries(app?: string): Promise<Entry[] | null>;
  /** Running app containers (not sandboxes) on this cluster's hosts, per the Docker engine. */
  running(app?: string): Promise<DockerContainer[]>;
  /** Polls until `n` entries of `app` are ready with a running container; ms it took, or undefined. */
  untilReady(app: string, n: number, ms: number, hosts?: string[]): Promise<number | undefined>;
  stopRoles(): Promise<void>;
  cleanup(): Promise<void>;
}

export interface ClusterOptions {
  hosts?: number;
  /** Environment for every role; wins over the defaults here. */
  env?: Record<string, string>;
  /** null: leave FC_LISTEN_HOST unset (the build's default); otherwise the address (127.0.0.1). */
  listenHost?: string | null;
  /** A Redis the caller made (a Sentinel setup); by default one of the cluster's own. */
  redis?: OwnRedis;
}

/** Whether an HTTP server answers at `url` (any status). */
async function answers(url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    const res = await request(url, { headers, headersTimeout: 1000, bodyTimeout: 1000 });
    await res.body.dump();
    return true;
  } catch {
    return false;
  }
}

export async function startCluster(name: string, o: ClusterOptions = {}): Promise<Cluster> {
  const redis = o.redis ?? (await startOwnRedis(name));
  const prefix = `fcchaos-${runId}-${name}`;
  const token = `chaos-${randomBytes(12).toString('hex')}`;
  const stateDir = mkdtempSync(path.join(os.tmpdir(), 'fcchaos-state-'));
  const common = (): Record<string, string | undefined> => ({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    REDIS_URL: redis.url,
    FC_REDIS_PREFIX: prefix,
    ...(o.listenHost === null ? {} : { FC_LISTEN_HOST: o.listenHost ?? '127.0.0.1' }),
    FC_API_TOKEN: token,
    FC_STATE_DIR: stateDir,
    FC_LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn',
    ...chaosEnv(),
    ...o.env,
  });
  const procs: Proc[] = [];
  const role = async (label: string, roleName: string, env: Record<string, string | undefined>): Promise<Proc> => {
    const p = startProc(`${name}:${label}`, process.execPath, [bin, roleName], { ...common(), FC_ADMIN_PORT: String(await freePort()), ...env });
    procs.push(p);
    return p;
  };
  const hostIds: string[] = [];
  const dispatchers: Dispatcher[] = [];
  const cleanupOnFail = async () => {
    await Promise.all(procs.map((p) => p.stop(2000)));
    for (const h of hostIds) await removeByLabel(`fastcontainer.host=${h}`);
    await removeTenantNetworks(bin, hostIds);
    if (o.redis === undefined) await redis.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    for (let i = 1; i <= (o.hosts ?? 1); i++) {
      const hostId = `${prefix}-h${i}`;
      hostIds.push(hostId);
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      let proc: Proc;
      const start = async () => {
        proc = await role(`dispatcher-${i}`, 'dispatcher', { FC_HOST_ID: hostId, FC_DISPATCHER_PORT: String(port), FC_DISPATCHER_URL: url });
        if ((await pollUntil(20_000, async () => ((await answers(`${url}/`)) ? true : !proc.alive() ? false : undefined), 100)) !== true) {
          throw new Error(`dispatcher ${hostId} did not start:\n${proc.output()}`);
        }
      };
      await start();
      dispatchers.push({
        hostId,
        port,
        url,
        proc: () => proc,
        async kill9() {
          proc.signal('SIGKILL');
          await proc.exited();
        },
        restart: start,
      });
    }
    const proxyPort = await freePort();
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const proxy = await role('proxy', 'proxy', { FC_PROXY_PORT: String(proxyPort) });
    if ((await pollUntil(20_000, async () => ((await answers(`${proxyUrl}/`, { host: 'chaos-ready.invalid' })) ? true : !proxy.alive() ? false : undefined), 100)) !== true) {
      throw new Error(`proxy did not start:\n${proxy.output()}`);
    }
    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const coreapi = await role('coreapi', 'coreapi', { FC_API_PORT: String(apiPort) });

    const api: Cluster['api'] = async (method, p, body, timeoutMs = 10_000) => {
      const t0 = performance.now();
      try {
        const res = await request(`${apiUrl}${p}`, {
          method: method as 'GET',
          headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? null : JSON.stringify(body),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        const text = await res.body.text();
        let parsed: unknown = text;
        try {
          parsed = text === '' ? undefined : JSON.parse(text);
        } catch {
          // not JSON
        }
        return { status: res.statusCode, body: parsed, ms: performance.now() - t0, headers: res.headers };
      } catch (err) {
        return { status: 0, body: undefined, ms: performance.now() - t0, headers: {}, error: String(err) };
      }
    };
    if ((await pollUntil(20_000, async () => ((await api('GET', '/v1/apps', undefined, 1000)).status === 200 ? true : !coreapi.alive() ? false : undefined), 100)) !== true) {
      throw new Error(`CoreAPI did not start:\n${coreapi.output()}`);
    }
    // Every dispatcher has announced itself (its first heartbeat) before the scenario begins.
    const announced = await pollUntil(15_000, async () => {
      const a = await api('GET', '/v1/hosts', undefined, 1000);
      const live = new Set(((a.body?.hosts ?? []) as { id: string; live: boolean }[]).filter((h) => h.live).map((h) => h.id));
      return hostIds.every((h) => live.has(h)) ? true : undefined;
    });
    if (announced !== true) throw new Error('the dispatchers did not announce themselves in the CMDB within 15 s');

    const entries: Cluster['entries'] = async (app) => {
      const a = await api('GET', `/v1/containers${app === undefined ? '' : `?app=${encodeURIComponent(app)}`}`, undefined, 3000);
      return a.status === 200 ? ((a.body?.containers ?? []) as Entry[]) : null;
    };
    const running: Cluster['running'] = async (app) => (await appContainers(hostIds)).filter((c) => c.running && (app === undefined || c.app === app));
    const stopRoles = async () => {
      await Promise.all(procs.map((p) => p.stop(5000)));
    };
    return {
      name,
      prefix,
      token,
      redis,
      proxyUrl,
      apiUrl,
      dispatchers,
      hostIds,
      proxy,
      api,
      async cli(args, timeoutMs = 30_000) {
        return new Promise((resolve) => {
          execFile(process.execPath, [bin, ...args], { env: { ...common(), FC_API_URL: apiUrl }, timeout: timeoutMs }, (err, stdout, stderr) => {
            const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
            resolve({ code, output: `${stdout}${stderr}`.trim() });
          });
        });
      },
      async createApp(spec) {
        const a = await api('POST', '/v1/apps', spec);
        if (a.status !== 201) throw new Error(`creating app ${String(spec.name)}: ${a.status} ${JSON.stringify(a.body) ?? a.error}`);
      },
      entries,
      running,
      async untilReady(app, n, ms, hosts) {
        const t0 = Date.now();
        const ok = await pollUntil(ms, async () => {
          const es = await entries(app);
          if (es === null) return undefined;
          const run = new Set((await running(app)).map((c) => c.entryId));
          const ready = es.filter((e) => e.state === 'ready' && run.has(e.id) && (hosts === undefined || hosts.includes(e.host)));
          return ready.length >= n ? true : undefined;
        }, 200);
        return ok === true ? Date.now() - t0 : undefined;
      },
      stopRoles,
      async cleanup() {
        await stopRoles();
        for (const h of hostIds) await removeByLabel(`fastcontainer.host=${h}`);
        await removeTenantNetworks(bin, hostIds);
        if (o.redis === undefined) await redis.destroy();
        rmSync(stateDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await cleanupOnFail();
    throw err;
  }
}

/** The app spec fields every chaos app shares: small, no autoscaling or freezing to blur the fault's effect. */
export function chaosApp(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    hostnames: [`${name}.chaos.test`],
    image: 'fastcontainer/hello',
    cpus: 0.25,
    memory: 64 * 1024 * 1024,
    lifespan: 3600,
    idleTimeout: 3600,
    autoscale: false,
    freezeAfter: 0,
    minContainers: 0,
    maxContainers: 1,
    ...over,
  };
}

/**
 * The hello image running busybox httpd on a copy of its site plus CGI scripts of the chaos run's:
 * /cgi-bin/sleep?N answers after N seconds; every CGI writes "CHAOS-EXEC <method> <path>" to the
 * container's log first, so the log counts how often the app executed a request.
 */
export function cgiCommand(): string[] {
  const cgi = [
    '#!/bin/sh',
    'echo "CHAOS-EXEC $REQUEST_METHOD $REQUEST_URI" > /proc/1/fd/1',
    'case "$QUERY_STRING" in *[!0-9]*|"") n=1 ;; *) n=$QUERY_STRING ;; esac',
    'head -c "${CONTENT_LENGTH:-0}" > /dev/null',
    'sleep "$n"',
    "printf 'Content-Type: text/plain\\r\\n\\r\\n'",
    'hostname',
    '',
  ].join('\n');
  const script = [
    'set -e',
    'mkdir -p /tmp/www/cgi-bin',
    'cp -r /www/. /tmp/www/',
    // base64 keeps the script's quotes out of this one's.
    `echo ${Buffer.from(cgi).toString('base64')} | /bin/busybox base64 -d > /tmp/www/cgi-bin/sleep`,
    'chmod +x /tmp/www/cgi-bin/sleep',
    "trap 'exit 0' TERM INT",
    '/bin/busybox httpd -f -p 8080 -h /tmp/www &',
    'wait $!',
  ].join('\n');
  return ['/bin/busybox', 'sh', '-c', script];
}

/** The hello image's busybox httpd on a copy of its site plus /big: `bytes` bytes (zeros), a large static answer. */
export function bigPageCommand(bytes: number): string[] {
  const script = [
    'set -e',
    'mkdir -p /tmp/www',
    'cp -r /www/. /tmp/www/',
    `head -c ${bytes} /dev/zero > /tmp/www/big`,
    "trap 'exit 0' TERM INT",
    '/bin/busybox httpd -f -p 8080 -h /tmp/www &',
    'wait $!',
  ].join('\n');
  return ['/bin/busybox', 'sh', '-c', script];
}
