// An app's defaults, where every role finds them: the CoreAPI fills them into new specs, and the
// dispatcher reads apps stored before a field existed through withScalingDefaults.

import type { AppSpec } from './types.js';

export const appDefaults = {
  port: 8080,
  command: null,
  env: {},
  secrets: {},
  volumes: [],
  cpus: 0.5,
  memory: 256 * 1024 * 1024,
  lifespan: 600,
  minContainers: 0,
  maxContainers: 4,
  readinessPath: null,
  latencyTargetMs: 500,
  idleTimeout: 300,
  autoscale: true,
  freezeAfter: 5,
  user: null,
  readOnlyRootfs: false,
  upstreamTimeout: null,
  maxConcurrency: null,
  egress: 'open',
  httpsRedirect: false,
} as const;

/** maxCpus defaults to twice cpus (the paper's scale-up: 30% to 60% of a core), at most 64. */
export function defaultMaxCpus(cpus: number): number {
  return Math.min(64, Math.round(cpus * 2 * 1000) / 1000);
}

/**
 * An app stored before the autoscaling (or secrets, user, readOnlyRootfs) fields existed, with
 * their defaults filled in. Every reader of a stored app's later fields goes through this.
 */
export function withScalingDefaults<T extends AppSpec>(app: T): T {
  if (
    app.maxCpus !== undefined && app.latencyTargetMs !== undefined && app.idleTimeout !== undefined && app.autoscale !== undefined && app.freezeAfter !== undefined &&
    app.secrets !== undefined && app.user !== undefined && app.readOnlyRootfs !== undefined
  ) return app;
  return {
    ...app,
    maxCpus: app.maxCpus ?? defaultMaxCpus(app.cpus),
    latencyTargetMs: app.latencyTargetMs ?? appDefaults.latencyTargetMs,
    idleTimeout: app.idleTimeout ?? appDefaults.idleTimeout,
    autoscale: app.autoscale ?? appDefaults.autoscale,
    freezeAfter: app.freezeAfter ?? appDefaults.freezeAfter,
    secrets: app.secrets ?? {},
    user: app.user ?? null,
    readOnlyRootfs: app.readOnlyRootfs ?? false,
  };
}

