// Every request and response body of the CoreAPI, declared once (TypeBox). The routes name them
// (api.ts, each route's RouteDoc), the OpenAPI document is built from them (openapi.ts), and the
// CMDB's types are checked equal to them (test/unit/openapi.test.ts). The app spec itself is
// cmdb/app-schema.ts; what a request may send for it is AppCreateSchema / AppPatchSchema.

import { Type, type TSchema } from '@sinclair/typebox';
import { AppSpecSchema } from '../cmdb/app-schema.js';
import { errorCatalog } from '../shared/errors.js';

import { AppCreateSchema, AppPatchSchema } from './app-spec.js';

export { AppCreateSchema, AppPatchSchema };

const ms = (description: string) => Type.Integer({ description: `${description} (ms since the epoch)` });
const msOrNull = (description: string) => Type.Union([Type.Integer(), Type.Null()], { description: `${description} (ms since the epoch); null: not yet, or never` });
const orNull = <T extends TSchema>(t: T, description: string) => Type.Union([t, Type.Null()], { description });

export const FieldProblemSchema = Type.Object({
  field: Type.String({ description: 'The field, e.g. "cpus", "(body)" for the body as a whole, or a path such as "env.A".' }),
  value: Type.Unknown({ description: 'The value given (long ones cut; secrets shown as "***").' }),
  allowed: Type.String({ description: 'What the field allows.' }),
});

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'urn:fastcontainer:error:<code>' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String({ description: 'For people; may change. Match on code.' }),
    code: Type.Union(Object.keys(errorCatalog).map((c) => Type.Literal(c)), { description: 'Stable error code (README: errors).' }),
    instance: Type.Optional(Type.String({ description: 'The request path.' })),
    field: Type.Optional(Type.String({ description: 'FC_ERR_INVALID_FIELD: the first invalid field (all are in errors).' })),
    value: Type.Optional(Type.Unknown()),
    allowed: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(FieldProblemSchema, { description: 'FC_ERR_INVALID_FIELD: every invalid field.' })),
  },
  { additionalProperties: true, description: 'An RFC 7807 problem (application/problem+json); some codes add fields (app, host, container, ...).' },
);

/** An app as reads show it: every field but the secrets' values, which are write-only. */
export const AppSchema = Type.Composite(
  [
    Type.Omit(AppSpecSchema, ['secrets']),
    Type.Object({
      secretKeys: Type.Array(Type.String(), { description: 'The keys of the app\'s secrets, sorted; their values are never answered.' }),
      rev: Type.Integer({ description: 'CMDB revision of the last write.' }),
      createdAt: ms('When created'),
      updatedAt: ms('When last changed'),
    }),
  ],
  { additionalProperties: false, description: 'An app as the CoreAPI shows it (secrets by key only).' },
);

export const ContainerEntrySchema = Type.Object(
  {
    id: Type.String(),
    app: Type.String(),
    host: Type.String({ description: 'The compute host whose dispatcher runs it.' }),
    state: Type.Union([Type.Literal('registered'), Type.Literal('starting'), Type.Literal('ready'), Type.Literal('draining'), Type.Literal('gone')], {
      description: 'registered (wanted, not started), starting, ready (serving), draining (no new requests; then removed), gone.',
    }),
    address: orNull(Type.String(), 'host:port the dispatcher forwards to, once started.'),
    runtimeId: orNull(Type.String(), 'The engine\'s container id.'),
    image: orNull(Type.String(), 'The image it was started from.'),
    cpus: orNull(Type.Number(), 'Its CPU quota, cores.'),
    cpusSetAt: Type.Optional(msOrNull('When its quota was last set by hand')),
    createdAt: ms('When registered'),
    startedAt: msOrNull('When its start began'),
    readyAt: msOrNull('When it became ready'),
    expiresAt: msOrNull('When its lifespan ends'),
    frozenAt: msOrNull('Since when it is frozen'),
    lastError: orNull(Type.String(), 'Why its last start failed.'),
    lastErrorCode: orNull(Type.String(), 'The code of that failure.'),
    retryAt: msOrNull('No new start before then'),
    rev: Type.Integer(),
  },
  { description: 'A container entry: one per container that exists or is wanted. (The CMDB also keeps a digest of the spec it started from, which covers secret values: never answered.)' },
);

