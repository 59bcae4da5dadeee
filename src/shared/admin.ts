// The admin listener: one per process, on its own port (loopback by default), for the operator's
// eyes only. It serves what the roles of the process tell about themselves: /healthz (each role's
// state), /metrics (every role's registry and the process's own figures, in one answer) and, when
// the process runs a dispatcher, its containers at /v1/containers. None of this is ever served on
// the tenants' port (the proxy's) or the dispatchers' (signed requests only): it names every app,
// container and address of the host.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { FcError } from './errors.js';
import { listen, sendJson, sendProblem, type Listening } from './http.js';
import { processMetrics } from './metrics.js';

export interface AdminSource {
  role: string;
  registry: Registry;
  /** The role's state for /healthz; throwing says it is not well (answered 503). */
  health(): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Further GET paths this role serves here, e.g. the dispatcher's /v1/containers. */
  routes?: Record<string, () => unknown>;
}

export function adminHandler(sources: readonly AdminSource[]): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => void serve(sources, req, res);
}

async function serve(sources: readonly AdminSource[], req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  try {
    if (req.method !== 'GET') throw new FcError('FC_ERR_METHOD_NOT_ALLOWED', `the admin listener serves only GET, not ${req.method ?? ''}`);
    if (path === '/healthz') return await health(sources, res);
    if (path === '/metrics') return await metrics(sources, res);
    for (const s of sources) {
      const route = s.routes?.[path];
      if (route !== undefined) return sendJson(res, 200, route());
    }
    throw new FcError('FC_ERR_NOT_FOUND', `the admin listener has no ${path}; it serves /healthz, /metrics${sources.flatMap((s) => Object.keys(s.routes ?? {})).map((p) => `, ${p}`).join('')}`);
  } catch (err) {
    sendProblem(res, err);
  }
}

async function health(sources: readonly AdminSource[], res: ServerResponse): Promise<void> {
  const roles: Record<string, unknown> = {};
  let ok = true;
  let degraded = false;
  await Promise.all(sources.map(async (s) => {
    try {
      const h = await s.health();
      // A role that still serves but lacks something (the CMDB away) says so without failing.
      if (h.status === 'degraded') degraded = true;
      roles[s.role] = h;
    } catch (err) {
      ok = false;
      roles[s.role] = { status: 'error', error: err instanceof Error ? err.message : String(err) };
    }
  }));
  sendJson(res, ok ? 200 : 503, { status: ok && !degraded ? 'ok' : 'degraded', roles });
}

async function metrics(sources: readonly AdminSource[], res: ServerResponse): Promise<void> {
  // Each role's metric names are its own (fc_proxy_*, fc_dispatcher_*, ...), so their texts join
  // without a name twice; the process's figures come once.
  const parts = await Promise.all([...sources.map((s) => s.registry.metrics()), processMetrics().metrics()]);
  const body = parts.join('\n');
  res.writeHead(200, { 'content-type': sources[0]?.registry.contentType ?? 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Starts the admin listener of a process. */
export async function startAdmin(sources: readonly AdminSource[], port: number, host: string): Promise<Listening> {
  try {
    return await listen(adminHandler(sources), port, host);
  } catch (err) {
    // The likely case: a second fastcontainer process on this machine with the default port.
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new FcError('FC_ERR_CONFIG', `the admin port ${port} on ${host} is in use (another fastcontainer process on this machine?): give each process its own FC_ADMIN_PORT (0: any free port)`, { option: 'FC_ADMIN_PORT', value: port }, { cause: err });
  }
}
