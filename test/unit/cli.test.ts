import { describe, expect, it } from 'vitest';
import { appFlags, commandHelp, helpFor } from '../../src/cli/help.js';
import { describeLive } from '../../src/cli/commands/app.js';
import { eventRows } from '../../src/cli/commands/events.js';
import { hostRows } from '../../src/cli/commands/host.js';
import { psRows } from '../../src/cli/commands/ps.js';
import { configJson, configText } from '../../src/cli/config-output.js';
import { formatDuration, formatLocalTime } from '../../src/cli/format.js';
import { scaleFromFlags, specFromFlags } from '../../src/cli/spec-from-flags.js';
import { appFields } from '../../src/cmdb/app-schema.js';
import { loadConfig } from '../../src/shared/config.js';
import type { ContainerEntry, ContainerStats } from '../../src/cmdb/types.js';
import { newContainer } from '../helpers/specs.js';

describe('formatDuration', () => {
  it.each([[0, '0s'], [59_999, '59s'], [61_000, '1m01s'], [3_600_000, '1h00m'], [49 * 3_600_000, '2d01h']] as const)('%d ms', (ms, want) => {
    expect(formatDuration(ms)).toBe(want);
  });
});

describe('specFromFlags', () => {
  it('builds an app spec from `app create` flags', () => {
    const spec = specFromFlags('blog', {
      hostname: ['blog.test', 'www.blog.test'], image: 'fastcontainer/php', port: '8080', cpus: '0.3', memory: '256m',
      env: ['A=1', 'B=x=y'], volume: ['/srv/blog:/var/www/html:ro'], lifespan: '600', min: '0', max: '4', command: '["php","-S","0.0.0.0:8080"]',
    });
    expect(spec).toEqual({
      name: 'blog', hostnames: ['blog.test', 'www.blog.test'], image: 'fastcontainer/php', port: 8080, cpus: 0.3, memory: '256m',
      env: { A: '1', B: 'x=y' }, volumes: ['/srv/blog:/var/www/html:ro'], lifespan: 600, minContainers: 0, maxContainers: 4,
      command: ['php', '-S', '0.0.0.0:8080'],
    });
  });

  // Found: a relative path was turned into one under the current directory, which names nothing
  // on the compute hosts (and could name anything on this one).
  it('refuses relative volume paths, and passes bad numbers on for the API to name', () => {
    for (const v of ['site:/var/www/html', './site:/var/www/html', '../x:/data', ':/data', 'site']) {
      expect(() => specFromFlags('blog', { volume: [v] }), v).toThrow('--volume needs an absolute host path');
    }
    expect(specFromFlags('blog', { cpus: 'lots' }).cpus).toBe('lots');
  });

  it('reads --secret, --user and --read-only-rootfs, and --unset-secret on a change only', () => {
    expect(specFromFlags('blog', { secret: ['DB_PASSWORD=a=b', 'EMPTY='], user: '1000:1000', 'read-only-rootfs': true })).toEqual({
      name: 'blog', secrets: { DB_PASSWORD: 'a=b', EMPTY: '' }, user: '1000:1000', readOnlyRootfs: true,
    });
    expect(specFromFlags(undefined, { secret: ['A=1'], 'unset-secret': ['B'] })).toEqual({ secrets: { A: '1', B: null } });
    expect(() => specFromFlags('blog', { 'unset-secret': ['B'] })).toThrow('--unset-secret is for app update');
    expect(() => specFromFlags('blog', { secret: ['NOVALUE'] })).toThrow('--secret takes KEY=VALUE');
  });
});

describe('specFromFlags: egress', () => {
  it('passes --egress on as the app field, for the API to check', () => {
    expect(specFromFlags('blog', { egress: 'closed' }).egress).toBe('closed');
    expect(specFromFlags('blog', { egress: 'shut' }).egress).toBe('shut');
    expect(specFromFlags('blog', {})).not.toHaveProperty('egress');
  });
});