export const ContainerStatsSchema = Type.Object(
  {
    id: Type.String(),
    app: Type.String(),
    host: Type.String(),
    cpus: Type.Number({ description: 'Current CPU quota, cores.' }),
    inflight: Type.Integer(),
    held: Type.Integer({ description: 'Requests held while it starts or thaws.' }),
    rps: Type.Number({ description: 'Requests per second over the last 10 s.' }),
    meanMs: orNull(Type.Number(), 'Mean latency over the last 10 s, ms; null without requests.'),
    p95Ms: orNull(Type.Number(), '95th percentile latency over the last 10 s, ms.'),
    throttledShare: orNull(Type.Number(), 'Share of CFS periods throttled over the last ~2 s.'),
    cpuUsage: orNull(Type.Number(), 'Cores used over the last ~2 s.'),
    lastRequestAt: msOrNull('Its last request'),
    at: ms('When sampled'),
  },
  { description: 'A running container\'s load as its dispatcher last measured it.' },
);

export const ListedContainerSchema = Type.Composite([ContainerEntrySchema, Type.Object({ stats: orNull(ContainerStatsSchema, 'Its dispatcher\'s latest stats; null when none are fresh.') })], {
  description: 'A container entry with its latest stats.',
});

export const ContainerListSchema = Type.Object({ now: ms('The CoreAPI\'s time'), containers: Type.Array(ListedContainerSchema) });

export const ComputeHostSchema = Type.Object({
  id: Type.String(),
  dispatcherUrl: Type.String(),
  capacity: Type.Integer({ description: 'Live containers this host takes.' }),
  startedAt: ms('When its dispatcher started'),
  heartbeatAt: ms('Its last heartbeat'),
  drainedAt: Type.Optional(msOrNull('Since when the operator drains it')),
  rev: Type.Integer(),
});

export const HostViewSchema = Type.Composite(
  [
    ComputeHostSchema,
    Type.Object({
      live: Type.Boolean({ description: 'Sent a heartbeat within FC_HOST_TIMEOUT.' }),
      schedulable: Type.Boolean({ description: 'Takes new containers: live and not drained.' }),
      containers: Type.Integer({ description: 'Its container entries that are not gone.' }),
    }),
  ],
  { description: 'A compute host (one per dispatcher).' },
);

export const AppEventSchema = Type.Object(
  {
    at: ms('When'),
    app: Type.String(),
    kind: Type.Union([
      Type.Literal('scale-up'), Type.Literal('scale-down'), Type.Literal('scale-out'), Type.Literal('scale-in'), Type.Literal('replace'), Type.Literal('ready'),
      Type.Literal('start-failed'), Type.Literal('drain'), Type.Literal('died'), Type.Literal('manual'), Type.Literal('freeze'), Type.Literal('thaw'),
    ]),
    container: orNull(Type.String(), 'The entry, when the event is about one container.'),
    host: orNull(Type.String(), 'Its host.'),
    reason: Type.String({ description: 'Why, in words.' }),
    from: orNull(Type.Number(), 'Quota changes: cores before; scale-out/in: live containers before.'),
    to: orNull(Type.Number(), 'After.'),
  },
  { description: 'Something that happened to an app\'s containers, and why.' },
);

export const ScaleRequestSchema = Type.Object(
  {
    containers: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000, description: 'Live containers wanted now: from the app\'s minContainers to its maxContainers.' })),
    cpus: Type.Optional(Type.Number({ minimum: 0.01, maximum: 64, description: 'CPU quota of every live container now, cores: from the app\'s cpus to its maxCpus.' })),
  },
  { additionalProperties: false, description: 'At least one of containers, cpus.' },
);

export const AddContainerRequestSchema = Type.Object(
  { host: Type.Optional(Type.String({ description: 'A live host that is not drained; absent: placed like any new container.' })) },
  { description: 'Adds one container entry to the app.' },
);

