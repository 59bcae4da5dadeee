import { describe, expect, it } from 'vitest';
import { hostFieldCount, parseRequestTarget } from '../../src/proxy/request-target.js';

describe('parseRequestTarget', () => {
  const ok: [string, string, string | undefined, string, string | undefined][] = [
    // method, target, Host, → path, authority
    ['GET', '/a?b=1', 'site', '/a?b=1', 'site'],
    ['GET', '/', 'Site.Test:8080', '/', 'Site.Test:8080'],
    ['GET', '/x', undefined, '/x', undefined],
    ['GET', 'http://evil.example/x', 'site', '/x', 'evil.example'],
    ['GET', 'HTTP://Other.Test:81/x?y', 'site', '/x?y', 'Other.Test:81'],
    ['GET', 'https://other.test', 'site', '/', 'other.test'],
    ['GET', 'http://other.test?q=1', undefined, '/?q=1', 'other.test'],
    ['GET', 'http://[::1]:8080/v6', 'site', '/v6', '[::1]:8080'],
    ['GET', 'http://10.0.0.1/', 'site', '/', '10.0.0.1'],
    ['OPTIONS', '*', 'site', '*', 'site'],
    // Kept verbatim: the app sees what the client sent (no dot-segment or percent rewriting).
    ['GET', 'http://site/a/../b%2F', 'site', '/a/../b%2F', 'site'],
  ];
  for (const [method, target, host, path, authority] of ok) {
    it(`${method} ${target} with Host ${host ?? '(none)'} → ${path} for ${authority ?? '(none)'}`, () => {
      expect(parseRequestTarget(method, target, host === undefined ? 0 : 1, host)).toEqual({ ok: true, path, authority });
    });
  }

  const bad: [string, string, number, string | undefined, RegExp][] = [
    ['GET', '/', 2, 'site', /more than one Host/],
    ['GET', 'http://other/x', 2, 'site', /more than one Host/],
    ['CONNECT', 'site:443', 1, 'site', /neither a path nor/],
    ['GET', 'site/x', 1, 'site', /neither a path nor/],
    ['GET', '*', 1, 'site', /OPTIONS only/],
    ['GET', 'ftp://site/x', 1, 'site', /scheme/],
    ['GET', 'http://user:pw@site/x', 1, 'site', /user information/],
    ['GET', 'http:///x', 1, 'site', /no usable host/],
    ['GET', 'http://si te/x', 1, 'site', /no usable host/],
    ['GET', 'http://site#frag', 1, 'site', /fragment/],
    ['GET', 'http://site/x#frag', 1, 'site', /fragment/],
    ['GET', '/', 1, 'site/evil', /not a host name/],
    ['GET', '/', 1, 'a b', /not a host name/],
  ];
  for (const [method, target, hosts, host, detail] of bad) {
    it(`refuses ${method} ${target} with ${hosts} Host ${host}`, () => {
      const r = parseRequestTarget(method, target, hosts, host);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.detail).toMatch(detail);
    });
  }
});

describe('hostFieldCount', () => {
  it('counts Host fields in any spelling', () => {
    expect(hostFieldCount(['Host', 'a', 'x-host', 'b', 'HOST', 'c', 'hostname', 'd'])).toBe(2);
    expect(hostFieldCount([])).toBe(0);
  });
});
