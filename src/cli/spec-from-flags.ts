// The bodies of `app create`, `app update` and `app scale` from their flags: only the flags given,
// numbers where they read as numbers, anything else sent as typed so the CoreAPI's answer names
// the field, the value and what it allows.

import path from 'node:path';
import { UsageError } from './usage-error.js';

/** Flag values as node:util parseArgs gives them. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** A number if it reads as one; otherwise the text, sent as is so the CoreAPI's answer names the field. */
function numberOrText(raw: string): number | string {
  const n = Number(raw);
  return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
}

/** The app spec described by `app create` flags. */
export function specFromFlags(name: string | undefined, values: Values): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  if (name !== undefined) spec.name = name;
  if (Array.isArray(values.hostname)) spec.hostnames = values.hostname;
  if (typeof values.image === 'string') spec.image = values.image;
  const numbers: [string, string][] = [
    ['port', 'port'], ['cpus', 'cpus'], ['lifespan', 'lifespan'], ['min', 'minContainers'], ['max', 'maxContainers'],
    ['max-cpus', 'maxCpus'], ['latency-target', 'latencyTargetMs'], ['idle-timeout', 'idleTimeout'], ['freeze-after', 'freezeAfter'],
    ['upstream-timeout', 'upstreamTimeout'], ['max-concurrency', 'maxConcurrency'],
  ];
  for (const [flag, field] of numbers) {
    const raw = values[flag];
    if (typeof raw === 'string') spec[field] = numberOrText(raw);
  }
  if (typeof values.memory === 'string') spec.memory = numberOrText(values.memory);
  if (Array.isArray(values.env)) spec.env = pairs('--env', values.env);
  if (Array.isArray(values.secret) || Array.isArray(values['unset-secret'])) {
    const secrets: Record<string, string | null> = Array.isArray(values.secret) ? pairs('--secret', values.secret) : {};
    for (const key of Array.isArray(values['unset-secret']) ? values['unset-secret'] : []) {
      if (name !== undefined) throw new UsageError('--unset-secret is for app update (a new app has no secrets to unset)');
      secrets[key] = null;
    }
    spec.secrets = secrets;
  }
  if (Array.isArray(values.volume)) spec.volumes = values.volume.map(absoluteVolume);
  if (typeof values.user === 'string') spec.user = values.user;
  if (values['read-only-rootfs'] === true) spec.readOnlyRootfs = true;
  if (values['https-redirect'] === true) spec.httpsRedirect = true;
  if (typeof values.command === 'string') {
    const c = values.command.trim();
    spec.command = c.startsWith('[') ? (JSON.parse(c) as unknown) : c.split(/\s+/);
  }
  if (typeof values['readiness-path'] === 'string') spec.readinessPath = values['readiness-path'];
  if (typeof values.egress === 'string') spec.egress = values.egress;
  if (values['no-autoscale'] === true) {
    if (values.autoscale !== undefined) throw new UsageError('give --no-autoscale or --autoscale, not both');
    spec.autoscale = false;
  } else if (typeof values.autoscale === 'string') {
    spec.autoscale = booleanOrText(values.autoscale);
  }
  return spec;
}

/** true/false (yes/no, on/off, 1/0) if it reads as one; otherwise the text, for the CoreAPI to name. */
function booleanOrText(raw: string): boolean | string {
  const v = raw.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(v)) return true;
  if (['false', 'no', 'off', '0'].includes(v)) return false;
  return raw;
}

/** The body of `app scale`: only the flags given, numbers where they read as numbers. */
export function scaleFromFlags(values: Values): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (typeof values.containers === 'string') body.containers = numberOrText(values.containers);
  if (typeof values.cpus === 'string') body.cpus = numberOrText(values.cpus);
  if (Object.keys(body).length === 0) throw new UsageError('app scale needs --containers N and/or --cpus X');
  return body;
}

/** KEY=VALUE pairs of a repeated flag. */
function pairs(flag: string, list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of list) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`${flag} takes KEY=VALUE, not "${pair.slice(0, 40)}"`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/**
 * A volume's host path must be absolute: it names a directory on the compute hosts (under the
 * volume roots), not one where the command runs, so a relative one is refused, not guessed.
 */
function absoluteVolume(v: string): string {
  const [host] = v.split(':');
  if (host === undefined || !path.isAbsolute(host)) {
    throw new UsageError(`--volume needs an absolute host path, as the compute hosts see it (under the volume roots, FC_VOLUME_ROOTS), not "${v}"`);
  }
  return v;
}
