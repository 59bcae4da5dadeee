import { describe, expect, it } from 'vitest';
import { appDefaults, parseAppPatch, parseMemory, parseNewApp, specOf, withScalingDefaults } from '../../src/coreapi/app-spec.js';
import { FcError } from '../../src/shared/errors.js';

function problemOf(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (err) {
    if (err instanceof FcError) return err.toProblem();
    throw err;
  }
  throw new Error('expected a validation error');
}

describe('parseMemory', () => {
  it.each([
    ['256m', 256 * 1024 ** 2], ['1g', 1024 ** 3], ['512k', 512 * 1024], ['1.5g', 1.5 * 1024 ** 3], ['128MiB', 128 * 1024 ** 2],
    ['1048576', 1048576], [1048576, 1048576], ['lots', undefined], [1.5, undefined], [null, undefined],
  ] as const)('%s', (raw, want) => {
    expect(parseMemory(raw)).toBe(want);
  });
});

describe('parseNewApp', () => {
  it('fills defaults and normalises hostnames', () => {
    const spec = parseNewApp({ name: 'blog', hostnames: ['Blog.Example.com.', 'www.blog.example.com'], image: 'fastcontainer/php', memory: '64m' });
    expect(spec).toEqual({ ...appDefaults, name: 'blog', hostnames: ['blog.example.com', 'www.blog.example.com'], image: 'fastcontainer/php', memory: 64 * 1024 ** 2, maxCpus: 1 });
  });

  it('refuses duplicate hostnames after normalising', () => {
    expect(problemOf(() => parseNewApp({ name: 'a', hostnames: ['a.test', 'A.TEST'], image: 'x' }))).toMatchObject({ field: 'hostnames' });
  });

  it('needs a body that is an object', () => {
    expect(problemOf(() => parseNewApp([1, 2]))).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field: '(body)' });
  });

  it('names every missing required field', () => {
    const p = problemOf(() => parseNewApp({}));
    expect((p.errors as { field: string }[]).map((e) => e.field)).toEqual(['name', 'hostnames', 'image']);
    expect(p.detail).toContain('name: null is not allowed (allowed: required: 1-63 lower-case letters');
  });

  it('accepts the documented forms of every field', () => {
    const spec = parseNewApp({
      name: 'full', hostnames: ['full.test'], image: 'registry.local:5000/team/app:1.2', port: 3000, command: ['node', 'server.js'],
      env: { NODE_ENV: 'production', _X: '' }, volumes: ['/srv/full:/app/data', '/srv/conf:/etc/app:ro'], cpus: 0.25, memory: 100_000_000,
      lifespan: 3600, minContainers: 1, maxContainers: 10, readinessPath: '/healthz',
    });
    expect(spec).toMatchObject({ port: 3000, cpus: 0.25, minContainers: 1, readinessPath: '/healthz' });
  });
});

describe('autoscaling fields', () => {
  const base = { name: 'scaled', hostnames: ['scaled.test'], image: 'img' };
  it('defaults maxCpus to twice cpus, and takes the documented forms', () => {
    expect(parseNewApp({ ...base, cpus: 0.3 })).toMatchObject({ maxCpus: 0.6, latencyTargetMs: 500, idleTimeout: 300, autoscale: true });
    expect(parseNewApp({ ...base, cpus: 40 })).toMatchObject({ maxCpus: 64 });
    expect(parseNewApp({ ...base, cpus: 0.3, maxCpus: 0.3, latencyTargetMs: 250, idleTimeout: 30, autoscale: false }))
      .toMatchObject({ maxCpus: 0.3, latencyTargetMs: 250, idleTimeout: 30, autoscale: false });
  });
  it.each([
    ['maxCpus', 0.2, 'from cpus (0.5) to 64'], ['maxCpus', 65, 'to 64'], ['maxCpus', '1', 'from cpus'], ['maxCpus', Number.NaN, 'from cpus'],
    ['latencyTargetMs', 0, 'from 1 to 600000'], ['latencyTargetMs', 1.5, 'an integer'], ['latencyTargetMs', '500', 'an integer'],
    ['idleTimeout', 0, 'from 1 to'], ['idleTimeout', -5, 'from 1 to'], ['autoscale', 'yes', 'true or false'], ['autoscale', 1, 'true or false'],
    ['freezeAfter', -1, 'from 0 to 604800'], ['freezeAfter', 2.5, 'an integer'], ['freezeAfter', '5', 'an integer'],
  ] as const)('refuses %s = %s', (field, value, allowed) => {
    const p = problemOf(() => parseNewApp({ ...base, [field]: value }));
    expect(p).toMatchObject({ field });
    expect(String(p.detail)).toContain(allowed);
  });
  it('lifts maxCpus with cpus on a patch that does not name it, and refuses one below cpus', () => {
    const current = parseNewApp({ ...base, cpus: 0.5 });
    expect(parseAppPatch(current, { cpus: 2 })).toMatchObject({ cpus: 2, maxCpus: 2 });
    expect(parseAppPatch(current, { cpus: 0.25 })).toMatchObject({ cpus: 0.25, maxCpus: 1 });
    expect(problemOf(() => parseAppPatch(current, { cpus: 2, maxCpus: 1 }))).toMatchObject({ field: 'maxCpus' });
  });
  it('fills the fields of an app stored before they existed', () => {
    const { maxCpus: _m, latencyTargetMs: _l, idleTimeout: _i, autoscale: _a, ...old } = parseNewApp({ ...base, cpus: 0.25 });
    const full = withScalingDefaults(old as never);
    expect(full).toMatchObject({ maxCpus: 0.5, latencyTargetMs: 500, idleTimeout: 300, autoscale: true });
    expect(specOf(old as never)).toMatchObject({ maxCpus: 0.5 });
  });
});

describe('parseAppPatch', () => {
  const current = parseNewApp({ name: 'blog', hostnames: ['blog.test'], image: 'img:1', maxContainers: 3 });
  it('replaces only the given fields', () => {
    expect(parseAppPatch(current, { image: 'img:2' })).toEqual({ ...current, image: 'img:2' });
  });
  it('validates the result as a whole', () => {
    expect(problemOf(() => parseAppPatch(current, { minContainers: 4 }))).toMatchObject({ field: 'minContainers', value: 4 });
    expect(problemOf(() => parseAppPatch(current, { name: 'other' }))).toMatchObject({ field: 'name' });
  });
});

describe('egress', () => {
  const app = parseNewApp({ name: 'blog', hostnames: ['blog.test'], image: 'img:1' });
  it('is open by default and takes "closed"', () => {
    expect(app.egress).toBe('open');
    expect(parseAppPatch(app, { egress: 'closed' }).egress).toBe('closed');
  });
  it('refuses anything else, naming the field', () => {
    expect(problemOf(() => parseNewApp({ name: 'b', hostnames: ['b.test'], image: 'i', egress: 'none' }))).toMatchObject({ field: 'egress', value: 'none' });
    expect(problemOf(() => parseAppPatch(app, { egress: true }))).toMatchObject({ field: 'egress', value: true });
  });
  it('reads as open on an app stored before the field existed, and can then be changed', () => {
    const { egress: _, ...old } = app;
    expect(parseAppPatch(old, { image: 'img:2' }).egress).toBe('open');
    expect(parseAppPatch(old, { egress: 'closed' }).egress).toBe('closed');
  });
});
