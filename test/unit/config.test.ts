import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configMarkdownTable, loadConfig, parseDuration } from '../../src/shared/config.js';
import { FcError } from '../../src/shared/errors.js';

function configError(sources: Parameters<typeof loadConfig>[0]): FcError {
  try {
    loadConfig(sources);
  } catch (err) {
    if (err instanceof FcError) return err;
    throw err;
  }
  throw new Error('expected loadConfig to fail');
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {}, flags: {} });
    expect(c).toMatchObject({
      redisUrl: '', proxyPort: 8080, apiPort: 8081, dispatcherPort: 8082, dispatcherUrl: 'http://127.0.0.1:8082',
      dockerHost: 'unix:///var/run/docker.sock', queueTimeout: 30_000, logLevel: 'info', demo: false,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads env vars and lets flags win', () => {
    const c = loadConfig({ env: { FC_PROXY_PORT: '9000', REDIS_URL: 'redis://r:6379', FC_QUEUE_TIMEOUT: '2s' }, flags: { 'proxy-port': '9001' } });
    expect(c).toMatchObject({ proxyPort: 9001, redisUrl: 'redis://r:6379', queueTimeout: 2000 });
  });

  it('roots volumes in the DataPool under the state directory, one directory per app, unless given', () => {
    expect(loadConfig({ env: { FC_STATE_DIR: '/var/lib/fc' } })).toMatchObject({ volumeRoots: ['/var/lib/fc/datapool/{app}'], rootImages: [], apiReadToken: '' });
    expect(loadConfig({ env: { FC_VOLUME_ROOTS: '/srv/pool/{app}, /srv/shared', FC_ROOT_IMAGES: 'nginx:1.25,repo/app' } }))
      .toMatchObject({ volumeRoots: ['/srv/pool/{app}', '/srv/shared'], rootImages: ['nginx:1.25', 'repo/app'] });
    expect(loadConfig({ env: { FC_VOLUME_ROOTS: 'none' } }).volumeRoots).toEqual([]);
    for (const bad of ['/', 'relative/dir', '/srv/../etc', '/srv/{app}x', '/srv/{name}']) {
      expect(configError({ env: { FC_VOLUME_ROOTS: bad } }).message, bad).toContain(`FC_VOLUME_ROOTS=${JSON.stringify(bad)} is not allowed`);
    }
    expect(configError({ env: { FC_API_READ_TOKEN: 'short' } }).message).toContain('FC_API_READ_TOKEN');
  });

  it('listens on loopback for everything but the tenants\' port, unless told otherwise', () => {
    expect(loadConfig({ env: {} })).toMatchObject({
      proxyListen: '0.0.0.0', dispatcherListen: '127.0.0.1', apiListen: '127.0.0.1', adminListen: '127.0.0.1', adminPort: 8083, clusterSecret: '', hopAuthWindow: 30_000,
    });
    // The older single switch still sets every address; each role's own option wins over it.
    expect(loadConfig({ env: { FC_LISTEN_HOST: '10.0.0.5' } })).toMatchObject({ proxyListen: '10.0.0.5', dispatcherListen: '10.0.0.5', apiListen: '10.0.0.5', adminListen: '10.0.0.5' });
    expect(loadConfig({ env: { FC_LISTEN_HOST: '10.0.0.5', FC_DISPATCHER_LISTEN: '192.168.0.2' }, flags: { 'admin-listen': '::1' } })).toMatchObject({
      proxyListen: '10.0.0.5', dispatcherListen: '192.168.0.2', adminListen: '::1',
    });
  });

  it('takes a cluster secret of at least 32 characters only', () => {
    expect(loadConfig({ env: { FC_CLUSTER_SECRET: 'x'.repeat(32) } }).clusterSecret).toBe('x'.repeat(32));
    const err = configError({ env: { FC_CLUSTER_SECRET: 'too-short' } });
    expect(err.message).toContain('FC_CLUSTER_SECRET=(9 characters, not shown) is not allowed (allowed: at least 32 characters)');
    expect(JSON.stringify(err.details)).not.toContain('too-short');
  });

  it('derives the dispatcher URL from its port unless given', () => {
    expect(loadConfig({ env: { FC_DISPATCHER_PORT: '9100' } }).dispatcherUrl).toBe('http://127.0.0.1:9100');
    expect(loadConfig({ env: { FC_DISPATCHER_URL: 'http://10.0.0.5:8082/' } }).dispatcherUrl).toBe('http://10.0.0.5:8082');
  });

  it('rejects bad values naming the option as given, the value and what is allowed, all at once', () => {
    const err = configError({ env: { FC_PROXY_PORT: 'eighty', REDIS_URL: 'http://x' }, flags: { 'queue-timeout': '5 parsecs' } });
    expect(err.code).toBe('FC_ERR_CONFIG');
    expect(err.message).toContain('FC_PROXY_PORT="eighty" is not allowed (allowed: integer 0-65535');
    expect(err.message).toContain('REDIS_URL="http://x" is not allowed (allowed: redis:// or rediss:// URL)');
    expect(err.message).toContain('--queue-timeout="5 parsecs"');
  });

  it('reads booleans', () => {
    expect(loadConfig({ flags: { demo: true } }).demo).toBe(true);
    expect(loadConfig({ env: { FC_DEMO: 'no' } }).demo).toBe(false);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500], ['2s', 2000], ['1.5m', 90_000], ['1h', 3_600_000], ['250', 250], ['2 s', 2000], ['soon', undefined], ['-1s', undefined],
  ] as const)('%s', (raw, want) => {
    expect(parseDuration(raw)).toBe(want);
  });
});

describe('the README configuration table', () => {
  it('is the one generated from the option table (npm run docs)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const m = /<!-- config:start -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
    expect(m, 'README.md has the config markers').not.toBeNull();
    expect(m?.[1]).toBe(configMarkdownTable());
  });
});
