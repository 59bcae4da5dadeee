// Validation of app specs sent to the CoreAPI. Every problem names the field, the value and what
// is allowed; all problems are reported at once.

import type { AppSpec } from '../cmdb/types.js';
import { appDefaults, defaultMaxCpus, withScalingDefaults } from '../cmdb/app-defaults.js';
import { invalidFields, type FieldProblem } from '../shared/errors.js';
import { parseVolume, rootHolding, rootsOf } from '../shared/volumes.js';

export { appDefaults, defaultMaxCpus, withScalingDefaults };

const fields = ['name', 'hostnames', 'image', 'port', 'command', 'env', 'secrets', 'volumes', 'cpus', 'memory', 'lifespan', 'minContainers', 'maxContainers', 'readinessPath', 'maxCpus', 'latencyTargetMs', 'idleTimeout', 'autoscale', 'freezeAfter', 'user', 'readOnlyRootfs', 'upstreamTimeout', 'maxConcurrency', 'httpsRedirect'] as const;

/** What the operator decided about specs: where volumes may come from (FC_VOLUME_ROOTS). */
export interface SpecRules {
  volumeRoots: readonly string[];
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]{0,254}$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MIN_MEMORY = 6 * 1024 * 1024;
/**
 * Longest env value, secret or command argument. Linux refuses an exec whose single argument or
 * environment string is over 128 KiB (MAX_ARG_STRLEN): past it every start would fail.
 */
const MAX_STRING = 32 * 1024;
/** Names that always mean this machine: a tenant holding one would get the platform's own traffic. */
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback']);
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

/** A string Docker and exec can carry: no NUL (it ends a C string), at most `max` characters. */
function isCString(v: unknown, max = MAX_STRING): v is string {
  return typeof v === 'string' && v.length <= max && !v.includes('\u0000');
}

/** An object of at most 128 env-style KEY: value pairs. */
function isEnvMap(v: unknown): v is Record<string, string> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const entries = Object.entries(v as Record<string, unknown>);
  return entries.length <= 128 && entries.every(([k, val]) => ENV_KEY.test(k) && isCString(val));
}

/** What a problem shows of a secrets map: its keys, never its values. */
function maskSecrets(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return typeof v === 'string' ? '***' : v;
  return Object.fromEntries(Object.keys(v as Record<string, unknown>).map((k) => [k, '***']));
}

type Checker = (value: unknown, spec: Record<string, unknown>, rules: SpecRules) => { ok: true; value: unknown } | { ok: false; allowed: string };

const ok = (value: unknown) => ({ ok: true as const, value });
const bad = (allowed: string) => ({ ok: false as const, allowed });

function intIn(min: number, max: number): Checker {
  return (v) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? ok(v) : bad(`an integer from ${min} to ${max}`));
}

/** null, or what `check` accepts. */
function orNull(check: Checker, allowed: string): Checker {
  return (v, spec, rules) => (v === null ? ok(null) : check(v, spec, rules).ok ? check(v, spec, rules) : bad(allowed));
}

