import { describe, expect, it } from 'vitest';
import type { AppSpec, ContainerEntry } from '../../src/cmdb/types.js';
import { parseNewApp } from '../../src/coreapi/app-spec.js';
import { isOutdated, restartFields, rolloutCandidate, specHash } from '../../src/dispatcher/rollout.js';

const app: AppSpec = parseNewApp({ name: 'blog', hostnames: ['blog.test'], image: 'img:1', env: { A: '1', B: '2' } }, { volumeRoots: [] });

describe('specHash', () => {
  it('changes with every field a container cannot take live, and only with those', () => {
    const changed: Record<(typeof restartFields)[number], unknown> = {
      image: 'img:2', command: ['x'], env: { A: '1' }, secrets: { S: 'x' }, port: 3000, volumes: ['/srv:/srv'], memory: 1 << 27, user: '1000', readOnlyRootfs: true,
    };
    for (const [field, value] of Object.entries(changed)) expect(specHash({ ...app, [field]: value }), field).not.toBe(specHash(app));
    for (const [field, value] of Object.entries({ cpus: 2, maxCpus: 4, hostnames: ['x.test'], lifespan: 5, minContainers: 1, latencyTargetMs: 9, autoscale: false })) {
      expect(specHash({ ...app, [field]: value }), field).toBe(specHash(app));
    }
  });
  it('does not depend on the order of env keys', () => {
    expect(specHash({ ...app, env: { B: '2', A: '1' } })).toBe(specHash(app));
  });
});

const entry = (id: string, o: Partial<ContainerEntry>) => ({ id, state: 'ready' as const, createdAt: 1, host: 'h1', image: 'img:1', specHash: specHash(app), ...o });

describe('rolloutCandidate', () => {
  const next = { ...app, image: 'img:2' };
  const hash = specHash(next);
  const live = (h: string) => h !== 'dead';
  it('picks the oldest ready entry on the old spec, on a live host, one at a time', () => {
    const entries = [entry('c', { createdAt: 3 }), entry('a', { createdAt: 2 }), entry('b', { createdAt: 2 }), entry('n', { createdAt: 0, image: 'img:2', specHash: hash })];
    expect(rolloutCandidate(entries, next, hash, live)).toBe('a');
    entries[1] = { ...entries[1]!, state: 'draining' as never };
    expect(rolloutCandidate(entries, next, hash, live)).toBe('b');
    expect(rolloutCandidate([entry('x', { host: 'dead' }), entry('y', { createdAt: 9 })], next, hash, live)).toBe('y');
    expect(rolloutCandidate([entry('s', { state: 'starting' as never })], next, hash, live)).toBeNull();
    expect(rolloutCandidate(entries.filter((e) => e.id === 'n'), next, hash, live)).toBeNull();
  });
  it('judges entries without a digest by their image only', () => {
    expect(isOutdated({ image: 'img:1', specHash: undefined }, next, hash)).toBe(true);
    expect(isOutdated({ image: 'img:2', specHash: undefined }, next, hash)).toBe(false);
    expect(isOutdated({ image: 'img:2', specHash: null }, next, hash)).toBe(false);
  });
});
