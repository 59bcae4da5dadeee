// Validation of app specs sent to the CoreAPI. The shapes come from the app's schema
// (cmdb/app-schema.ts, TypeBox, compiled once); what JSON Schema cannot say (volume roots,
// hostnames that are addresses, secrets not also in env, bounds that depend on other fields,
// "256m" and "90s" converted) is layered on as code. Every problem names the field, the value and
// what is allowed; all problems are reported at once.

import { OptionalKind, Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import {
  APP_NAME_PATTERN, AppSpecSchema, HOST_LABEL_PATTERN, MAX_MEMORY, MAX_STRING, MIN_MEMORY, WEEK_SECONDS, appFields, type AppField,
} from '../cmdb/app-schema.js';
import type { AppSpec } from '../cmdb/types.js';
import { appDefaults, defaultMaxCpus, withScalingDefaults } from '../cmdb/app-defaults.js';
import { invalidFields, type FieldProblem } from '../shared/errors.js';
import { parseVolume, rootHolding, rootsOf } from '../shared/volumes.js';

export { appDefaults, defaultMaxCpus, withScalingDefaults };

/** What the operator decided about specs: where volumes may come from (FC_VOLUME_ROOTS). */
export interface SpecRules {
  volumeRoots: readonly string[];
}

/** The spec's fields, in the order problems are reported: the schema's. */
const fields = appFields;

/** A duration with its unit, as the server's duration options take it: "500ms", "90s", "1.5m", "1h". */
export const DURATION_PATTERN = '^\\s*(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|h)\\s*$';

const LABEL = new RegExp(`^${HOST_LABEL_PATTERN}$`);
/** Names that always mean this machine: a tenant holding one would get the platform's own traffic. */
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);

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
  return h.length <= 253 && h.split('.').every((label) => LABEL.test(label)) && !LOOPBACK_NAMES.has(h) && !endsInNumber(h);
}

/**
 * Whether a URL parser takes the name for an IPv4 address (WHATWG URL "ends in a number"): its
 * last label is decimal or 0x-hex, as in 10.0.0.1, 127.1, 2130706433 or 0x7f.1. No top-level
 * domain is numeric, so such a name can only be an address (IPv6 literals fail the label rule).
 */
function endsInNumber(h: string): boolean {
  const last = h.split('.').at(-1) ?? '';
  return /^\d+$/.test(last) || /^0x[0-9a-f]*$/.test(last);
}

/** What a problem shows of a secrets map: its keys, never its values. */
function maskSecrets(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return typeof v === 'string' ? '***' : v;
  return Object.fromEntries(Object.keys(v as Record<string, unknown>).map((k) => [k, '***']));
}

type Result = { ok: true; value: unknown } | { ok: false; allowed: string };
const ok = (value: unknown): Result => ({ ok: true, value });
const bad = (allowed: string): Result => ({ ok: false, allowed });

/**
 * How one field is checked: its input shape (a TypeBox schema: the stored one unless the API takes
 * more, such as "256m" for memory), what a problem says is allowed, and the checks JSON Schema
 * cannot express, run once the shape holds (they may also normalise the value).
 */
interface FieldRule {
  input?: TSchema;
  allowed: string | ((spec: Record<string, unknown>, rules: SpecRules) => string);
  refine?: (value: never, spec: Record<string, unknown>, rules: SpecRules) => Result;
}

/** Seconds (or ms) as a number, or a duration string with its unit: "90s", "5m", "1h", "500ms". */
const durationInput = (stored: TSchema) => Type.Union([stored, Type.String({ pattern: DURATION_PATTERN, maxLength: 32 })]);

/**
 * A duration field: a number in the field's unit, or a string with a unit (as the server's own
 * duration options take), converted to the unit; it must come out whole and within range.
 */
function durationRule(min: number, max: number, unit: 's' | 'ms', nullable = false): FieldRule {
  const example = unit === 's' ? '"90s", "5m" or "1h"' : '"500ms" or "2s"';
  const allowed = `${nullable ? (unit === 's' ? 'null (the proxy\'s FC_UPSTREAM_TIMEOUT) or seconds, ' : 'null or ') : ''}an integer from ${min} to ${max} (${unit === 's' ? 'seconds' : 'milliseconds'}), or a duration such as ${example}`;
  const stored = Type.Integer({ minimum: min, maximum: max });
  return {
    input: nullable ? Type.Union([durationInput(stored), Type.Null()]) : durationInput(stored),
    allowed,
    refine: (v: number | string | null) => {
      if (typeof v !== 'string') return ok(v);
      const n = durationIn(v, unit);
      return Number.isInteger(n) && n >= min && n <= max ? ok(n) : bad(allowed);
    },
  };
}

