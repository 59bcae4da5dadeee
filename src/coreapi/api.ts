// The CoreAPI: the control plane's JSON REST API, version 1, and the only writer of app specs.
// Reads are open; writes need the bearer token. Errors are RFC 7807 problem+json.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';
import { cmdbErrors } from '../cmdb/errors.js';
import { chooseHost, isHostLive, newContainerEntry, newContainerId } from '../cmdb/placement.js';
import type { ContainerEntry, Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { FcError, invalidFields, toFcError } from '../shared/errors.js';
import { readJsonBody, sendJson, sendProblem } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { serveMetrics } from '../shared/metrics.js';
import { parseAppPatch, parseNewApp, specOf } from './app-spec.js';

export interface CoreApiSettings {
  token: string;
  hostTimeout: number;
}

export interface CoreApiDeps {
  store: Store;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
}

type Handler = (ctx: Ctx) => Promise<void>;

interface Route {
  method: string;
  pattern: RegExp;
  name: string;
  write: boolean;
  handler: Handler;
}

export class CoreApi {
  private readonly routes: Route[] = [];
  private readonly requests: Counter<'method' | 'route' | 'status'>;

  constructor(private readonly deps: CoreApiDeps, private readonly s: CoreApiSettings) {
    this.requests = new Counter({ name: 'fc_coreapi_requests_total', help: 'CoreAPI requests by method, route and status', labelNames: ['method', 'route', 'status'], registers: [deps.registry] });
    const { store, clock } = deps;
    this.add('GET', '/healthz', false, async ({ res }) => {
      await store.ping();
      sendJson(res, 200, { status: 'ok', role: 'coreapi', store: store.kind });
    });
    this.add('GET', '/metrics', false, async ({ res }) => serveMetrics(deps.registry, res));

    this.add('GET', '/v1/apps', false, async ({ res }) => {
      const apps = (await store.listApps()).sort((a, b) => a.name.localeCompare(b.name));
      sendJson(res, 200, { apps });
    });
    this.add('POST', '/v1/apps', true, async ({ req, res }) => {
      const spec = parseNewApp(await readJsonBody(req));
      const app = await store.createApp(spec, clock.now());
      this.deps.logger.info({ app: app.name, hostnames: app.hostnames, image: app.image }, 'app created');
      sendJson(res, 201, app, { location: `/v1/apps/${app.name}` });
    });
    this.add('GET', '/v1/apps/:name', false, async ({ res, params }) => {
      sendJson(res, 200, await this.app(params.name as string));
    });
    this.add('PATCH', '/v1/apps/:name', true, async ({ req, res, params }) => {
      const current = await this.app(params.name as string);
      const spec = parseAppPatch(specOf(current), await readJsonBody(req));
      const app = await store.updateApp(spec, clock.now());
      this.deps.logger.info({ app: app.name }, 'app updated');
      sendJson(res, 200, app);
    });
    this.add('DELETE', '/v1/apps/:name', true, async ({ res, params }) => {
      const app = await store.deleteApp(params.name as string);
      this.deps.logger.info({ app: app.name }, 'app deleted; its containers drain');
      sendJson(res, 200, app);
    });
    this.add('GET', '/v1/apps/:name/containers', false, async ({ res, params }) => {
      const app = await this.app(params.name as string);
      sendJson(res, 200, { now: clock.now(), containers: sortEntries(await store.listContainers({ app: app.name })) });
    });
    this.add('POST', '/v1/apps/:name/containers', true, async ({ req, res, params }) => {
      const app = await this.app(params.name as string);
      const raw = await readJsonBody(req);
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw invalidFields([{ field: '(body)', value: raw, allowed: 'a JSON object, {} or {"host": "<host id>"}' }]);
      }
      const body = raw as Record<string, unknown>;
      const now = clock.now();
      const [hosts, entries] = await Promise.all([store.listHosts(), store.listContainers()]);
      let hostId: string;
      if (body.host !== undefined) {
        const host = hosts.find((h) => h.id === body.host);
        if (host === undefined || !isHostLive(host, now, this.s.hostTimeout)) {
          throw invalidFields([{ field: 'host', value: body.host, allowed: `a live host: ${hosts.filter((h) => isHostLive(h, now, this.s.hostTimeout)).map((h) => h.id).join(', ') || '(none)'}` }]);
        }
        hostId = host.id;
      } else {
        const host = chooseHost(app.name, hosts, entries, now, this.s.hostTimeout);
        if (host === null) throw new FcError('FC_ERR_NO_COMPUTE_HOST', 'no live compute host has room for another container', {}, { retryAfter: 5 });
        hostId = host.id;
      }
      const { entry } = await store.registerContainer(newContainerEntry(app, hostId, now, newContainerId(app.name)));
      this.deps.logger.info({ app: app.name, container: entry.id, host: hostId }, 'container entry added');
      sendJson(res, 201, entry, { location: `/v1/containers/${entry.id}` });
    });
    this.add('GET', '/v1/containers', false, async ({ res, query }) => {
      const filter = { ...(query.get('app') ? { app: query.get('app') as string } : {}), ...(query.get('host') ? { host: query.get('host') as string } : {}) };
      sendJson(res, 200, { now: clock.now(), containers: sortEntries(await store.listContainers(filter)) });
    });
    this.add('GET', '/v1/containers/:id', false, async ({ res, params }) => {
      sendJson(res, 200, await this.container(params.id as string));
    });
    this.add('DELETE', '/v1/containers/:id', true, async ({ res, params }) => {
      const id = params.id as string;
      const current = await this.container(id);
      // Never started: it just goes. Otherwise its dispatcher drains and removes it.
      const next =
        (await store.transitionContainer(id, ['registered'], 'gone')) ??
        (await store.transitionContainer(id, ['starting', 'ready'], 'draining')) ??
        (await store.getContainer(id)) ?? { ...current, state: 'gone' as const };
      this.deps.logger.info({ container: id, state: next.state }, 'container removal asked');
      sendJson(res, next.state === 'gone' ? 200 : 202, next);
    });
    this.add('GET', '/v1/hosts', false, async ({ res }) => {
      const now = clock.now();
      const hosts = (await store.listHosts()).sort((a, b) => a.id.localeCompare(b.id));
      sendJson(res, 200, { now, hosts: hosts.map((h) => ({ ...h, live: isHostLive(h, now, this.s.hostTimeout) })) });
    });
  }

  private add(method: string, path: string, write: boolean, handler: Handler): void {
    const pattern = new RegExp(`^${path.replace(/:([a-z]+)/g, '(?<$1>[^/]+)')}$`);
    this.routes.push({ method, pattern, name: path, write, handler });
  }

  private async app(name: string) {
    const app = await this.deps.store.getApp(name);
    if (app === null) throw cmdbErrors.appNotFound(name);
    return app;
  }

  private async container(id: string): Promise<ContainerEntry> {
    const entry = await this.deps.store.getContainer(id);
    if (entry === null) throw new FcError('FC_ERR_CONTAINER_NOT_FOUND', `no container entry has the id "${id}"`, { container: id });
    return entry;
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (m === null) return false;
    const given = Buffer.from((m[1] as string).trim());
    const expected = Buffer.from(this.s.token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    void this.dispatch(req, res);
  };

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://coreapi');
    const matches = this.routes.map((r) => ({ r, m: r.pattern.exec(url.pathname) })).filter((x) => x.m !== null);
    const match = matches.find((x) => x.r.method === req.method);
    let routeName = match?.r.name ?? 'unmatched';
    try {
      if (match === undefined) {
        if (matches.length > 0) {
          res.setHeader('allow', matches.map((x) => x.r.method).join(', '));
          throw new FcError('FC_ERR_METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed on ${url.pathname}; allowed: ${matches.map((x) => x.r.method).join(', ')}`);
        }
        throw new FcError('FC_ERR_NOT_FOUND', `no such API path: ${url.pathname} (the API is under /v1)`);
      }
      if (match.r.write && !this.authorized(req)) {
        res.setHeader('www-authenticate', 'Bearer realm="fastcontainer"');
        throw new FcError('FC_ERR_UNAUTHORIZED', 'writes need the header "Authorization: Bearer <token>" with the CoreAPI token (see FC_API_TOKEN or ~/.fastcontainer/api-token)');
      }
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(match.m?.groups ?? {})) {
        try {
          params[k] = decodeURIComponent(v);
        } catch {
          throw invalidFields([{ field: k, value: v, allowed: 'a valid percent-encoded path segment' }]);
        }
      }
      await match.r.handler({ req, res, params, query: url.searchParams });
    } catch (err) {
      const fc = toFcError(err);
      if (fc.code === 'FC_ERR_INTERNAL') this.deps.logger.error({ err, method: req.method, path: url.pathname }, 'CoreAPI request failed');
      sendProblem(res, fc, url.pathname);
      routeName = match?.r.name ?? 'unmatched';
    }
    this.requests.inc({ method: req.method ?? '', route: routeName, status: String(res.statusCode) });
  }
}

function sortEntries(entries: ContainerEntry[]): ContainerEntry[] {
  return entries.sort((a, b) => a.app.localeCompare(b.app) || a.createdAt - b.createdAt);
}
