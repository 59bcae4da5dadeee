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
    volumes: [],
    cpus: 0.5,
    memory: 128 * 1024 * 1024,
    lifespan: 600,
    minContainers: 0,
    maxContainers: 4,
    readinessPath: null,
    ...overrides,
  };
}

let seq = 0;
export function newContainer(app: string, overrides: Partial<NewContainer> = {}): NewContainer {
  seq += 1;
  return {
    id: `${app}-c${seq}`,
    app,
    host: 'host-a',
    state: 'registered',
    address: null,
    runtimeId: null,
    image: null,
    cpus: null,
    createdAt: 1_000,
    startedAt: null,
    readyAt: null,
    expiresAt: null,
    lastError: null,
    lastErrorCode: null,
    retryAt: null,
    ...overrides,
  };
}