/** "90s" in seconds (90) or ms (90000), unrounded: a part of the unit (0.5s as seconds) is refused, not rounded. */
function durationIn(raw: string, unit: 's' | 'ms'): number {
  const m = new RegExp(DURATION_PATTERN).exec(raw);
  if (m === null) return Number.NaN;
  const ms = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  // Exact for the decimals a person writes: 1.5m is 90 s, 0.1s is 100 ms.
  const [whole, frac = ''] = (m[1] as string).split('.');
  const scaled = (Number(whole) * ms) + (frac === '' ? 0 : (Number(frac) * ms) / 10 ** frac.length);
  return unit === 's' ? scaled / 1000 : scaled;
}

const envAllowed = `an object of at most 128 string values without NUL, each at most ${MAX_STRING} characters, whose keys match [A-Za-z_][A-Za-z0-9_]*`;

function volumesAllowed(spec: Record<string, unknown>, rules: SpecRules): string {
  const roots = rootsOf(rules.volumeRoots, typeof spec.name === 'string' && NAME.test(spec.name) ? spec.name : '<app>');
  const where = roots.length === 0 ? 'none: this installation allows no volumes (FC_VOLUME_ROOTS)' : `host paths under ${roots.join(' or ')}`;
  return `a list of at most 16 bind mounts "/host/path:/container/path[:ro|rw]", both absolute and normal (no "..", ".", "//" or trailing "/"), with ${where}`;
}
const NAME = new RegExp(APP_NAME_PATTERN);

const maxOf = (spec: Record<string, unknown>) => (typeof spec.maxContainers === 'number' ? spec.maxContainers : appDefaults.maxContainers);
const cpusOf = (spec: Record<string, unknown>) => (typeof spec.cpus === 'number' ? spec.cpus : appDefaults.cpus);
const cores = (v: number) => Math.round(v * 1000) / 1000;

const fieldRules: Record<AppField, FieldRule> = {
  name: { allowed: '1-63 lower-case letters, digits and inner hyphens, e.g. "my-blog"' },
  hostnames: {
    // Taken as given, then trimmed, lower-cased and without a trailing dot before the rules apply.
    input: Type.Array(Type.String({ maxLength: 300 }), { minItems: 1, maxItems: 32 }),
    allowed: 'a list of 1-32 distinct host names such as "blog.example.com" (no port, no wildcard, not localhost, not an IP address)',
    refine: (v: string[]) => {
      const names = v.map((h) => h.trim().toLowerCase().replace(/\.$/, ''));
      return names.every(isHostname) && new Set(names).size === names.length ? ok(names) : bad(fieldRules.hostnames.allowed as string);
    },
  },
  image: { allowed: 'a Docker image reference such as "fastcontainer/php" or "repo/app:1.2"' },
  port: { allowed: 'an integer from 1 to 65535' },
  command: { allowed: `null (the image's own command) or a list of 1-64 strings without NUL, each at most ${MAX_STRING} characters, e.g. ["php", "-S", "0.0.0.0:8080"]` },
  env: { allowed: envAllowed },
  secrets: {
    allowed: `${envAllowed} and are not also in env; on a change, a key set to null removes that secret`,
    refine: (v: Record<string, string>, spec) => {
      const env = spec.env !== null && typeof spec.env === 'object' ? (spec.env as Record<string, unknown>) : {};
      return Object.keys(v).some((k) => Object.hasOwn(env, k)) ? bad(fieldRules.secrets.allowed as string) : ok(v);
    },
  },
  volumes: {
    allowed: volumesAllowed,
    refine: (v: string[], spec, rules) => {
      const roots = rootsOf(rules.volumeRoots, typeof spec.name === 'string' && NAME.test(spec.name) ? spec.name : '<app>');
      for (const x of v) {
        const vol = parseVolume(x);
        if (vol === undefined || rootHolding(vol.host, roots) === undefined) return bad(volumesAllowed(spec, rules));
      }
      return ok(v);
    },
  },
  cpus: { allowed: 'a number of CPU cores from 0.01 to 64, e.g. 0.3', refine: (v: number) => ok(cores(v)) },
  memory: {
    input: Type.Union([Type.Integer(), Type.String({ maxLength: 64 })]),
    allowed: 'bytes (an integer) or a string such as "256m" or "1g", from 6m to 256g',
    refine: (v: number | string) => {
      const bytes = parseMemory(v);
      return bytes !== undefined && bytes >= MIN_MEMORY && bytes <= MAX_MEMORY ? ok(bytes) : bad(fieldRules.memory.allowed as string);
    },
  },
  lifespan: durationRule(1, WEEK_SECONDS, 's'),
  minContainers: {
    allowed: (spec) => `an integer from 0 to maxContainers (${maxOf(spec)})`,
    refine: (v: number, spec) => (v <= maxOf(spec) ? ok(v) : bad(`an integer from 0 to maxContainers (${maxOf(spec)})`)),
  },
  maxContainers: { allowed: 'an integer from 1 to 1000' },
  readinessPath: { allowed: 'null or a path of visible ASCII starting with "/", at most 1024 characters, e.g. "/healthz"' },
  maxCpus: {
    // Its lower bound is cpus (refine): with a bad cpus, only cpus is reported.
    input: Type.Number({ maximum: 64 }),
    allowed: (spec) => `a number of CPU cores from cpus (${cpusOf(spec)}) to 64; equal to cpus turns scale-up off`,
    refine: (v: number, spec) => (v >= cpusOf(spec) ? ok(cores(v)) : bad(`a number of CPU cores from cpus (${cpusOf(spec)}) to 64; equal to cpus turns scale-up off`)),
  },
  latencyTargetMs: durationRule(1, 600_000, 'ms'),
  idleTimeout: durationRule(1, WEEK_SECONDS, 's'),
  autoscale: { allowed: 'true or false' },
  freezeAfter: durationRule(0, WEEK_SECONDS, 's'),
  user: {
    allowed: 'null (the image\'s user, never root unless the operator allows it for the image) or a numeric "uid" or "uid:gid", not 0, e.g. "1000" or "1000:1000"',
    refine: (v: string | null) => {
      const id = (s: string | undefined) => s === undefined || (Number(s) >= 1 && Number(s) <= 4_294_967_294);
      const [uid, gid] = v === null ? [] : v.split(':');
      return v === null || (id(uid) && id(gid)) ? ok(v) : bad(fieldRules.user.allowed as string);
    },
  },
  readOnlyRootfs: { allowed: 'true (the container\'s root file system is read-only; /tmp and /run are empty tmpfs) or false' },
  upstreamTimeout: durationRule(1, 3600, 's', true),
  maxConcurrency: { allowed: 'null (the proxy\'s FC_APP_CONCURRENCY) or an integer from 1 to 65536' },
  egress: { allowed: '"open" (the internet reachable, the default) or "closed" (only the services the operator lists for the app)' },
  httpsRedirect: { allowed: 'true (plain http:// requests are redirected to https:// with 308; needs the proxy\'s HTTPS listener, FC_TLS_DIR) or false' },
};

