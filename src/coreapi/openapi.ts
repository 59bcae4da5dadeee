// The CoreAPI's OpenAPI 3.1 document, built from its route table (api.ts: method, path, whether it
// writes, and each route's RouteDoc) and the TypeBox schemas the routes name (schemas.ts), so that
// what is documented is what is served. Served at GET /v1/openapi.json, open like /healthz: it
// describes the API's surface, not its data.

import type { TSchema } from '@sinclair/typebox';
import { errorCatalog, type ErrorCode } from '../shared/errors.js';
import { namedSchemas } from './schemas.js';

/** What the document says of one route; given as the 5th argument of CoreApi's add(). */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** Query parameters, by name. */
  query?: Record<string, { schema: TSchema; description: string }>;
  /** The JSON request body's schema. */
  body?: TSchema;
  /** Answers other than problems, by status. contentType defaults to application/json. */
  responses: Record<number, { description: string; schema?: TSchema; contentType?: string }>;
  /** Problems this route may answer beyond those every route of its kind may (auth, bad JSON, ...). */
  errors?: ErrorCode[];
}

export interface RouteInfo {
  method: string;
  /** The route's path as registered: /v1/apps/:name. */
  name: string;
  write: boolean;
  /** Open to anyone (no token). */
  open: boolean;
  doc?: RouteDoc;
}

const PROBLEM_REF = { $ref: '#/components/schemas/Problem' };

/** `/v1/apps/:name` in OpenAPI's form: `/v1/apps/{name}`. */
export function openApiPath(name: string): string {
  return name.replace(/:([a-z]+)/gi, '{$1}');
}

/**
 * The schema as plain JSON Schema: TypeBox's own marks (symbols) dropped, and every schema that
 * has a name in namedSchemas, other than `self`, written as a $ref to it.
 */
function toJsonSchema(schema: unknown, refs: Map<unknown, string>, self?: unknown): unknown {
  if (schema !== self && refs.has(schema)) return { $ref: `#/components/schemas/${refs.get(schema) as string}` };
  if (Array.isArray(schema)) return schema.map((x) => toJsonSchema(x, refs));
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, toJsonSchema(v, refs)]));
}

/** The problems a route may answer: those every route of its kind may, and its own. */
function problemsOf(route: RouteInfo): ErrorCode[] {
  const codes = new Set<ErrorCode>(route.doc?.errors ?? []);
  if (!route.open) codes.add('FC_ERR_UNAUTHORIZED');
  if (route.write) codes.add('FC_ERR_FORBIDDEN');
  if (route.doc?.body !== undefined) for (const c of ['FC_ERR_INVALID_JSON', 'FC_ERR_BODY_TOO_LARGE', 'FC_ERR_INVALID_FIELD'] as const) codes.add(c);
  if (route.name.includes(':') || route.doc?.query !== undefined) codes.add('FC_ERR_INVALID_FIELD');
  codes.add('FC_ERR_INTERNAL');
  return [...codes];
}

export interface OpenApiResult {
  document: Record<string, unknown>;
  /** Routes registered without a RouteDoc ("METHOD /path"): the tests want none. */
  undocumented: string[];
}

export function openApiDocument(routes: readonly RouteInfo[]): OpenApiResult {
  const refs = new Map<unknown, string>(Object.entries(namedSchemas).map(([name, s]) => [s, name]));
  const paths: Record<string, Record<string, unknown>> = {};
  const undocumented: string[] = [];
  for (const route of routes) {
    const doc = route.doc;
    if (doc === undefined) undocumented.push(`${route.method} ${route.name}`);
    const path = openApiPath(route.name);
    const parameters: unknown[] = [...route.name.matchAll(/:([a-z]+)/gi)].map((m) => ({
      name: m[1], in: 'path', required: true, schema: { type: 'string' }, description: `The ${m[1] === 'name' ? 'app\'s name' : m[1] === 'id' ? (route.name.startsWith('/v1/hosts') ? 'host\'s id' : 'container entry\'s id') : m[1]}, percent-encoded.`,
    }));
    for (const [name, q] of Object.entries(doc?.query ?? {})) parameters.push({ name, in: 'query', required: false, schema: toJsonSchema(q.schema, refs), description: q.description });
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(doc?.responses ?? { 200: { description: '(undocumented)' } })) {
      responses[status] = { description: r.description, ...(r.schema === undefined ? {} : { content: { [r.contentType ?? 'application/json']: { schema: toJsonSchema(r.schema, refs) } } }) };
    }
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of problemsOf(route)) {
      const status = errorCatalog[code].status;
      byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    }
    for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
      responses[String(status)] ??= {
        description: codes.map((c) => `${c}: ${errorCatalog[c].description}`).join(' '),
        content: { 'application/problem+json': { schema: PROBLEM_REF } },
      };
    }
    const operation: Record<string, unknown> = {
      operationId: operationId(route),
      summary: doc?.summary ?? '(undocumented)',
      ...(doc?.description === undefined ? {} : { description: doc.description }),
      tags: [tagOf(route.name)],
      security: route.open ? [] : route.write ? [{ adminToken: [] }] : [{ adminToken: [] }, { readToken: [] }],
      ...(parameters.length === 0 ? {} : { parameters }),
      ...(doc?.body === undefined ? {} : { requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(doc.body, refs) } } } }),
      responses,
      ...(doc === undefined ? { 'x-undocumented': true } : {}),
    };
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  const schemas = Object.fromEntries(Object.entries(namedSchemas).map(([name, s]) => [name, toJsonSchema(s, refs, s)]));
  const document = {
    openapi: '3.1.0',
    info: {
      title: 'fastcontainer CoreAPI',
      version: '1',
      description:
        'The control plane of fastcontainer: apps (what tenants run), their container entries and events, and the compute hosts. ' +
        'Writes need the admin token, reads the read-only token or the admin token, as "Authorization: Bearer <token>"; /healthz, /metrics and this document are open. ' +
        'Errors are RFC 7807 application/problem+json with a stable code; FC_ERR_INVALID_FIELD names the field, the value and what is allowed. ' +
        'Durations of an app take a number in the field\'s unit (seconds; latencyTargetMs: milliseconds) or a string with a unit: "500ms", "90s", "5m", "1h".',
    },
    servers: [{ url: '/', description: 'The CoreAPI that serves this document (FC_API_URL; default http://127.0.0.1:8081).' }],
    tags: [...new Set(routes.map((r) => tagOf(r.name)))].map((name) => ({ name })),
    paths,
    components: {
      schemas,
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'The admin token (FC_API_TOKEN, or <state dir>/api-token): reads and writes.' },
        readToken: { type: 'http', scheme: 'bearer', description: 'The read-only token (FC_API_READ_TOKEN, or <state dir>/api-read-token): reads only.' },
      },
    },
  };
  return { document, undocumented };
}

function tagOf(name: string): string {
  const m = /^\/v1\/([a-z]+)/.exec(name);
  return m === null ? 'operations' : (m[1] as string);
}

/** getApps, postAppsScale, deleteHosts, ...: unique per method and path. */
function operationId(route: RouteInfo): string {
  const words = route.name.split('/').filter((p) => p !== '' && p !== 'v1').map((p) => (p.startsWith(':') ? `by-${p.slice(1)}` : p));
  const camel = words.join('-').replace(/[^a-z0-9]+([a-z0-9])/gi, (_m, c: string) => c.toUpperCase()).replace(/[^a-z0-9]/gi, '');
  return `${route.method.toLowerCase()}${camel.charAt(0).toUpperCase()}${camel.slice(1)}`;
}