export const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  role: Type.Literal('coreapi'),
  store: Type.Union([Type.Literal('redis'), Type.Literal('memory')]),
  cmdb: Type.Object({ healthy: Type.Boolean() }),
});

export const AppListSchema = Type.Object({ apps: Type.Array(AppSchema) });
export const EventListSchema = Type.Object({ events: Type.Array(AppEventSchema) });
export const ScaleResultSchema = Type.Object({ app: Type.String(), now: ms('The CoreAPI\'s time'), containers: Type.Array(ListedContainerSchema) });
export const HostListSchema = Type.Object({ now: ms('The CoreAPI\'s time'), hosts: Type.Array(HostViewSchema) });
export const HostRemovedSchema = Type.Object({ host: HostViewSchema, removedContainers: Type.Integer() });
/** The OpenAPI document itself: an object (validated by an OpenAPI validator in the tests, not here). */
const UsageFiguresSchema = Type.Object({
  cpuSeconds: Type.Number({ description: 'CPU time the app\'s containers used (cgroup cpuacct), seconds' }),
  containerSeconds: Type.Number({ description: 'Time its containers ran, seconds' }),
  memoryLimitGiBSeconds: Type.Number({ description: 'Memory limit held over time, GiB-seconds' }),
  memoryUsedGiBSeconds: Type.Number({ description: 'Memory used over time (sampled from the cgroup), GiB-seconds' }),
  requests: Type.Integer({ description: 'Requests its containers answered' }),
  bytesIn: Type.Integer({ description: 'Request body bytes sent to its containers' }),
  bytesOut: Type.Integer({ description: 'Answer body bytes from its containers' }),
  coldStarts: Type.Integer({ description: 'Containers started for it' }),
});

export const UsageSchema = Type.Object({
  app: Type.String(),
  from: ms('Start of the range, on a minute'),
  to: ms('End of the range'),
  step: Type.Union([Type.Literal('minute'), Type.Literal('hour')]),
  totals: UsageFiguresSchema,
  series: Type.Array(Type.Composite([Type.Object({ at: ms('Start of the step') }), UsageFiguresSchema])),
}, { description: 'An app\'s usage for billing, per minute or hour, from the dispatchers\' rollup in the CMDB.' });

export const LogPageSchema = Type.Object({
  app: Type.String(),
  last: Type.Integer({ description: 'The app\'s newest line number (0: none yet); follow asks for lines after it' }),
  lines: Type.Array(Type.Object({
    seq: Type.Integer({ description: '1, 2, 3, ... per app' }),
    at: ms('When the engine received the line'),
    container: Type.String(),
    host: Type.String(),
    stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr'), Type.Literal('system')]),
    text: Type.String({ description: 'The line as printed, without its newline' }),
  })),
}, { description: 'An app\'s recent output, oldest first (kept past its containers, FC_LOG_LINES per app).' });

export const OpenApiDocumentSchema = Type.Object({ openapi: Type.String(), info: Type.Object({}), paths: Type.Object({}) }, { description: 'This document (OpenAPI 3.1).' });

/** The schemas the document names (components.schemas), by name: a schema used twice is written once. */
export const namedSchemas: Record<string, TSchema> = {
  AppSpec: AppSpecSchema,
  AppCreate: AppCreateSchema,
  AppPatch: AppPatchSchema,
  App: AppSchema,
  AppList: AppListSchema,
  ContainerEntry: ContainerEntrySchema,
  ContainerStats: ContainerStatsSchema,
  ListedContainer: ListedContainerSchema,
  ContainerList: ContainerListSchema,
  ComputeHost: ComputeHostSchema,
  HostView: HostViewSchema,
  HostList: HostListSchema,
  HostRemoved: HostRemovedSchema,
  AppEvent: AppEventSchema,
  EventList: EventListSchema,
  ScaleRequest: ScaleRequestSchema,
  ScaleResult: ScaleResultSchema,
  AddContainerRequest: AddContainerRequestSchema,
  Health: HealthSchema,
  Problem: ProblemSchema,
  FieldProblem: FieldProblemSchema,
};