/** The shape each field takes in a request: the stored schema unless its rule takes more. */
const inputSchemas = Object.fromEntries(fields.map((f) => [f, fieldRules[f].input ?? unwrapOptional(AppSpecSchema.properties[f])])) as Record<AppField, TSchema>;
const compiled = Object.fromEntries(fields.map((f) => [f, TypeCompiler.Compile(inputSchemas[f])])) as Record<AppField, TypeCheck<TSchema>>;

/** A field's schema without TypeBox's optional mark (required-ness is the request's business). */
function unwrapOptional(t: TSchema): TSchema {
  const { [OptionalKind]: _optional, ...rest } = t as TSchema & { [OptionalKind]?: unknown };
  return rest as TSchema;
}

function check(field: AppField, value: unknown, spec: Record<string, unknown>, rules: SpecRules): Result {
  const rule = fieldRules[field];
  if (!compiled[field].Check(value)) return bad(typeof rule.allowed === 'string' ? rule.allowed : rule.allowed(spec, rules));
  return rule.refine === undefined ? ok(value) : rule.refine(value as never, spec, rules);
}

/** Every field as a new app may give it: name, hostnames and image required, the rest defaulted. */
export const AppCreateSchema = Type.Object(
  Object.fromEntries(fields.map((f) => [f, ['name', 'hostnames', 'image'].includes(f) ? describe(f) : Type.Optional(describe(f))])) as Record<AppField, TSchema>,
  { additionalProperties: false, description: 'A new app: name, hostnames and image are required; the other fields default.' },
);

/** A change: any fields but name (which must stay); secrets merge key by key, a null removes one. */
export const AppPatchSchema = Type.Object(
  Object.fromEntries(
    fields.map((f) => [f, Type.Optional(f === 'secrets'
      ? Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.Union([Type.String({ maxLength: MAX_STRING, pattern: '^[^\\u0000]*$' }), Type.Null()]), { maxProperties: 128, additionalProperties: false, description: 'Secrets to set (a string) or remove (null); those not named stay.' })
      : describe(f))]),
  ) as Record<AppField, TSchema>,
  { additionalProperties: false, description: 'A change to an app: the fields given replace the current ones; name cannot change.' },
);