const checkers: Record<(typeof fields)[number], Checker> = {
  name: (v) => (typeof v === 'string' && NAME.test(v) ? ok(v) : bad('1-63 lower-case letters, digits and inner hyphens, e.g. "my-blog"')),
  hostnames: (v) => {
    const allowed = 'a list of 1-32 distinct host names such as "blog.example.com" (no port, no wildcard, not localhost, not an IP address)';
    if (!Array.isArray(v) || v.length === 0 || v.length > 32) return bad(allowed);
    const names = v.map((h) => (typeof h === 'string' ? h.trim().toLowerCase().replace(/\.$/, '') : ''));
    if (!names.every(isHostname) || new Set(names).size !== names.length) return bad(allowed);
    return ok(names);
  },
  image: (v) => (typeof v === 'string' && IMAGE.test(v) ? ok(v) : bad('a Docker image reference such as "fastcontainer/php" or "repo/app:1.2"')),
  port: intIn(1, 65535),
  command: (v) =>
    v === null || (Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every((a) => isCString(a)))
      ? ok(v)
      : bad(`null (the image's own command) or a list of 1-64 strings without NUL, each at most ${MAX_STRING} characters, e.g. ["php", "-S", "0.0.0.0:8080"]`),
  env: (v) =>
    isEnvMap(v) ? ok(v) : bad(`an object of at most 128 string values without NUL, each at most ${MAX_STRING} characters, whose keys match [A-Za-z_][A-Za-z0-9_]*`),
  secrets: (v, spec) => {
    const allowed = `an object of at most 128 string values without NUL, each at most ${MAX_STRING} characters, whose keys match [A-Za-z_][A-Za-z0-9_]* and are not also in env; on a change, a key set to null removes that secret`;
    if (!isEnvMap(v)) return bad(allowed);
    const env = spec.env !== null && typeof spec.env === 'object' ? (spec.env as Record<string, unknown>) : {};
    return Object.keys(v).some((k) => Object.hasOwn(env, k)) ? bad(allowed) : ok(v);
  },
  volumes: (v, spec, rules) => {
    const app = typeof spec.name === 'string' && NAME.test(spec.name) ? spec.name : '<app>';
    const roots = rootsOf(rules.volumeRoots, app);
    const where = roots.length === 0 ? 'none: this installation allows no volumes (FC_VOLUME_ROOTS)' : `host paths under ${roots.join(' or ')}`;
    const allowed = `a list of at most 16 bind mounts "/host/path:/container/path[:ro|rw]", both absolute and normal (no "..", ".", "//" or trailing "/"), with ${where}`;
    if (!Array.isArray(v) || v.length > 16) return bad(allowed);
    for (const x of v) {
      const vol = typeof x === 'string' ? parseVolume(x) : undefined;
      if (vol === undefined || rootHolding(vol.host, roots) === undefined) return bad(allowed);
    }
    return ok(v);
  },
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
  // Visible ASCII only: anything else makes the readiness request itself invalid, and every start fail.
  readinessPath: (v) => (v === null || (typeof v === 'string' && /^\/[\x21-\x7e]{0,1023}$/.test(v)) ? ok(v) : bad('null or a path of visible ASCII starting with "/", at most 1024 characters, e.g. "/healthz"')),
  user: (v) => {
    const id = (s: string | undefined) => s === undefined || (/^\d{1,10}$/.test(s) && Number(s) >= 1 && Number(s) <= 4_294_967_294);
    const [uid, gid, extra] = typeof v === 'string' ? v.split(':') : [];
    return v === null || (typeof v === 'string' && uid !== undefined && uid !== '' && id(uid) && id(gid) && extra === undefined)
      ? ok(v)
      : bad('null (the image\'s user, never root unless the operator allows it for the image) or a numeric "uid" or "uid:gid", not 0, e.g. "1000" or "1000:1000"');
  },
  readOnlyRootfs: (v) => (typeof v === 'boolean' ? ok(v) : bad('true (the container\'s root file system is read-only; /tmp and /run are empty tmpfs) or false')),
  upstreamTimeout: orNull(intIn(1, 3600), 'null (the proxy\'s FC_UPSTREAM_TIMEOUT) or seconds, an integer from 1 to 3600'),
  maxConcurrency: orNull(intIn(1, 65_536), 'null (the proxy\'s FC_APP_CONCURRENCY) or an integer from 1 to 65536'),
  httpsRedirect: (v) => (typeof v === 'boolean' ? ok(v) : bad('true (plain http:// requests are redirected to https:// with 308; needs the proxy\'s HTTPS listener, FC_TLS_DIR) or false')),
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
      const rule = checkers[field](undefined, candidate, rules);
      problems.push({ field, value: null, allowed: `required: ${rule.ok ? 'a value' : rule.allowed}` });
      continue;
    }
    const result = checkers[field](value, candidate, rules);
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
