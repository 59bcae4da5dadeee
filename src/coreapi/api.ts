// The CoreAPI: the control plane's JSON REST API, version 1, and the only writer of app specs.
// Writes need the admin bearer token; reads need it or the read-only token (only /healthz and
// /metrics, which name no app, are open). Apps' secrets are never answered, only their keys.
// Errors are RFC 7807 problem+json.

import { timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';
import { withScalingDefaults } from '../cmdb/app-defaults.js';
import { cmdbErrors } from '../cmdb/errors.js';
import { isHostSchedulable, placeContainer, scaleInOrder, uncountedHosts } from '../cmdb/placement.js';
import { EVENTS_KEPT, liveStates, type App, type AppEvent, type ContainerEntry, type ContainerStats, type Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import { FcError, invalidFields, toFcError, type FieldProblem } from '../shared/errors.js';
import { readJsonBody, sendJson, sendProblem } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { serveMetrics } from '../shared/metrics.js';
import { parseAppPatch, parseNewApp, publicApp, specOf } from './app-spec.js';
import { Dashboard } from './dashboard/index.js';
import { HostAdmin, parseForce } from './hosts.js';
import { openApiDocument, type RouteDoc, type RouteInfo } from './openapi.js';
import * as S from './schemas.js';
import { LogsApi } from './logs.js';
import { appUsage } from './usage.js';

export interface CoreApiSettings {
  /** Admin token: writes and reads. */
  token: string;
  /** Read-only token: GETs only. */
  readToken: string;
  hostTimeout: number;
  /** FC_VOLUME_ROOTS: where apps' volumes may come from. */
  volumeRoots: readonly string[];
  /** FC_API_STREAMS: live-update streams at once (the dashboard's); 32 when absent. */
  streams?: number;
  /** FC_LOG_LINES: lines kept per app, so the most a logs read answers. */
  logLines?: number;
  /** FC_USAGE_RETENTION, ms: how far back usage is kept, so read. */
  usageRetention?: number;
}

/** The dashboard's browser routes (dashboard/): its page, assets, session and login. */
const isDashboardPage = (path: string): boolean => path === '/' || path.startsWith('/dashboard/');

/** The live-update stream, as the OpenAPI document tells of it. */
const EVENTS_STREAM_DOC: RouteDoc = {
  summary: 'Live updates (Server-Sent Events): a snapshot of apps (secrets by key only), hosts and containers, then every CMDB change and container stats every 5 s',
  responses: { 200: { description: 'An event stream.', contentType: 'text/event-stream' } },
  errors: ['FC_ERR_TOO_MANY_STREAMS'],
};

/** Paths anyone may GET: they name no app, container or host. */
const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/metrics', '/v1/openapi.json']);

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
  /** Anyone may call it (it checks what it needs itself): /healthz, /metrics, the dashboard's page and login. */
  open: boolean;
  handler: Handler;
  /** What the OpenAPI document says of it (openapi.ts); every route should have one. */
  doc?: RouteDoc;
}

export class CoreApi {
  private readonly routes: Route[] = [];
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  /** The web dashboard at / (dashboard/): its page, login, live-update stream and session cookie. */
  readonly dashboard: Dashboard;
  private openApi: ReturnType<typeof openApiDocument> | undefined;
  /** Apps' recent output (logs.ts); close() ends its follows. */
  readonly logs: LogsApi;

  constructor(private readonly deps: CoreApiDeps, private readonly s: CoreApiSettings) {
    this.requests = new Counter({ name: 'fc_coreapi_requests_total', help: 'CoreAPI requests by method, route and status', labelNames: ['method', 'route', 'status'], registers: [deps.registry] });
    const { store, clock } = deps;
    this.add('GET', '/healthz', false, async ({ res }) => {
      // Answers within the CMDB deadline (FC_CMDB_TIMEOUT). Degraded is a 503 here, unlike the
      // proxy's and dispatcher's: without the CMDB the CoreAPI can serve nothing.
      try {
        await store.ping();
      } catch (err) {
        // The reason goes to the log: this endpoint is open, and it names the CMDB's address.
        this.deps.logger.warn({ err: (err as Error).message }, 'health check: the CMDB does not answer');
        return sendJson(res, 503, { status: 'degraded', role: 'coreapi', store: store.kind, cmdb: { healthy: false } });
      }
      sendJson(res, 200, { status: 'ok', role: 'coreapi', store: store.kind, cmdb: { healthy: true } });
    }, {
      summary: 'Whether the CoreAPI and its CMDB answer (open to anyone)',
      responses: { 200: { description: 'Healthy.', schema: S.HealthSchema }, 503: { description: 'The CMDB does not answer (the reason is in the log).', schema: S.HealthSchema } },
    });
    this.add('GET', '/metrics', false, async ({ res }) => serveMetrics(deps.registry, res), {
      summary: 'Prometheus metrics of the CoreAPI (open to anyone)',
      responses: { 200: { description: 'Prometheus text exposition format.', contentType: 'text/plain', schema: Type.String() } },
    });
    this.add('GET', '/v1/openapi.json', false, async ({ res }) => {
      // Built once all routes are in (the constructor is over by the first request).
      this.openApi ??= openApiDocument(this.routeTable());
      sendJson(res, 200, this.openApi.document);
    }, { summary: 'This OpenAPI 3.1 document (open to anyone: it describes the API, not its data)', responses: { 200: { description: 'The document.', schema: S.OpenApiDocumentSchema } } });

    this.add('GET', '/v1/apps', false, async ({ res }) => {
      const apps = (await store.listApps()).sort((a, b) => a.name.localeCompare(b.name));
      sendJson(res, 200, { apps: apps.map(publicApp) });
    }, { summary: 'Every app, by name; secrets by key only', responses: { 200: { description: 'The apps.', schema: S.AppListSchema } } });
    this.add('POST', '/v1/apps', true, async ({ req, res }) => {
      const spec = parseNewApp(await readJsonBody(req), this.s);
      const app = await store.createApp(spec, clock.now());
      this.deps.logger.info({ app: app.name, hostnames: app.hostnames, image: app.image }, 'app created');
      sendJson(res, 201, publicApp(app), { location: `/v1/apps/${app.name}` });
    }, {
      summary: 'Create an app',
      body: S.AppCreateSchema,
      responses: { 201: { description: 'Created; Location names it.', schema: S.AppSchema } },
      errors: ['FC_ERR_APP_EXISTS', 'FC_ERR_HOSTNAME_TAKEN'],
    });
    this.add('GET', '/v1/apps/:name', false, async ({ res, params }) => {
      sendJson(res, 200, publicApp(await this.app(params.name as string)));
    }, { summary: 'One app; secrets by key only', responses: { 200: { description: 'The app.', schema: S.AppSchema } }, errors: ['FC_ERR_APP_NOT_FOUND'] });
    this.add('PATCH', '/v1/apps/:name', true, async ({ req, res, params }) => {
      const current = await this.app(params.name as string);
      const spec = parseAppPatch(specOf(current), await readJsonBody(req), this.s);
      const app = await store.updateApp(spec, clock.now());
      this.deps.logger.info({ app: app.name }, 'app updated');
      sendJson(res, 200, publicApp(app));
    }, {
      summary: 'Change an app (app update): the fields given replace the current ones',
      description: 'A change of what containers start from (image, command, env, secrets, port, volumes, memory, user, readOnlyRootfs) replaces the running containers make before break, one at a time; cpus, scaling and routing fields apply live.',
      body: S.AppPatchSchema,
      responses: { 200: { description: 'The app as changed.', schema: S.AppSchema } },
      errors: ['FC_ERR_APP_NOT_FOUND', 'FC_ERR_HOSTNAME_TAKEN'],
    });
    this.add('DELETE', '/v1/apps/:name', true, async ({ res, params }) => {
      const app = await store.deleteApp(params.name as string);
      this.deps.logger.info({ app: app.name }, 'app deleted; its containers drain');
      sendJson(res, 200, publicApp(app));
    }, { summary: 'Delete an app; its containers drain and go', responses: { 200: { description: 'The app as it was.', schema: S.AppSchema } }, errors: ['FC_ERR_APP_NOT_FOUND'] });
    this.add('GET', '/v1/apps/:name/containers', false, async ({ res, params }) => {
      const app = await this.app(params.name as string);
      const now = clock.now();
      sendJson(res, 200, { now, containers: await this.withStats(await store.listContainers({ app: app.name }), now) });
    }, { summary: 'The app\'s container entries with their latest stats', responses: { 200: { description: 'Its containers.', schema: S.ContainerListSchema } }, errors: ['FC_ERR_APP_NOT_FOUND'] });
    this.add('GET', '/v1/apps/:name/events', false, async ({ res, params, query }) => {
      const limit = parseLimit(query.get('limit'));
      const app = await this.app(params.name as string);
      sendJson(res, 200, { events: await store.listEvents(app.name, limit) });
    }, {
      summary: 'What happened to the app\'s containers and why, newest first',
      query: { limit: { schema: Type.Integer({ minimum: 1, maximum: EVENTS_KEPT, default: 50 }), description: `How many, 1 to ${EVENTS_KEPT} (default 50).` } },
      responses: { 200: { description: 'Its events.', schema: S.EventListSchema } },
      errors: ['FC_ERR_APP_NOT_FOUND'],
    });
    this.add('POST', '/v1/apps/:name/scale', true, async ({ req, res, params }) => {
      const app = withScalingDefaults(await this.app(params.name as string));
      const ask = parseScale(await readJsonBody(req), app);
      // Containers first, so that entries added now get the asked quota too.
      if (ask.containers !== undefined) await this.scaleContainers(app, ask.containers);
      if (ask.cpus !== undefined) await this.scaleCpus(app, ask.cpus);
      const now = clock.now();
      sendJson(res, 200, { app: app.name, now, containers: await this.withStats(await store.listContainers({ app: app.name }), now) });
    }, {
      summary: 'Scale now (app scale): the live containers and/or every live container\'s CPU quota',
      body: S.ScaleRequestSchema,
      responses: { 200: { description: 'The app\'s containers after the change.', schema: S.ScaleResultSchema } },
      errors: ['FC_ERR_APP_NOT_FOUND', 'FC_ERR_NO_COMPUTE_HOST', 'FC_ERR_MAX_CONTAINERS'],
    });
    this.add('POST', '/v1/apps/:name/containers', true, async ({ req, res, params }) => {
      const app = await this.app(params.name as string);
      const raw = await readJsonBody(req);
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw invalidFields([{ field: '(body)', value: raw, allowed: 'a JSON object, {} or {"host": "<host id>"}' }]);
      }
      const body = raw as Record<string, unknown>;
      if (!addContainerShape.Check(body)) throw invalidFields([{ field: 'host', value: body.host, allowed: 'a host id (a string), or absent' }]);
      const now = clock.now();
      const [hosts, entries] = await Promise.all([store.listHosts(), store.listContainers()]);
      let candidates = hosts;
      if (body.host !== undefined) {
        const host = hosts.find((h) => h.id === body.host);
        if (host === undefined || !isHostSchedulable(host, now, this.s.hostTimeout)) {
          throw invalidFields([{ field: 'host', value: body.host, allowed: `a live host that is not drained: ${hosts.filter((h) => isHostSchedulable(h, now, this.s.hostTimeout)).map((h) => h.id).join(', ') || '(none)'}` }]);
        }
        candidates = [host];
      }
      const { entry } = await placeContainer(store, app, candidates, entries, now, this.s.hostTimeout);
      this.deps.logger.info({ app: app.name, container: entry.id, host: entry.host }, 'container entry added');
      sendJson(res, 201, publicEntry(entry), { location: `/v1/containers/${entry.id}` });
    }, {
      summary: 'Add one container entry to the app, on a host of your choice or placed',
      body: S.AddContainerRequestSchema,
      responses: { 201: { description: 'The new entry; its dispatcher starts it.', schema: S.ContainerEntrySchema } },
      errors: ['FC_ERR_APP_NOT_FOUND', 'FC_ERR_NO_COMPUTE_HOST', 'FC_ERR_MAX_CONTAINERS'],
    });
    this.add('GET', '/v1/containers', false, async ({ res, query }) => {
      const filter = { ...(query.get('app') ? { app: query.get('app') as string } : {}), ...(query.get('host') ? { host: query.get('host') as string } : {}) };
      // An app that does not exist is an error, not an empty list (`ps --app typo`).
      if (filter.app !== undefined) await this.app(filter.app);
      const now = clock.now();
      sendJson(res, 200, { now, containers: await this.withStats(await store.listContainers(filter), now) });
    }, {
      summary: 'Container entries, of every app or one app or host (ps)',
      query: {
        app: { schema: Type.String(), description: 'Only this app\'s; an unknown app is FC_ERR_APP_NOT_FOUND.' },
        host: { schema: Type.String(), description: 'Only this host\'s.' },
      },
      responses: { 200: { description: 'The entries with their latest stats.', schema: S.ContainerListSchema } },
      errors: ['FC_ERR_APP_NOT_FOUND'],
    });
    this.add('GET', '/v1/containers/:id', false, async ({ res, params }) => {
      sendJson(res, 200, publicEntry(await this.container(params.id as string)));
    }, { summary: 'One container entry', responses: { 200: { description: 'The entry.', schema: S.ContainerEntrySchema } }, errors: ['FC_ERR_CONTAINER_NOT_FOUND'] });
    this.add('DELETE', '/v1/containers/:id', true, async ({ res, params }) => {
      const id = params.id as string;
      const current = await this.container(id);
      // Never started: it just goes. Otherwise its dispatcher drains and removes it.
      const next =
        (await store.transitionContainer(id, ['registered'], 'gone')) ??
        (await store.transitionContainer(id, ['starting', 'ready'], 'draining')) ??
        (await store.getContainer(id)) ?? { ...current, state: 'gone' as const };
      this.deps.logger.info({ container: id, state: next.state }, 'container removal asked');
      sendJson(res, next.state === 'gone' ? 200 : 202, publicEntry(next));
    }, {
      summary: 'Remove a container (container rm): one never started goes now; a running one drains (in-flight requests finish) and goes',
      responses: { 200: { description: 'Gone.', schema: S.ContainerEntrySchema }, 202: { description: 'Draining; its dispatcher removes it.', schema: S.ContainerEntrySchema } },
      errors: ['FC_ERR_CONTAINER_NOT_FOUND'],
    });
    // Recent output lines (logs.ts) and usage for billing (usage.ts): reads, so the read token does.
    this.logs = new LogsApi(store, clock, s.logLines ?? 1000);
    this.add('GET', '/v1/apps/:name/logs', false, async ({ req, res, params, query }) => this.logs.serve(params.name as string, query, req, res), {
      summary: 'The app\'s recent output (stdout and stderr of its containers, kept past them); follow=1 streams new lines as NDJSON',
      query: {
        limit: { schema: Type.Integer({ minimum: 1 }), description: 'The newest this many lines (default 100, at most FC_LOG_LINES).' },
        since: { schema: Type.String(), description: 'Only lines at or after this time: ms since the epoch, an ISO date, or a duration back such as 1h.' },
        after: { schema: Type.Integer({ minimum: 0 }), description: 'Only lines with a greater number (a follow\'s cursor).' },
        container: { schema: Type.String(), description: 'Only this container entry\'s lines.' },
        follow: { schema: Type.Boolean(), description: '1: keep the answer open and stream lines as they come (NDJSON, one line object per line).' },
      },
      responses: { 200: { description: 'The lines (JSON), or with follow=1 a stream of them (application/x-ndjson).', schema: S.LogPageSchema } },
      errors: ['FC_ERR_APP_NOT_FOUND', 'FC_ERR_TOO_MANY_FOLLOWERS'],
    });
    this.add('GET', '/v1/apps/:name/usage', false, async ({ res, params, query }) => {
      sendJson(res, 200, await appUsage(store, params.name as string, query, clock.now(), s.usageRetention ?? 35 * 24 * 3_600_000));
    }, {
      summary: 'The app\'s usage for billing (CPU, memory, container time, requests, bytes, cold starts), per minute or hour',
      query: {
        from: { schema: Type.String(), description: 'Start: ms since the epoch, an ISO date, or a duration back such as 1h (default: an hour ago).' },
        to: { schema: Type.String(), description: 'End, in the same forms (default: now).' },
        step: { schema: Type.Union([Type.Literal('minute'), Type.Literal('hour')]), description: 'minute (up to 7 days) or hour (default: minute up to a day, else hour).' },
      },
      responses: { 200: { description: 'Totals and the series.', schema: S.UsageSchema } },
    });
    // Compute hosts: list, show, and the operator's remove, drain and undrain (coreapi/hosts.ts).
    const hostAdmin = new HostAdmin(deps, s);
    const force = { force: { schema: Type.Boolean({ default: false }), description: 'true or false (also 1 or 0).' } };
    this.add('GET', '/v1/hosts', false, async ({ res }) => sendJson(res, 200, await hostAdmin.list()), {
      summary: 'Compute hosts: heartbeat, live, drained, containers', responses: { 200: { description: 'The hosts.', schema: S.HostListSchema } },
    });
    this.add('GET', '/v1/hosts/:id', false, async ({ res, params }) => sendJson(res, 200, await hostAdmin.get(params.id as string)), {
      summary: 'One compute host', responses: { 200: { description: 'The host.', schema: S.HostViewSchema } }, errors: ['FC_ERR_HOST_NOT_FOUND'],
    });
    this.add('DELETE', '/v1/hosts/:id', true, async ({ res, params, query }) => sendJson(res, 200, await hostAdmin.remove(params.id as string, parseForce(query.get('force')))), {
      summary: 'Forget a host that will not come back, with its container entries (refused for a live host unless forced)',
      query: force, responses: { 200: { description: 'Removed.', schema: S.HostRemovedSchema } }, errors: ['FC_ERR_HOST_NOT_FOUND', 'FC_ERR_HOST_LIVE'],
    });
    this.add('POST', '/v1/hosts/:id/drain', true, async ({ res, params, query }) => sendJson(res, 200, await hostAdmin.drain(params.id as string, parseForce(query.get('force')))), {
      summary: 'Drain a host: no new containers there; its containers are replaced elsewhere, make before break',
      query: force, responses: { 200: { description: 'The host, drained.', schema: S.HostViewSchema } }, errors: ['FC_ERR_HOST_NOT_FOUND', 'FC_ERR_LAST_HOST'],
    });
    this.add('POST', '/v1/hosts/:id/undrain', true, async ({ res, params }) => sendJson(res, 200, await hostAdmin.undrain(params.id as string)), {
      summary: 'Undrain a host: it takes new containers again', responses: { 200: { description: 'The host.', schema: S.HostViewSchema } }, errors: ['FC_ERR_HOST_NOT_FOUND'],
    });
    this.dashboard = new Dashboard(deps, { token: s.token, readToken: s.readToken, hostTimeout: s.hostTimeout, maxStreams: s.streams ?? 32 });
    for (const r of this.dashboard.routes()) this.add(r.method, r.path, r.write, r.handler, r.path === '/v1/events/stream' ? EVENTS_STREAM_DOC : undefined, r.open);
  }

  /**
   * Registers a route. `doc` is what the OpenAPI document says of it (openapi.ts: a summary, the
   * body and answers as schemas from schemas.ts, the problems it may answer); a route without one
   * is listed as undocumented, and the OpenAPI test fails on it.
   */
  private add(method: string, path: string, write: boolean, handler: Handler, doc?: RouteDoc, open = OPEN_PATHS.has(path)): void {
    const pattern = new RegExp(`^${path.replace(/:([a-z]+)/g, '(?<$1>[^/]+)')}$`);
    this.routes.push({ method, pattern, name: path, write, open, handler, ...(doc === undefined ? {} : { doc }) });
  }

  /** The routes as the OpenAPI document and its tests see them. */
  routeTable(): RouteInfo[] {
    // The dashboard's page, assets and login are for a browser, not the API: not documented there.
    return this.routes
      .filter((r) => !isDashboardPage(r.name))
      .map((r) => ({ method: r.method, name: r.name, write: r.write, open: r.open && !r.write, ...(r.doc === undefined ? {} : { doc: r.doc }) }));
  }

  private async app(name: string) {
    const app = await this.deps.store.getApp(name);
    if (app === null) throw cmdbErrors.appNotFound(name);
    return app;
  }

  /** Entries, sorted, each with its dispatcher's latest stats (null when none are fresh). */
  private async withStats(entries: ContainerEntry[], now: number): Promise<(PublicEntry & { stats: ContainerStats | null })[]> {
    const byId = new Map<string, ContainerStats>();
    for (const s of await this.deps.store.listStats(now)) {
      const seen = byId.get(s.id);
      if (seen === undefined || s.at > seen.at) byId.set(s.id, s);
    }
    return sortEntries(entries).map((e) => ({ ...publicEntry(e), stats: byId.get(e.id) ?? null }));
  }

  /**
   * Brings the app to `wanted` live entries: adds entries on live hosts, or removes the extras in
   * scaleInOrder (never-started ones go, the others drain; their dispatchers react to the change).
   * Records what was asked and what came of it as a 'manual' event, also when it fails part way.
   */
  private async scaleContainers(app: App, wanted: number): Promise<void> {
    const { store, clock, logger } = this.deps;
    const now = clock.now();
    const [all, hosts] = await Promise.all([store.listContainers(), store.listHosts()]);
    // Entries on hosts not live serve nobody and are not counted (placement.ts, uncountedHosts).
    const uncounted = new Set(uncountedHosts(app.name, hosts, all, now, this.s.hostTimeout));
    const counted = (e: ContainerEntry) => liveStates.includes(e.state) && !uncounted.has(e.host);
    const live = all.filter((e) => e.app === app.name && counted(e));
    let added = 0;
    let gone = 0;
    let drained = 0;
    let failure: unknown;
    try {
      if (live.length < wanted) {
        while (live.length + added < wanted) {
          // ifFewerThan makes a repeated or concurrent ask idempotent: never past `wanted`.
          const { entry, created } = await placeContainer(store, app, hosts, all, now, this.s.hostTimeout, { ifFewerThan: wanted });
          if (!created) break;
          all.push(entry);
          added += 1;
        }
      } else {
        // One at a time, counting again before each: a second ask running at the same time
        // (or the autoscaler scaling in) does not take the app below what was asked.
        for (;;) {
          const current = (await store.listContainers({ app: app.name })).filter(counted);
          if (current.length <= wanted) break;
          const e = scaleInOrder(current)[0] as ContainerEntry;
          if (e.state === 'registered') {
            if ((await store.transitionContainer(e.id, ['registered'], 'gone')) !== null) gone += 1;
          } else if ((await store.transitionContainer(e.id, [e.state], 'draining', {}, e.state === 'ready' ? { appReadyAbove: app.minContainers } : {})) !== null) drained += 1;
          else break;
        }
      }
    } catch (err) {
      failure = err;
    }
    const after = live.length + added - gone - drained;
    const did = [
      added > 0 ? `registered ${added}` : '',
      gone > 0 ? `removed ${gone} not yet started` : '',
      drained > 0 ? `drained ${drained}` : '',
    ].filter((x) => x !== '');
    const outcome = did.length > 0 ? did.join(', ') : after === wanted ? 'nothing to do' : 'changed nothing';
    const reason = `asked via the CoreAPI for ${wanted} container${wanted === 1 ? '' : 's'} (had ${live.length} live): ${outcome}${failure === undefined ? '' : `; then failed: ${(failure as Error).message}`}`;
    await this.record({ at: clock.now(), app: app.name, kind: 'manual', container: null, host: null, reason, from: live.length, to: after });
    logger.info({ app: app.name, wanted, before: live.length, after, added, gone, drained }, 'manual scale of containers');
    if (failure !== undefined) throw failure;
  }

  /**
   * Sets every live entry's CPU quota to `cpus` (a same-state transition with a patch, so a
   * concurrent state change is not undone); each entry's dispatcher changes the running
   * container's quota live. An entry that changed state meanwhile is tried again in its new state.
   */
  private async scaleCpus(app: App, cpus: number): Promise<void> {
    const { store, clock, logger } = this.deps;
    const live = (await store.listContainers({ app: app.name })).filter((e) => liveStates.includes(e.state));
    const before = [...new Set(live.map((e) => e.cpus ?? app.cpus))].sort((a, b) => a - b);
    let changed = 0;
    for (const e of live) {
      let current: ContainerEntry | null = e;
      for (let attempt = 0; attempt < 3 && current !== null && liveStates.includes(current.state); attempt++) {
        if ((await store.transitionContainer(current.id, [current.state], current.state, { cpus, cpusSetAt: clock.now() })) !== null) {
          changed += 1;
          break;
        }
        current = await store.getContainer(current.id);
      }
    }
    const was = before.length === 0 ? '' : ` (was ${before.length === 1 ? before[0] : `${before[0]}-${before.at(-1)}`})`;
    const reason = live.length === 0
      ? `asked via the CoreAPI for ${cpus} cores per container: no live containers (new ones start with the app's ${app.cpus})`
      : `asked via the CoreAPI for ${cpus} cores per container: set on ${changed} of ${live.length} live${was}`;
    await this.record({ at: clock.now(), app: app.name, kind: 'manual', container: null, host: null, reason, from: before.length === 1 ? (before[0] as number) : null, to: cpus });
    logger.info({ app: app.name, cpus, changed, live: live.length }, 'manual scale of CPU quota');
  }

  /** An event is a record for people: failing to keep one must not fail the change it describes. */
  private async record(event: AppEvent): Promise<void> {
    try {
      await this.deps.store.appendEvent(event);
    } catch (err) {
      this.deps.logger.warn({ err, app: event.app, kind: event.kind }, 'could not record an app event');
    }
  }

  private async container(id: string): Promise<ContainerEntry> {
    const entry = await this.deps.store.getContainer(id);
    if (entry === null) throw new FcError('FC_ERR_CONTAINER_NOT_FOUND', `no container entry has the id "${id}"`, { container: id });
    return entry;
  }

  /**
   * What the request's bearer token allows: 'write' (admin token), 'read' (read token) or nothing;
   * without one, what the dashboard's session cookie allows (a write also needs its CSRF header).
   */
  private access(req: IncomingMessage, write: boolean): 'write' | 'read' | null {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (m === null) return this.dashboard.sessionAccess(req, write);
    const given = Buffer.from((m[1] as string).trim());
    const same = (token: string) => {
      const expected = Buffer.from(token);
      return given.length === expected.length && timingSafeEqual(given, expected);
    };
    if (same(this.s.token)) return 'write';
    return same(this.s.readToken) ? 'read' : null;
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
      if (!match.r.open) {
        const access = this.access(req, match.r.write);
        if (access === null) {
          res.setHeader('www-authenticate', 'Bearer realm="fastcontainer"');
          throw new FcError('FC_ERR_UNAUTHORIZED', match.r.write
            ? 'writes need the header "Authorization: Bearer <token>" with the CoreAPI admin token (see FC_API_TOKEN or ~/.fastcontainer/api-token)'
            : 'reads need the header "Authorization: Bearer <token>" with the CoreAPI read token or the admin token (see FC_API_READ_TOKEN or ~/.fastcontainer/api-read-token)');
        }
        if (match.r.write && access !== 'write') {
          throw new FcError('FC_ERR_FORBIDDEN', `the read-only token cannot ${req.method ?? ''} ${url.pathname}: writes need the admin token (FC_API_TOKEN or ~/.fastcontainer/api-token)`);
        }
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

/** `?limit=` of the events list: 1 to EVENTS_KEPT, 50 when absent. */
function parseLimit(raw: string | null): number {
  if (raw === null) return 50;
  const n = /^\d{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n >= 1 && n <= EVENTS_KEPT)) throw invalidFields([{ field: 'limit', value: raw, allowed: `an integer from 1 to ${EVENTS_KEPT} (default 50)` }]);
  return n;
}

const scaleFields = Object.keys(S.ScaleRequestSchema.properties) as (keyof typeof S.ScaleRequestSchema.properties)[];
const addContainerShape = TypeCompiler.Compile(S.AddContainerRequestSchema);

/** The shapes of the scale fields (schemas.ts), compiled once; the ranges come from the app. */
const scaleShape = {
  containers: TypeCompiler.Compile(S.ScaleRequestSchema.properties.containers),
  cpus: TypeCompiler.Compile(S.ScaleRequestSchema.properties.cpus),
};

/** The body of POST /v1/apps/:name/scale, checked against the app: every problem at once. */
function parseScale(body: unknown, app: App): { containers?: number; cpus?: number } {
  const shape = 'a JSON object with "containers" (an integer) and/or "cpus" (cores), e.g. {"containers": 3}';
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidFields([{ field: '(body)', value: body, allowed: shape }]);
  const b = body as Record<string, unknown>;
  const problems: FieldProblem[] = Object.keys(b)
    .filter((k) => !(scaleFields as readonly string[]).includes(k))
    .map((k) => ({ field: k, value: b[k], allowed: `no such field; the fields are ${scaleFields.join(', ')}` }));
  if (b.containers === undefined && b.cpus === undefined) problems.push({ field: '(body)', value: b, allowed: `at least one of containers, cpus: ${shape}` });
  const out: { containers?: number; cpus?: number } = {};
  if (b.containers !== undefined) {
    const v = b.containers;
    // Below minContainers the dispatchers would only add them back within a second.
    if (scaleShape.containers.Check(v) && v >= app.minContainers && v <= app.maxContainers) out.containers = v;
    else problems.push({ field: 'containers', value: v, allowed: `an integer from the app's minContainers (${app.minContainers}) to its maxContainers (${app.maxContainers})` });
  }
  if (b.cpus !== undefined) {
    const v = b.cpus;
    if (scaleShape.cpus.Check(v) && v >= app.cpus && v <= app.maxCpus) out.cpus = Math.round(v * 1000) / 1000;
    else problems.push({ field: 'cpus', value: v, allowed: `a number of CPU cores from the app's cpus (${app.cpus}) to its maxCpus (${app.maxCpus})` });
  }
  if (problems.length > 0) throw invalidFields(problems);
  return out;
}

type PublicEntry = Omit<ContainerEntry, 'specHash'>;

/**
 * An entry as the API shows it: without specHash, a digest that covers the app's secret values
 * (dispatcher/rollout.ts): a reader who knows the other fields could test guesses of a weak
 * secret against it, and secrets are write-only.
 */
function publicEntry(e: ContainerEntry): PublicEntry {
  const { specHash: _digest, ...shown } = e;
  return shown;
}

function sortEntries(entries: ContainerEntry[]): ContainerEntry[] {
  return entries.sort((a, b) => a.app.localeCompare(b.app) || a.createdAt - b.createdAt);
}