/** A field's input schema with the stored one's description. */
function describe(f: AppField): TSchema {
  const description = (AppSpecSchema.properties[f] as { description?: string }).description;
  return { ...inputSchemas[f], ...(description === undefined ? {} : { description }) } as TSchema;
}

function asObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidFields([{ field: '(body)', value: body, allowed: 'a JSON object with the app\'s fields' }]);
  }
  return body as Record<string, unknown>;
}

function unknownFields(body: Record<string, unknown>): FieldProblem[] {
  return Object.keys(body)
    .filter((k) => !(fields as readonly string[]).includes(k))
    .map((k) => ({ field: k, value: body[k], allowed: `no such field; the fields are ${fields.join(', ')}${k === 'secretKeys' ? ' (secretKeys is what reads show of secrets; set them with "secrets")' : ''}` }));
}

/**
 * A change's secrets merged into the current ones (RFC 7396 style): a key with a string sets
 * that secret, a key with null removes it, keys not named stay. A client cannot read secrets
 * back, so a change must not need them all.
 */
function mergeSecrets(current: Record<string, string>, change: unknown): unknown {
  if (change === null || typeof change !== 'object' || Array.isArray(change)) return change;
  // A Map, not assignments: a key named __proto__ is a key like any other here.
  const out = new Map<string, unknown>(Object.entries(current));
  for (const [k, v] of Object.entries(change as Record<string, unknown>)) {
    if (v === null) out.delete(k);
    else out.set(k, v);
  }
  return Object.fromEntries(out);
}

function validate(candidate: Record<string, unknown>, problems: FieldProblem[], rules: SpecRules): AppSpec {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    const value = candidate[field];
    if (value === undefined) {
      const { allowed } = fieldRules[field];
      problems.push({ field, value: null, allowed: `required: ${typeof allowed === 'string' ? allowed : allowed(candidate, rules)}` });
      continue;
    }
    const result = check(field, value, candidate, rules);
    if (result.ok) out[field] = result.value;
    else problems.push({ field, value: field === 'secrets' ? maskSecrets(value) : value, allowed: result.allowed });
  }
  if (problems.length > 0) throw invalidFields(problems);
  return out as unknown as AppSpec;
}

/** A new app: name, hostnames and image are required, the rest defaults. */
export function parseNewApp(body: unknown, rules: SpecRules): AppSpec {
  const b = asObject(body);
  const problems = unknownFields(b);
  const candidate: Record<string, unknown> = { ...appDefaults };
  for (const [k, v] of Object.entries(b)) if (v !== undefined) candidate[k] = v;
  if (b.maxCpus === undefined && typeof candidate.cpus === 'number') candidate.maxCpus = defaultMaxCpus(candidate.cpus);
  return validate(candidate, problems, rules);
}

/**
 * A change to an app: the fields given replace the current ones (secrets merge key by key, see
 * mergeSecrets); the name cannot change.
 */
export function parseAppPatch(current: AppSpec, body: unknown, rules: SpecRules): AppSpec {
  const b = asObject(body);
  const problems = unknownFields(b);
  if (b.name !== undefined && b.name !== current.name) problems.push({ field: 'name', value: b.name, allowed: `"${current.name}" (an app cannot be renamed)` });
  // Apps stored before the front-door fields existed have none: null, the proxy's defaults.
  const candidate: Record<string, unknown> = { upstreamTimeout: null, maxConcurrency: null, httpsRedirect: false, ...withScalingDefaults(current) };
  // Apps stored before `egress` existed have none: open.
  candidate.egress ??= appDefaults.egress;
  for (const [k, v] of Object.entries(b)) if (v !== undefined && (fields as readonly string[]).includes(k)) candidate[k] = v;
  if (b.secrets !== undefined) candidate.secrets = mergeSecrets(withScalingDefaults(current).secrets, b.secrets);
  // Raising cpus past the old ceiling lifts the ceiling with it, unless the change names one.
  if (b.maxCpus === undefined && typeof candidate.cpus === 'number' && typeof candidate.maxCpus === 'number' && candidate.maxCpus < candidate.cpus) {
    candidate.maxCpus = candidate.cpus;
  }
  return validate(candidate, problems, rules);
}

/** What a read of an app shows: every field but the secrets' values (their keys, as secretKeys). */
export function publicApp<T extends AppSpec>(app: T): Omit<T, 'secrets'> & { secretKeys: string[] } {
  const { secrets, ...rest } = app;
  return { ...rest, secretKeys: Object.keys(secrets ?? {}).sort() };
}

/** The spec part of a stored app. */
export function specOf(app: AppSpec): AppSpec {
  const out: Record<string, unknown> = {};
  const full = withScalingDefaults(app);
  for (const f of fields) out[f] = full[f] ?? null;
  return out as unknown as AppSpec;
}
