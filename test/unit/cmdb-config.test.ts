// The CMDB's options: sentinels, their primary's name and the deadline.

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
