// Validation of app specs sent to the CoreAPI. Every problem names the field, the value and what
// is allowed; all problems are reported at once.

import path from 'node:path';
import type { AppSpec } from '../cmdb/types.js';
import { appDefaults, defaultMaxCpus, withScalingDefaults } from '../cmdb/app-defaults.js';
import { invalidFields, type FieldProblem } from '../shared/errors.js';

export { appDefaults, defaultMaxCpus, withScalingDefaults };

const fields = ['name', 'hostnames', 'image', 'port', 'command', 'env', 'volumes', 'cpus', 'memory', 'lifespan', 'minContainers', 'maxContainers', 'readinessPath', 'maxCpus', 'latencyTargetMs', 'idleTimeout', 'autoscale', 'freezeAfter', 'egress'] as const;

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]{0,254}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MIN_MEMORY = 6 * 1024 * 1024;
const MAX_MEMORY = 256 * 1024 ** 3;

/** "256m", "1g", "512k", "1048576" or a number, to bytes. */
export function parseMemory(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)(?:i?b)?$/i.exec(value.trim());
  if (m === null) return undefined;
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * unit);
}

function isHostname(h: string): boolean {
  return h.length <= 253 && h.split('.').every((label) => LABEL.test(label));
}

/** `host:container[:ro|rw]`, both absolute, no `..`. */
function isVolume(v: string): boolean {
  const parts = v.split(':');
  if (parts.length < 2 || parts.length > 3) return false;
  const [host, container, mode] = parts as [string, string, string | undefined];
  const clean = (p: string) => path.isAbsolute(p) && !p.split('/').includes('..');
  return clean(host) && clean(container) && (mode === undefined || mode === 'ro' || mode === 'rw');
}

type Checker = (value: unknown, spec: Record<string, unknown>) => { ok: true; value: unknown } | { ok: false; allowed: string };

const ok = (value: unknown) => ({ ok: true as const, value });
const bad = (allowed: string) => ({ ok: false as const, allowed });

function intIn(min: number, max: number): Checker {
  return (v) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? ok(v) : bad(`an integer from ${min} to ${max}`));
}

const checkers: Record<(typeof fields)[number], Checker> = {
  name: (v) => (typeof v === 'string' && NAME.test(v) ? ok(v) : bad('1-63 lower-case letters, digits and inner hyphens, e.g. "my-blog"')),
  hostnames: (v) => {
    const allowed = 'a list of 1-32 distinct host names such as "blog.example.com" (no port, no wildcard)';
    if (!Array.isArray(v) || v.length === 0 || v.length > 32) return bad(allowed);
    const names = v.map((h) => (typeof h === 'string' ? h.trim().toLowerCase().replace(/\.$/, '') : ''));
    if (!names.every(isHostname) || new Set(names).size !== names.length) return bad(allowed);
    return ok(names);
  },
  image: (v) => (typeof v === 'string' && IMAGE.test(v) ? ok(v) : bad('a Docker image reference such as "fastcontainer/php" or "repo/app:1.2"')),
  port: intIn(1, 65535),
  command: (v) =>
    v === null || (Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every((a) => typeof a === 'string'))
      ? ok(v)
      : bad('null (the image\'s own command) or a list of 1-64 strings, e.g. ["php", "-S", "0.0.0.0:8080"]'),
  env: (v) => {
    const allowed = 'an object of at most 128 string values whose keys match [A-Za-z_][A-Za-z0-9_]*';
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return bad(allowed);
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length <= 128 && entries.every(([k, val]) => ENV_KEY.test(k) && typeof val === 'string') ? ok(v) : bad(allowed);
  },
  volumes: (v) =>
    Array.isArray(v) && v.length <= 16 && v.every((x) => typeof x === 'string' && isVolume(x))
      ? ok(v)
      : bad('a list of at most 16 Docker-style bind mounts "/host/path:/container/path[:ro|rw]", both absolute'),
  cpus: (v) => (typeof v === 'number' && Number.isFinite(v) && v >= 0.01 && v <= 64 ? ok(Math.round(v * 1000) / 1000) : bad('a number of CPU cores from 0.01 to 64, e.g. 0.3')),
  memory: (v) => {
    const bytes = parseMemory(v);
    return bytes !== undefined && bytes >= MIN_MEMORY && bytes <= MAX_MEMORY ? ok(bytes) : bad('bytes (an integer) or a string such as "256m" or "1g", from 6m to 256g');
  },
  lifespan: intIn(1, 7 * 24 * 3600),
  minContainers: (v, spec) => {
    const max = typeof spec.maxContainers === 'number' ? spec.maxContainers : appDefaults.maxContainers;
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max ? ok(v) : bad(`an integer from 0 to maxContainers (${max})`);
  },
  maxContainers: intIn(1, 1000),
  maxCpus: (v, spec) => {
    const cpus = typeof spec.cpus === 'number' ? spec.cpus : appDefaults.cpus;
    return typeof v === 'number' && Number.isFinite(v) && v >= cpus && v <= 64
      ? ok(Math.round(v * 1000) / 1000)
      : bad(`a number of CPU cores from cpus (${cpus}) to 64; equal to cpus turns scale-up off`);
  },
  latencyTargetMs: intIn(1, 600_000),
  idleTimeout: intIn(1, 7 * 24 * 3600),
  autoscale: (v) => (typeof v === 'boolean' ? ok(v) : bad('true or false')),
  freezeAfter: intIn(0, 7 * 24 * 3600),
  egress: (v) => (v === 'open' || v === 'closed' ? ok(v) : bad('"open" (the internet reachable, the default) or "closed" (only the services the operator lists for the app)')),
  readinessPath: (v) => (v === null || (typeof v === 'string' && v.startsWith('/') && v.length <= 1024 && !/\s/.test(v)) ? ok(v) : bad('null or a path starting with "/", e.g. "/healthz"')),
};

function asObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidFields([{ field: '(body)', value: body, allowed: 'a JSON object with the app\'s fields' }]);
  }
  return body as Record<string, unknown>;
}

function unknownFields(body: Record<string, unknown>): FieldProblem[] {
  return Object.keys(body)
    .filter((k) => !(fields as readonly string[]).includes(k))
    .map((k) => ({ field: k, value: body[k], allowed: `no such field; the fields are ${fields.join(', ')}` }));
}

function validate(candidate: Record<string, unknown>, problems: FieldProblem[]): AppSpec {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const value = candidate[field];
    if (value === undefined) {
      const rule = checkers[field](undefined, candidate);
      problems.push({ field, value: null, allowed: `required: ${rule.ok ? 'a value' : rule.allowed}` });
      continue;
    }
    const result = checkers[field](value, candidate);
    if (result.ok) out[field] = result.value;
    else problems.push({ field, value, allowed: result.allowed });
  }
  if (problems.length > 0) throw invalidFields(problems);
  return out as unknown as AppSpec;
}

/** A new app: name, hostnames and image are required, the rest defaults. */
export function parseNewApp(body: unknown): AppSpec {
  const b = asObject(body);
  const problems = unknownFields(b);
  const candidate: Record<string, unknown> = { ...appDefaults };
  for (const [k, v] of Object.entries(b)) if (v !== undefined) candidate[k] = v;
  if (b.maxCpus === undefined && typeof candidate.cpus === 'number') candidate.maxCpus = defaultMaxCpus(candidate.cpus);
  return validate(candidate, problems);
}

/** A change to an app: the fields given replace the current ones; the name cannot change. */
export function parseAppPatch(current: AppSpec, body: unknown): AppSpec {
  const b = asObject(body);
  const problems = unknownFields(b);
  if (b.name !== undefined && b.name !== current.name) problems.push({ field: 'name', value: b.name, allowed: `"${current.name}" (an app cannot be renamed)` });
  const candidate: Record<string, unknown> = { ...withScalingDefaults(current) };
  // Apps stored before `egress` existed have none: open.
  candidate.egress ??= appDefaults.egress;
  for (const [k, v] of Object.entries(b)) if (v !== undefined && (fields as readonly string[]).includes(k)) candidate[k] = v;
  // Raising cpus past the old ceiling lifts the ceiling with it, unless the change names one.
  if (b.maxCpus === undefined && typeof candidate.cpus === 'number' && typeof candidate.maxCpus === 'number' && candidate.maxCpus < candidate.cpus) {
    candidate.maxCpus = candidate.cpus;
  }
  return validate(candidate, problems);
}

/** The spec part of a stored app. */
export function specOf(app: AppSpec): AppSpec {
  const out: Record<string, unknown> = {};
  const full = withScalingDefaults(app);
  for (const f of fields) out[f] = full[f];
  return out as unknown as AppSpec;
}
