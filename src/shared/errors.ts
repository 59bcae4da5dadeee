// Every error the system reports has a stable code and an HTTP status. The code is what scripts
// and tests match on; the message is for people and may change. The catalog below is the single
// source of both, and the README's error table is checked against it.

export interface ErrorKind {
  readonly status: number;
  readonly title: string;
  /** True when the same request may succeed if sent again later (the answer carries Retry-After). */
  readonly retryable: boolean;
  readonly description: string;
}

export const errorCatalog = {
  FC_ERR_INVALID_FIELD: {
    status: 400,
    title: 'Invalid field',
    retryable: false,
    description: 'A request body or query field is missing, malformed or out of range; the answer names the field, the value and what is allowed.',
  },
  FC_ERR_INVALID_JSON: {
    status: 400,
    title: 'Invalid JSON',
    retryable: false,
    description: 'The request body is not a JSON object.',
  },
  FC_ERR_BODY_TOO_LARGE: {
    status: 413,
    title: 'Body too large',
    retryable: false,
    description: 'A CoreAPI request body is over 1 MiB.',
  },
  FC_ERR_UNAUTHORIZED: {
    status: 401,
    title: 'Unauthorized',
    retryable: false,
    description: 'A CoreAPI request other than /healthz, /metrics and the dashboard\'s page lacks a bearer token (or a dashboard session cookie), or the token is wrong (reads take the read or the admin token, writes the admin token).',
  },
  FC_ERR_FORBIDDEN: {
    status: 403,
    title: 'Forbidden',
    retryable: false,
    description: 'A CoreAPI write carries the read-only token; writes need the admin token.',
  },
  FC_ERR_CSRF: {
    status: 403,
    title: 'Cross-site request refused',
    retryable: false,
    description: 'A CoreAPI write authenticated by the dashboard\'s session cookie lacks the header "x-fc-csrf: 1" or comes from another origin; scripts use the bearer token instead.',
  },
  FC_ERR_TOO_MANY_STREAMS: {
    status: 503,
    title: 'Too many streams',
    retryable: true,
    description: 'The CoreAPI already serves FC_API_STREAMS live-update streams (GET /v1/events/stream); try again when one closes.',
  },
  FC_ERR_HOP_FORBIDDEN: {
    status: 403,
    title: 'Forbidden',
    retryable: false,
    description: 'A request reached a dispatcher without a valid proxy signature (x-fc-auth: missing, forged, for another request, or outside FC_HOP_AUTH_WINDOW); nothing was started or forwarded.',
  },
  FC_ERR_TOO_MANY_HEADERS: {
    status: 431,
    title: 'Too many headers',
    retryable: false,
    description: 'The request carries more header fields than the proxy passes on (1000).',
  },
  FC_ERR_BAD_REQUEST: {
    status: 400,
    title: 'Bad request',
    retryable: false,
    description: 'The request target or Host is unusable: more than one Host header, or a target that is neither origin form (/path) nor absolute form (http://host/path).',
  },
  FC_ERR_NOT_FOUND: {
    status: 404,
    title: 'Not found',
    retryable: false,
    description: 'No such API path.',
  },
  FC_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    title: 'Method not allowed',
    retryable: false,
    description: 'The API path exists but not for this method.',
  },
  FC_ERR_APP_NOT_FOUND: {
    status: 404,
    title: 'App not found',
    retryable: false,
    description: 'No app has this name.',
  },
  FC_ERR_APP_EXISTS: {
    status: 409,
    title: 'App exists',
    retryable: false,
    description: 'An app with this name already exists (use PATCH to change it).',
  },
  FC_ERR_HOSTNAME_TAKEN: {
    status: 409,
    title: 'Hostname taken',
    retryable: false,
    description: 'Another app already serves one of the hostnames.',
  },
  FC_ERR_CONTAINER_NOT_FOUND: {
    status: 404,
    title: 'Container not found',
    retryable: false,
    description: 'No container entry has this id.',
  },
  FC_ERR_MAX_CONTAINERS: {
    status: 409,
    title: 'Too many containers',
    retryable: false,
    description: "The app already has maxContainers live container entries.",
  },
  FC_ERR_UPGRADE_REFUSED: {
    status: 400,
    title: 'Upgrade refused',
    retryable: false,
    description: 'An HTTP Upgrade other than a WebSocket (GET with `Upgrade: websocket`) that carries a body; bodiless ones (h2c) are served as plain HTTP/1.1 requests without the upgrade.',
  },
  FC_ERR_UPGRADE_LIMIT: {
    status: 503,
    title: 'Too many WebSockets',
    retryable: true,
    description: 'The app already has FC_UPGRADE_MAX_PER_APP WebSockets open through this proxy.',
  },
  FC_ERR_UNKNOWN_HOST: {
    status: 404,
    title: 'Unknown host',
    retryable: false,
    description: 'The proxy has no app for the request\'s Host header.',
  },
  FC_ERR_APP_AT_CAPACITY: {
    status: 503,
    title: 'App at capacity',
    retryable: true,
    description: 'The proxy found none of the app\'s containers usable and cannot add one: the app already has maxContainers entries on live hosts (entries on hosts gone silent do not count).',
  },
  FC_ERR_NO_COMPUTE_HOST: {
    status: 503,
    title: 'No compute host',
    retryable: true,
    description: 'No dispatcher that takes containers has sent a heartbeat recently (or all such hosts are full or drained), so a new container has nowhere to run.',
  },
  FC_ERR_HOST_NOT_FOUND: {
    status: 404,
    title: 'Host not found',
    retryable: false,
    description: 'No compute host has this id (`fastcontainer hosts` lists them).',
  },
  FC_ERR_HOST_LIVE: {
    status: 409,
    title: 'Host is live',
    retryable: false,
    description: 'The host\'s dispatcher still sends heartbeats: removing it would evict its running containers and its next heartbeat would add it back. Drain it and stop its dispatcher first, or pass force.',
  },
  FC_ERR_LAST_HOST: {
    status: 409,
    title: 'Last schedulable host',
    retryable: false,
    description: 'Draining this host would leave no live host to place containers on: apps without a container would get 503 until a host is undrained. Pass force to drain it anyway.',
  },
  FC_ERR_CONTAINER_GONE: {
    status: 503,
    title: 'Container gone',
    retryable: true,
    description: 'The container the request was sent to is draining or removed; the proxy retries another one when the request has no body.',
  },
  FC_ERR_QUEUE_FULL: {
    status: 503,
    title: 'Queue full',
    retryable: true,
    description: 'Too many requests are already held for a container that is starting.',
  },
  FC_ERR_QUEUE_TIMEOUT: {
    status: 503,
    title: 'Start took too long',
    retryable: true,
    description: 'The container did not become ready before the held request\'s deadline.',
  },
  FC_ERR_IMAGE_NOT_FOUND: {
    status: 503,
    title: 'Image not found',
    retryable: true,
    description: 'The app\'s image is not on the compute host; build or load it there.',
  },
  FC_ERR_START_FAILED: {
    status: 503,
    title: 'Container failed to start',
    retryable: true,
    description: 'The engine refused to create or start the container, or it exited before listening; the answer carries the reason and the last log lines.',
  },
  FC_ERR_VOLUME_REFUSED: {
    status: 503,
    title: 'Volume refused',
    retryable: true,
    description: 'The dispatcher refused one of the app\'s volumes at container start: its host path does not exist (volumes are never created), or lies, once symbolic links are resolved, outside the app\'s volume roots (FC_VOLUME_ROOTS).',
  },
  FC_ERR_UPSTREAM: {
    status: 502,
    title: 'Bad gateway',
    retryable: true,
    description: 'The connection to the dispatcher or the container failed mid-request.',
  },
  FC_ERR_BODY_TIMEOUT: {
    status: 408,
    title: 'Request body timeout',
    retryable: false,
    description: 'The client sent no part of its request body for FC_BODY_TIMEOUT; the connection is closed.',
  },
  FC_ERR_BODY_TOO_SLOW: {
    status: 408,
    title: 'Request body too slow',
    retryable: false,
    description: 'A streamed request body (larger than FC_BUFFER_BODY) arrived slower than FC_BODY_MIN_RATE; the connection is closed.',
  },
  FC_ERR_REQUEST_TIMEOUT: {
    status: 408,
    title: 'Request timeout',
    retryable: false,
    description: 'The whole request body did not arrive within FC_REQUEST_TIMEOUT; the connection is closed.',
  },
  FC_ERR_UPSTREAM_TIMEOUT: {
    status: 504,
    title: 'Gateway timeout',
    retryable: false,
    description: 'The app did not start its answer within its upstream timeout (the app\'s upstreamTimeout, else FC_UPSTREAM_TIMEOUT); the request is not sent again.',
  },
  FC_ERR_APP_BUSY: {
    status: 503,
    title: 'App busy',
    retryable: true,
    description: 'The app already has its most requests in flight at this proxy (maxConcurrency, else FC_APP_CONCURRENCY) and its queue there is full (FC_APP_QUEUE) or the wait ran out (FC_APP_QUEUE_TIMEOUT).',
  },
  FC_ERR_TOO_MANY_FOLLOWERS: {
    status: 503,
    title: 'Too many log follows',
    retryable: true,
    description: 'The CoreAPI already streams its most log follows at once (100, `GET /v1/apps/:name/logs?follow=1`); reads without follow still answer.',
  },
  FC_ERR_ENGINE: {
    status: 503,
    title: 'Container engine failed',
    retryable: true,
    description: 'The container engine (Docker) failed or did not answer in time.',
  },
  FC_ERR_STORE_UNAVAILABLE: {
    status: 503,
    title: 'CMDB unavailable',
    retryable: true,
    description: 'The CMDB (Redis) did not answer within FC_CMDB_TIMEOUT (stopped, stalled, unreachable or failing over). Warm traffic is served from the caches meanwhile; what needs the CMDB (cold starts, API writes) answers this at once.',
  },
  FC_ERR_HOST_ID_TAKEN: {
    status: 409,
    title: 'Host id taken',
    retryable: false,
    description: 'Another dispatcher holds the lease on this host id in the CMDB (it renews it with its heartbeat): a second dispatcher with the same FC_HOST_ID refuses to start and touches nothing. Give each dispatcher its own id, or stop the other one.',
  },
  FC_ERR_CONFIG: {
    status: 500,
    title: 'Invalid configuration',
    retryable: false,
    description: 'An option given at start is invalid; the message names the option, the value and what is allowed.',
  },
  FC_ERR_INTERNAL: {
    status: 500,
    title: 'Internal error',
    retryable: false,
    description: 'A bug: the log has the stack.',
  },
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof errorCatalog;

