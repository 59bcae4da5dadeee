import { describe, expect, it } from 'vitest';
import { appDefaults, parseAppPatch as parsePatch, parseMemory, parseNewApp as parseNew, publicApp, specOf, withScalingDefaults } from '../../src/coreapi/app-spec.js';
import { FcError } from '../../src/shared/errors.js';

/** The operator's rules these tests run under: volumes from /srv (any app) or /pool/<app>. */
const rules = { volumeRoots: ['/srv', '/pool/{app}'] };
const parseNewApp = (body: unknown) => parseNew(body, rules);
const parseAppPatch = (current: Parameters<typeof parsePatch>[0], body: unknown) => parsePatch(current, body, rules);

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

describe('what a tenant may ask for', () => {
  const base = { name: 'blog', hostnames: ['blog.test'], image: 'img' };
  // Roots here: /srv (shared by every app) and /pool/{app} (each app its own directory).
  it.each([
    ['/srv/site:/var/www/html:ro'], ['/pool/blog:/data'], ['/pool/blog/uploads:/var/www/html/uploads:rw'], ['/srv:/srv'],
  ])('accepts the volume %s', (v) => {
    expect(parseNewApp({ ...base, volumes: [v] }).volumes).toEqual([v]);
  });
  it.each([
    ['the host root', '/:/host:rw'], ['the Docker socket', '/var/run/docker.sock:/var/run/docker.sock'], ['/proc', '/proc:/p'], ['/etc', '/etc:/e:ro'],
    ["another tenant's directory", '/pool/shop:/var/www/html'], ["another tenant's subdirectory", '/pool/shop/db:/data'],
    ['the roots\' parent', '/pool:/pool'], ['a name sharing the prefix', '/pool/blogger:/data'], ['a path climbing out', '/pool/blog/../shop:/data'],
    ['a dot segment', '/pool/blog/./x:/data'], ['a double slash', '/pool/blog//x:/data'], ['a trailing slash', '/pool/blog/:/data'],
    ['a relative path', 'site:/var/www/html'], ['the container root', '/pool/blog:/'], ['a relative container path', '/pool/blog:data'],
    ['a NUL', '/pool/blog/a\u0000:/data'], ['a bad mode', '/pool/blog:/data:rx'], ['a fourth part', '/pool/blog:/data:ro:x'],
  ])('refuses %s as a volume', (_what, v) => {
    const p = problemOf(() => parseNewApp({ ...base, volumes: [v] }));
    expect(p).toMatchObject({ field: 'volumes', value: [v] });
    expect(String(p.allowed)).toContain('under /srv or /pool/blog');
  });
  it('allows no volume at all when the operator allows no root', () => {
    expect(problemOf(() => parseNew({ ...base, volumes: ['/srv/x:/x'] }, { volumeRoots: [] })).allowed).toContain('allows no volumes');
  });

  it.each([
    ['localhost'], ['LOCALHOST.'], ['localhost.localdomain'], ['ip6-localhost'], ['10.0.0.1'], ['127.1'], ['2130706433'], ['0x7f.1'],
    ['1.2.3.0x10'], ['[::1]'], ['::1'], ['fe80::1%eth0'], ['a..b'], ['-a.test'], ['*.example.com'], ['a.test:80'],
  ])('refuses the hostname %s', (h) => {
    expect(problemOf(() => parseNewApp({ ...base, hostnames: [h] }))).toMatchObject({ field: 'hostnames' });
  });
  it.each([['demo.localhost'], ['1.example.com'], ['123.456.example'], ['xn--bcher-kva.example'], ['a-0x7f.test']])('accepts the hostname %s', (h) => {
    expect(parseNewApp({ ...base, hostnames: [h] }).hostnames).toEqual([h]);
  });

  it.each([
    ['env', { A: 'x\u0000' }], ['env', { A: 'x'.repeat(32 * 1024 + 1) }], ['env', { 'A-B': 'x' }],
    ['command', ['sh', '\u0000']], ['command', ['x'.repeat(32 * 1024 + 1)]], ['command', []],
    ['readinessPath', '/a b'], ['readinessPath', '/ü'], ['readinessPath', `/${'a'.repeat(1024)}`], ['readinessPath', 'healthz'],
    ['port', 1e308], ['port', Number.MAX_SAFE_INTEGER + 2], ['cpus', Number.POSITIVE_INFINITY], ['memory', '99999999999999999999g'], ['memory', 1e300],
    ['maxContainers', 1e9], ['lifespan', -0.5], ['image', 'a b'], ['image', 'img\u0000'], ['image', `a${'b'.repeat(300)}`],
    ['user', '0'], ['user', '0:0'], ['user', 'root'], ['user', '1000:0'], ['user', ''], ['user', ':1000'], ['user', '1:2:3'], ['user', '4294967295'], ['user', 1000],
    ['readOnlyRootfs', 'true'], ['readOnlyRootfs', 1], ['httpsRedirect', 'yes'], ['httpsRedirect', null],
    ['secrets', { A: 1 }], ['secrets', { A: 'x\u0000' }], ['secrets', ['A']], ['secrets', { 'A B': 'x' }],
  ] as const)('refuses %s = %j', (field, value) => {
    expect(problemOf(() => parseNewApp({ ...base, [field]: value }))).toMatchObject({ field });
  });

  it('takes a non-root user and a read-only root file system', () => {
    expect(parseNewApp({ ...base, user: '1000', readOnlyRootfs: true })).toMatchObject({ user: '1000', readOnlyRootfs: true });
    expect(parseNewApp({ ...base, user: '33:33' }).user).toBe('33:33');
    expect(parseNewApp(base)).toMatchObject({ user: null, readOnlyRootfs: false, secrets: {} });
  });

  it('takes httpsRedirect, false unless asked; a patch of an app stored before the field sets it alone', () => {
    expect(parseNewApp(base).httpsRedirect).toBe(false);
    expect(parseNewApp({ ...base, httpsRedirect: true }).httpsRedirect).toBe(true);
    const { httpsRedirect: _, ...stored } = parseNewApp(base);
    expect(parseAppPatch(stored, { httpsRedirect: true }).httpsRedirect).toBe(true);
    expect(parseAppPatch(stored, { cpus: 0.5 }).httpsRedirect).toBe(false);
  });

  it('never shows a secret value in a problem', () => {
    const p = problemOf(() => parseNewApp({ ...base, env: { A: '1' }, secrets: { A: 'pa55word', B: 'x\u0000pa55word' } }));
    expect(p).toMatchObject({ field: 'secrets', value: { A: '***', B: '***' } });
    expect(JSON.stringify(p)).not.toContain('pa55word');
  });

  it('merges secrets on a change: a value sets, null removes, the rest stay', () => {
    const current = parseNewApp({ ...base, secrets: { A: '1', B: '2' } });
    expect(parseAppPatch(current, { secrets: { B: null, C: '3' } }).secrets).toEqual({ A: '1', C: '3' });
    expect(parseAppPatch(current, { cpus: 0.25 }).secrets).toEqual({ A: '1', B: '2' });
    const odd = parseAppPatch(current, JSON.parse('{"secrets": {"__proto__": "p"}}'));
    expect(Object.entries(odd.secrets)).toEqual([['A', '1'], ['B', '2'], ['__proto__', 'p']]);
    expect(problemOf(() => parseAppPatch(current, { secrets: { A: 5 } }))).toMatchObject({ field: 'secrets', value: { A: '***', B: '***' } });
  });

  it('shows an app with its secrets by key only', () => {
    const shown = publicApp(parseNewApp({ ...base, secrets: { Z: 'zz', A: 'aa' } }));
    expect(shown).toMatchObject({ secretKeys: ['A', 'Z'] });
    expect('secrets' in shown).toBe(false);
    const { secrets: _s, ...old } = parseNewApp(base);
    expect(publicApp(old as never).secretKeys).toEqual([]);
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

describe('durations: a number in the field\'s unit, or a string with a unit, as the server options take', () => {
  const base = { name: 'dur', hostnames: ['dur.test'], image: 'img' };
  it.each([
    ['lifespan', '90s', 90], ['lifespan', '10m', 600], ['lifespan', '1.5m', 90], ['lifespan', '1h', 3600], ['lifespan', 120, 120],
    ['idleTimeout', '5m', 300], ['freezeAfter', '0s', 0], ['freezeAfter', '30s', 30], ['upstreamTimeout', '2m', 120], ['upstreamTimeout', null, null],
    ['latencyTargetMs', '500ms', 500], ['latencyTargetMs', '2s', 2000], ['latencyTargetMs', 250, 250],
  ] as const)('takes %s = %j as %j', (field, value, want) => {
    expect(parseNewApp({ ...base, [field]: value })[field]).toBe(want);
  });
  it.each([
    ['lifespan', '90'], ['lifespan', '500ms'], ['lifespan', '0s'], ['lifespan', '8d'], ['lifespan', '169h'], ['lifespan', '-5s'], ['lifespan', '1e3s'],
    ['lifespan', 'soon'], ['lifespan', '5 minutes'], ['lifespan', `${'9'.repeat(40)}s`], ['idleTimeout', '0.5s'], ['freezeAfter', '5'],
    ['latencyTargetMs', '0.5ms'], ['latencyTargetMs', '11m'], ['upstreamTimeout', '2h'], ['upstreamTimeout', '1\u0000s'],
  ] as const)('refuses %s = %j, saying the unit and the duration form', (field, value) => {
    const p = problemOf(() => parseNewApp({ ...base, [field]: value }));
    expect(p).toMatchObject({ field, value });
    expect(String(p.allowed)).toMatch(/an integer from \d+ to \d+ \((seconds|milliseconds)\), or a duration such as/);
  });
  it('stores the number on a change too', () => {
    expect(parseAppPatch(parseNewApp(base), { lifespan: '2m' }).lifespan).toBe(120);
  });
});
