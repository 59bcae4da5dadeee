// Sentinels that require a password (REDIS_SENTINEL_PASSWORD, REDIS_SENTINEL_USERNAME): a primary
// and a replica with requirepass and masterauth, and three sentinels with requirepass and
// `sentinel auth-pass`, all of the test's own (Debian's redis-sentinel, free loopback ports, their
// own temp dirs, started and killed by pid). The sentinels' password is not the primary's, so each
// is proven to go where it belongs: REDIS_SENTINEL_PASSWORD to the sentinels, REDIS_URL's to the
// primary. The stack opens its CMDB through them and writes and reads an app; without the
// sentinels' password, or with a wrong one, the CMDB is not opened, at once: the error names every
// sentinel and the option to set, and neither it nor the logs carry a password.
// (A failover under load is sentinel.test.ts's, without passwords.)

import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/cmdb/index.js';
import { loadConfig } from '../../src/shared/config.js';
import { FcError } from '../../src/shared/errors.js';
import type { Logger } from '../../src/shared/logger.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { askRedis, startSentinelGroup, type SentinelGroup } from '../helpers/sentinel-group.js';
import { appSpec } from '../helpers/specs.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { uniqueName } from '../helpers/env.js';
import { eventually } from '../helpers/wait.js';

const NAME = 'fcauth';
const PRIMARY_PW = `primary-${randomBytes(12).toString('hex')}`;
const SENTINEL_PW = `sentinel-${randomBytes(12).toString('hex')}`;
const ACL_USER = 'fcsentinel';
const ACL_PW = `acl-${randomBytes(12).toString('hex')}`;
// REDIS_URL lends only its password with sentinels: a host that cannot resolve shows it is not used.
const REDIS_URL = `redis://:${PRIMARY_PW}@primary.invalid:6379`;

let group: SentinelGroup | undefined;
let t: TestStack | undefined;
const ask = <T>(port: number, password: string, fn: (r: Redis) => Promise<T>): Promise<T> => askRedis(port, password, fn);

const sentinelList = () => group?.list() ?? '';

/** A logger whose lines the test reads (the warnings of failed connections go there). */
function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }), lines };
}

/**
 * openStore as the roles call it, on the config these env vars make: the store, or the error it
 * threw, within `ms` (a start that waits for ever is a failure too).
 */
async function openWithin(ms: number, env: Record<string, string>, logger: Logger): Promise<{ store: Store } | { err: unknown }> {
  const config = loadConfig({ env: { REDIS_URL, REDIS_SENTINELS: sentinelList(), FC_REDIS_SENTINEL_NAME: NAME, FC_REDIS_PREFIX: uniqueName('fctest'), ...env } });
  let timer: NodeJS.Timeout | undefined;
  const opening = openStore({ ...config, logger }).then((store) => ({ store }), (err: unknown) => ({ err }));
  const outcome = await Promise.race([opening, new Promise<'waiting'>((resolve) => (timer = setTimeout(() => resolve('waiting'), ms)))]);
  clearTimeout(timer);
  if (outcome !== 'waiting') return outcome;
  // Closed whenever it opens after all.
  void opening.then((o) => ('store' in o ? o.store.close() : undefined));
  return { err: new Error(`openStore neither opened nor failed within ${ms} ms`) };
}

beforeAll(async () => {
  // No failover is tested here: one on a loaded machine would only make the test slower.
  group = await startSentinelGroup({ name: NAME, primaryPassword: PRIMARY_PW, sentinelPassword: SENTINEL_PW, downAfterMs: 5000, failoverTimeoutMs: 10000 });
  // An ACL user of each sentinel's own (Redis 6.2+ sentinels have ACLs), for REDIS_SENTINEL_USERNAME.
  for (const s of group.sentinels) await ask(s.port, SENTINEL_PW, (r) => r.call('ACL', 'SETUSER', ACL_USER, 'on', `>${ACL_PW}`, '+@all', 'allchannels'));
}, 60_000);

afterAll(async () => {
  await t?.cleanup();
  await group?.cleanup();
});

