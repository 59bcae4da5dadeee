import { newContainerEntry } from '../../src/cmdb/placement.js';
import type { AppSpec, NewContainer } from '../../src/cmdb/types.js';

export function appSpec(overrides: Partial<AppSpec> = {}): AppSpec {
  const name = overrides.name ?? 'site';
  return {
    name,
    hostnames: [`${name}.example.test`],
    image: 'fastcontainer/hello',
    command: null,
    port: 8080,
    env: {},
    secrets: {},
    volumes: [],
    cpus: 0.5,
    memory: 128 * 1024 * 1024,
    lifespan: 600,
    minContainers: 0,
    maxContainers: 4,
    readinessPath: null,
    maxCpus: 1,
    latencyTargetMs: 500,
    idleTimeout: 300,
    autoscale: true,
    freezeAfter: 5,
    user: null,
    readOnlyRootfs: false,
    ...overrides,
  };
}

let seq = 0;
/** A registered entry of `app` on host-a, created at t=1000; overrides set anything else. */
export function newContainer(app: string, overrides: Partial<NewContainer> = {}): NewContainer {
  seq += 1;
  const stub = { ...appSpec({ name: app }), rev: 0, createdAt: 0, updatedAt: 0 };
  return { ...newContainerEntry(stub, 'host-a', 1_000, `${app}-c${seq}`), image: null, cpus: null, ...overrides };
}