describe('specFromFlags: the scaling fields', () => {
  it('reads --max-cpus, --latency-target, --idle-timeout and --no-autoscale', () => {
    expect(specFromFlags('blog', { 'max-cpus': '1.5', 'latency-target': '250', 'idle-timeout': '120', 'no-autoscale': true })).toEqual({
      name: 'blog', maxCpus: 1.5, latencyTargetMs: 250, idleTimeout: 120, autoscale: false,
    });
  });

  it.each([['true', true], ['false', false], ['off', false], ['YES', true], ['maybe', 'maybe']] as const)('reads --autoscale %s', (raw, want) => {
    expect(specFromFlags('blog', { autoscale: raw }).autoscale).toBe(want);
  });

  it('refuses --no-autoscale with --autoscale, and passes bad numbers on for the API to name', () => {
    expect(() => specFromFlags('blog', { 'no-autoscale': true, autoscale: 'true' })).toThrow('not both');
    expect(specFromFlags('blog', { 'latency-target': 'fast' }).latencyTargetMs).toBe('fast');
  });
});

describe('scaleFromFlags', () => {
  it('sends only the flags given, as numbers when they read as numbers', () => {
    expect(scaleFromFlags({ containers: '3' })).toEqual({ containers: 3 });
    expect(scaleFromFlags({ cpus: '0.8', containers: 'lots' })).toEqual({ cpus: 0.8, containers: 'lots' });
    expect(() => scaleFromFlags({})).toThrow('--containers N and/or --cpus X');
  });
});

const entry = (state: ContainerEntry['state'], o: Partial<ContainerEntry> = {}): ContainerEntry => ({ ...newContainer('blog', { state, cpus: 0.5, ...o }), rev: 1 });

describe('describeLive', () => {
  it('counts live entries by state and says their quota', () => {
    expect(describeLive([entry('ready'), entry('registered'), entry('ready'), entry('draining', { cpus: 2 })])).toBe('3 live containers (2 ready, 1 registered) at 0.5 cores');
    expect(describeLive([entry('ready', { cpus: 0.8 }), entry('starting')])).toBe('2 live containers (1 ready, 1 starting) at 0.5-0.8 cores');
    expect(describeLive([entry('draining')])).toBe('no live containers');
  });
});

describe('psRows', () => {
  const stats: ContainerStats = {
    id: 'x', app: 'blog', host: 'host-a', cpus: 0.75, inflight: 4, held: 1, rps: 10, meanMs: 100, p95Ms: 812.4, throttledShare: 0.034,
    cpuUsage: 0.6, lastRequestAt: 1_000, at: 1_000,
  };

  it('shows the measured quota and load, or "-" without stats', () => {
    const now = 61_000;
    const [withStats, without, noCpus] = psRows(now, [
      { ...entry('ready', { expiresAt: 121_000, address: '10.0.0.1:8080' }), stats },
      { ...entry('registered'), stats: null },
      { ...entry('registered', { cpus: null }) },
    ]);
    expect(withStats?.slice(2)).toEqual(['ready', 'host-a', '1m00s', '1m00s', '0.75', '4', '812ms', '3%', '10.0.0.1:8080', '']);
    expect(without?.slice(6, 10)).toEqual(['0.5', '-', '-', '-']);
    expect(noCpus?.slice(6, 10)).toEqual(['-', '-', '-', '-']);
    const idle = psRows(now, [{ ...entry('ready'), stats: { ...stats, p95Ms: null, throttledShare: null } }])[0];
    expect(idle?.slice(6, 10)).toEqual(['0.75', '4', '-', '-']);
    // A quota set by hand after the stats were taken: the entry's, not the stale measured one.
    const setSince = psRows(now, [{ ...entry('ready', { cpus: 1.5, cpusSetAt: 1_500 }), stats }])[0];
    expect(setSince?.[6]).toBe('1.5');
    const setBefore = psRows(now, [{ ...entry('ready', { cpus: 1.5, cpusSetAt: 500 }), stats }])[0];
    expect(setBefore?.[6]).toBe('0.75');
  });
});