describe('Redis Sentinels that require a password', () => {
  it('opens the CMDB through them with REDIS_SENTINEL_PASSWORD, and writes and reads through it', async () => {
    t = await startTestStack({
      runtime: new FakeRuntime(),
      env: { REDIS_URL, REDIS_SENTINELS: sentinelList(), FC_REDIS_SENTINEL_NAME: NAME, REDIS_SENTINEL_PASSWORD: SENTINEL_PW },
    });
    const s = t;
    expect(s.stack.store.kind).toBe('redis');
    // A write (the CoreAPI), a read (the CoreAPI), and a cold start (the proxy's cache, fed by the
    // change subscriber, and the dispatcher's writes): every connection of the stack got through.
    expect((await s.api('POST', '/v1/apps', { name: 'auth1', hostnames: ['auth1.test'], image: 'fastcontainer/hello', maxContainers: 1 })).status).toBe(201);
    const read = await s.api('GET', '/v1/apps/auth1');
    expect([read.status, read.body?.hostnames]).toEqual([200, ['auth1.test']]);
    await eventually(async () => (await s.get('auth1.test')).status === 200, { timeout: 10_000, interval: 100, what: 'a cold start of auth1' });
    // Written on the primary the sentinels name.
    expect(await ask(group?.primary.port ?? 0, PRIMARY_PW, (r) => r.exists(`${s.prefix}:app:auth1`))).toBe(1);
  });

  it('opens it as an ACL user with REDIS_SENTINEL_USERNAME', async () => {
    const { logger } = capturingLogger();
    const opened = await openWithin(15_000, { REDIS_SENTINEL_USERNAME: ACL_USER, REDIS_SENTINEL_PASSWORD: ACL_PW }, logger);
    if ('err' in opened) throw opened.err;
    const { store } = opened;
    try {
      expect(store.kind).toBe('redis');
      await store.createApp(appSpec({ name: 'acl1' }), 1_000);
      expect((await store.getApp('acl1'))?.hostnames).toEqual(['acl1.example.test']);
      await store.deleteApp('acl1');
    } finally {
      await store.close();
    }
  });

  it.each([
    ['without REDIS_SENTINEL_PASSWORD', {}, /NOAUTH/],
    ['with a wrong REDIS_SENTINEL_PASSWORD', { REDIS_SENTINEL_PASSWORD: `wrong-${randomBytes(8).toString('hex')}` }, /WRONGPASS|NOAUTH/],
    ['with REDIS_SENTINEL_USERNAME and a wrong password', { REDIS_SENTINEL_USERNAME: ACL_USER, REDIS_SENTINEL_PASSWORD: `wrong-${randomBytes(8).toString('hex')}` }, /WRONGPASS|NOAUTH/],
  ] as const)('does not open it %s: a clear error that names every sentinel and shows no password', async (_, env, refusal) => {
    const { logger, lines } = capturingLogger();
    const opened = await openWithin(15_000, env, logger);
    if ('store' in opened) {
      await opened.store.close();
      throw new Error('the store opened');
    }
    expect(opened.err).toBeInstanceOf(FcError);
    const e = opened.err as FcError;
    expect(e.code).toBe('FC_ERR_STORE_UNAVAILABLE');
    expect(e.message).toContain(`cannot connect to Redis primary "${NAME}" through the sentinels ${sentinelList()}`);
    // What each sentinel answered, by address, and what to set.
    for (const s of group?.sentinels ?? []) expect(e.message).toMatch(new RegExp(`127\\.0\\.0\\.1:${s.port}: (?:${refusal.source})`));
    expect(e.message).toContain('REDIS_SENTINEL_PASSWORD');
    expect(e.details).toEqual({ sentinels: sentinelList().split(','), sentinelName: NAME });
    const shown = [e.message, JSON.stringify(e.details), String((e.cause as Error | undefined)?.message), ...lines].join('\n');
    for (const secret of [SENTINEL_PW, PRIMARY_PW, ACL_PW, ...Object.values(env).filter((v) => v !== ACL_USER)]) expect(shown).not.toContain(secret);
  });

  it('does not open it under a name the sentinels do not monitor, and says so', async () => {
    const { logger } = capturingLogger();
    const opened = await openWithin(15_000, { REDIS_SENTINEL_PASSWORD: SENTINEL_PW, FC_REDIS_SENTINEL_NAME: 'nosuch' }, logger);
    if ('store' in opened) {
      await opened.store.close();
      throw new Error('the store opened');
    }
    expect((opened.err as FcError).code).toBe('FC_ERR_STORE_UNAVAILABLE');
    expect((opened.err as FcError).message).toMatch(/127\.0\.0\.1:\d+: ERR No such master with that name.*; a sentinel monitors no primary named "nosuch" \(FC_REDIS_SENTINEL_NAME\)$/);
  });
});