export interface FieldProblem {
  field: string;
  value: unknown;
  allowed: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  [extra: string]: unknown;
}

export class FcError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown>;
  /** Seconds a client should wait before trying again; set only for retryable errors. */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FcError';
    this.code = code;
    this.status = errorCatalog[code].status;
    this.details = details;
    this.retryAfter = errorCatalog[code].retryable ? (options?.retryAfter ?? 1) : undefined;
  }

  toProblem(instance?: string): Problem {
    const kind = errorCatalog[this.code];
    return {
      type: `urn:fastcontainer:error:${this.code}`,
      title: kind.title,
      status: this.status,
      detail: this.message,
      code: this.code,
      ...(instance === undefined ? {} : { instance }),
      ...this.details,
    };
  }
}

/**
 * A value as a problem shows it back: long strings cut, deep or long lists and objects cut, so an
 * answer stays small and cheap to build whatever the request held (a 1 MiB string is shown by its
 * first 200 characters and its length).
 */
export function boundedValue(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.length <= 200 ? v : `${v.slice(0, 200)}…(${v.length} characters)`;
  if (v === null || typeof v !== 'object') return v;
  if (depth >= 4) return Array.isArray(v) ? '[…]' : '{…}';
  if (Array.isArray(v)) {
    const shown = v.slice(0, 20).map((x) => boundedValue(x, depth + 1));
    return v.length > 20 ? [...shown, `…(${v.length} items)`] : shown;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  const shown = Object.fromEntries(entries.slice(0, 20).map(([k, x]) => [k, boundedValue(x, depth + 1)]));
  return entries.length > 20 ? { ...shown, '…': `${entries.length} keys` } : shown;
}

/** One or more invalid fields: the first is also spread at the top level for simple clients. */
export function invalidFields(given: FieldProblem[]): FcError {
  const problems = given.map((p) => ({ ...p, value: boundedValue(p.value) }));
  const first = problems[0];
  if (first === undefined) throw new Error('invalidFields needs at least one problem');
  const message = problems.map(describeFieldProblem).join('; ');
  return new FcError('FC_ERR_INVALID_FIELD', message, { field: first.field, value: first.value, allowed: first.allowed, errors: problems });
}

export function describeFieldProblem(p: FieldProblem): string {
  return `${p.field}: ${JSON.stringify(p.value) ?? 'undefined'} is not allowed (allowed: ${p.allowed})`;
}

/** Wraps anything thrown into an FcError so every exit point can answer the same way. */
export function toFcError(err: unknown): FcError {
  if (err instanceof FcError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new FcError('FC_ERR_INTERNAL', message, {}, { cause: err });
}