describe('events table', () => {
  it('shows local ISO time to the second, the kind, the container, from→to and the reason', () => {
    const at = new Date(2025, 2, 1, 14, 5, 9, 700).getTime();
    expect(formatLocalTime(at)).toBe('2025-03-01T14:05:09');
    expect(eventRows([
      { at, app: 'blog', kind: 'scale-up', container: 'blog-1', host: 'h1', reason: 'p95 812 ms > target 500 ms', from: 0.5, to: 0.1 + 0.2 + 0.45 },
      { at, app: 'blog', kind: 'manual', container: null, host: null, reason: 'asked', from: null, to: 3 },
      { at, app: 'blog', kind: 'ready', container: 'blog-2', host: 'h1', reason: 'listening', from: null, to: null },
    ])).toEqual([
      ['2025-03-01T14:05:09', 'scale-up', 'blog-1', '0.5→0.75', 'p95 812 ms > target 500 ms'],
      ['2025-03-01T14:05:09', 'manual', '-', '?→3', 'asked'],
      ['2025-03-01T14:05:09', 'ready', 'blog-2', '-', 'listening'],
    ]);
  });
});

describe('hostRows', () => {
  it('shows live, when the drain began and the containers left', () => {
    const base = { dispatcherUrl: 'http://h:8082', capacity: 10, startedAt: 0, heartbeatAt: 98_000, rev: 1 };
    expect(hostRows(100_000, [
      { ...base, id: 'h1', live: true, drainedAt: null, containers: 3 },
      { ...base, id: 'h2', live: true, drainedAt: 40_000, containers: 1 },
      { ...base, id: 'h3', live: false },
    ])).toEqual([
      ['h1', 'http://h:8082', '10', 'yes', '2s ago', '-', '3'],
      ['h2', 'http://h:8082', '10', 'yes', '2s ago', '1m00s ago', '1'],
      ['h3', 'http://h:8082', '10', 'no', '2s ago', '-', '-'],
    ]);
  });
});

describe('the CLI covers the API: every app field has a flag, with its unit in --help', () => {
  it('has a flag for every app field but name (the positional argument)', () => {
    expect(appFlags.map((f) => f.field).sort()).toEqual(appFields.filter((f) => f !== 'name').sort());
  });
  it.each(appFlags.map((f) => [f.flag, f] as const))('--%s sets its field', (flag, f) => {
    const raw = f.arg === undefined ? true : f.repeat === true ? [f.flag === 'volume' ? '/srv/x:/x' : 'A=1'] : '7';
    expect(Object.keys(specFromFlags('x', { [flag]: raw }))).toContain(f.field);
  });
  it('says each field\'s unit in app create --help, and takes durations with a unit', () => {
    const help = helpFor(['app', 'create']) ?? '';
    for (const f of appFlags) expect(help).toContain(`--${f.flag}`);
    expect(help).toMatch(/--lifespan DURATION\s+lifespan: Seconds a container lives/);
    expect(help).toMatch(/--latency-target DURATION\s+latencyTargetMs: Latency, milliseconds/);
    expect(help).toContain('"90s", "10m", "1h"');
    expect(specFromFlags('x', { lifespan: '10m', 'latency-target': '2s', 'upstream-timeout': '90s', 'max-concurrency': '20' }))
      .toEqual({ name: 'x', lifespan: '10m', latencyTargetMs: '2s', upstreamTimeout: '90s', maxConcurrency: 20 });
  });
  it('has help for the API\'s commands, and none for what is not one', () => {
    for (const c of ['app create', 'app update', 'app scale', 'container rm', 'ps', 'config']) expect(commandHelp[c], c).toBeDefined();
    expect(helpFor(['host', 'drain'])).toContain('host ls | rm ID');
    expect(helpFor(['app', 'frobnicate'])).toBeUndefined();
    expect(helpFor(['frobnicate'])).toBeUndefined();
  });
});

