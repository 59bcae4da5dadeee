// The CMDB's options: sentinels, their primary's name, their credentials and the deadline.

import { describe, expect, it } from 'vitest';
import { loadConfig, parseSentinels } from '../../src/shared/config.js';
import { FcError } from '../../src/shared/errors.js';

describe('REDIS_SENTINELS', () => {
  it.each([
    ['127.0.0.1:26379', [{ host: '127.0.0.1', port: 26379 }]],
    [' a.example:1 , b-2.example:26380,[::1]:5 ', [{ host: 'a.example', port: 1 }, { host: 'b-2.example', port: 26380 }, { host: '::1', port: 5 }]],
  ])('reads %j', (raw, list) => {
    expect(parseSentinels(raw)).toEqual(list);
  });

  it.each(['127.0.0.1', '127.0.0.1:0', 'h:65536', 'h:1,oops', 'redis://h:1', ','])('refuses %j', (raw) => {
    expect(parseSentinels(raw)).toBeUndefined();
  });

  it('defaults to none, the name to mymaster and the deadline to a second', () => {
    const c = loadConfig({ env: {} });
    expect(c.redisSentinels).toEqual([]);
    expect(c.redisSentinelName).toBe('mymaster');
    expect(c.cmdbTimeout).toBe(1000);
  });

  it('names the option, the value and what is allowed when one is wrong', () => {
    let err: unknown;
    try {
      loadConfig({ env: { REDIS_SENTINELS: 'nope', FC_CMDB_TIMEOUT: '5m' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FcError);
    expect((err as FcError).message).toContain('REDIS_SENTINELS="nope" is not allowed (allowed: comma-separated host:port list)');
    expect((err as FcError).message).toContain('FC_CMDB_TIMEOUT="5m" is not allowed (allowed: duration 100ms-1m)');
  });
});

describe('REDIS_SENTINEL_PASSWORD and REDIS_SENTINEL_USERNAME', () => {
  function problem(env: Record<string, string>): string {
    try {
      loadConfig({ env });
    } catch (e) {
      expect(e).toBeInstanceOf(FcError);
      return JSON.stringify({ message: (e as FcError).message, details: (e as FcError).details });
    }
    throw new Error('expected loadConfig to fail');
  }

  it('default to none, and take a password as given (spaces included, not trimmed)', () => {
    expect(loadConfig({ env: {} })).toMatchObject({ redisSentinelPassword: '', redisSentinelUsername: '' });
    expect(loadConfig({ env: { REDIS_SENTINEL_PASSWORD: ' pa ss#:@/ ', REDIS_SENTINEL_USERNAME: 'fc-user' } }))
      .toMatchObject({ redisSentinelPassword: ' pa ss#:@/ ', redisSentinelUsername: 'fc-user' });
    expect(loadConfig({ flags: { 'redis-sentinel-password': 'from-a-flag' } }).redisSentinelPassword).toBe('from-a-flag');
  });

  it.each(['secret\n', 'sec\r\nret', 'sec\0ret', 'x'.repeat(513)])('refuses the password %j without repeating it', (bad) => {
    const text = problem({ REDIS_SENTINEL_PASSWORD: bad });
    expect(text).toContain(`REDIS_SENTINEL_PASSWORD=(${bad.length} characters, not shown) is not allowed (allowed: 1-512 characters, no line break or NUL)`);
    expect(text).not.toContain(JSON.stringify(bad).slice(1, -1));
  });

  it.each(['user\n', 'us\0er', 'us er', 'u'.repeat(129)])('refuses the username %j', (bad) => {
    expect(problem({ REDIS_SENTINEL_USERNAME: bad, REDIS_SENTINEL_PASSWORD: 'pw' })).toContain(`REDIS_SENTINEL_USERNAME=${JSON.stringify(JSON.stringify(bad)).slice(1, -1)} is not allowed`);
  });

  it('refuses a username without its password', () => {
    expect(problem({ REDIS_SENTINEL_USERNAME: 'fc-user' })).toContain('REDIS_SENTINEL_USERNAME is set without REDIS_SENTINEL_PASSWORD');
  });
});