describe('configText', () => {
  it('names each option by its env var and flag, as the README does, and hides tokens', () => {
    const text = configText(loadConfig({ env: { FC_API_TOKEN: 'hidden-token-value-1234567890', FC_PROXY_PORT: '9090' } }));
    expect(text.split('\n')[0]).toMatch(/^ENV VAR\s+FLAG\s+VALUE$/);
    expect(text).toMatch(/^FC_PROXY_PORT\s+--proxy-port\s+9090$/m);
    expect(text).toMatch(/^FC_API_TOKEN\s+--api-token\s+\(set\)$/m);
    expect(text).not.toContain('hidden-token-value');
  });

  it('prints the values as one JSON object for scripts (--json), tokens and the cluster secret hidden', () => {
    const json = configJson(loadConfig({ env: { FC_API_TOKEN: 'hidden-token-value-1234567890', FC_CLUSTER_SECRET: 's'.repeat(40), FC_PROXY_PORT: '9090' } }));
    const parsed = JSON.parse(json) as Record<string, unknown>;
    expect(parsed).toMatchObject({ proxyPort: 9090, apiToken: '(set)', clusterSecret: '(set)', apiReadToken: '' });
    expect(json).not.toContain('hidden-token-value');
    expect(json).not.toContain('s'.repeat(40));
  });

  it('hides every option the option table marks secret, the sentinels\' password included', () => {
    const config = loadConfig({ env: { REDIS_SENTINELS: '127.0.0.1:26379', REDIS_SENTINEL_PASSWORD: 'sentinel-password-value', REDIS_SENTINEL_USERNAME: 'fc-user', FC_API_READ_TOKEN: 'read-token-value-1234567890' } });
    const text = configText(config);
    expect(text).toMatch(/^REDIS_SENTINEL_PASSWORD\s+--redis-sentinel-password\s+\(set\)$/m);
    expect(text).toMatch(/^REDIS_SENTINEL_USERNAME\s+--redis-sentinel-username\s+"fc-user"$/m);
    expect(JSON.parse(configJson(config))).toMatchObject({ redisSentinelPassword: '(set)', apiReadToken: '(set)', redisSentinelUsername: 'fc-user' });
    for (const out of [text, configJson(config)]) {
      expect(out).not.toContain('sentinel-password-value');
      expect(out).not.toContain('read-token-value');
    }
  });

  it("shows REDIS_URL without the primary's password, the rest of it as given", () => {
    const config = loadConfig({ env: { REDIS_URL: 'redis://:primary-pass-value@127.0.0.1:6380/2' } });
    const text = configText(config);
    expect(text).toMatch(/^REDIS_URL\s+--redis-url\s+"redis:\/\/:\*\*\*@127\.0\.0\.1:6380\/2"$/m);
    expect(JSON.parse(configJson(config))).toMatchObject({ redisUrl: 'redis://:***@127.0.0.1:6380/2' });
    for (const out of [text, configJson(config)]) expect(out).not.toContain('primary-pass-value');
    // A REDIS_URL the config refuses is named in the error without its password either.
    let refused = '';
    try {
      loadConfig({ env: { REDIS_URL: 'http://user:primary-pass-value@127.0.0.1:notaport' } });
    } catch (err) {
      refused = (err as Error).message;
    }
    expect(refused).toContain('REDIS_URL=');
    expect(refused).not.toContain('primary-pass-value');
    // Without a password: as it is.
    expect(JSON.parse(configJson(loadConfig({ env: { REDIS_URL: 'redis://127.0.0.1:6380' } })))).toMatchObject({ redisUrl: 'redis://127.0.0.1:6380' });
  });
});
