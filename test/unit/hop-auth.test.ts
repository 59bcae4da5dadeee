import { describe, expect, it } from 'vitest';
import { HopAuth, newClusterSecret, type HopClaim } from '../../src/shared/hop-auth.js';

const NOW = 1_700_000_000_000;
const WINDOW = 30_000;
const auth = new HopAuth('the-cluster-secret-of-this-test-0123', WINDOW);
const claim: HopClaim = { method: 'GET', target: '/a?b=1', entryId: 'entry-1' };
const good = auth.sign(claim, NOW);

describe('HopAuth', () => {
  it('signs as v1.<ms>.<43 base64url characters>', () => {
    expect(good).toMatch(/^v1\.1700000000000\.[A-Za-z0-9_-]{43}$/);
  });

  const cases: { name: string; header: string | string[] | undefined; claim?: Partial<HopClaim>; now?: number; reason?: string }[] = [
    { name: 'the signed request, at once', header: good },
    { name: 'the signed request at the window\'s far end', header: good, now: NOW + WINDOW },
    { name: 'a verifier whose clock is behind by the window', header: good, now: NOW - WINDOW },
    { name: 'a signature older than the window', header: good, now: NOW + WINDOW + 1, reason: 'stale' },
    { name: 'a signature from further ahead than the window', header: good, now: NOW - WINDOW - 1, reason: 'stale' },
    { name: 'the same signature for another entry', header: good, claim: { entryId: 'entry-2' }, reason: 'forged' },
    { name: 'the same signature for another method', header: good, claim: { method: 'POST' }, reason: 'forged' },
    { name: 'the same signature for another target', header: good, claim: { target: '/a?b=2' }, reason: 'forged' },
    { name: 'a target in absolute form for the signed origin form', header: good, claim: { target: 'http://site/a?b=1' }, reason: 'forged' },
    { name: 'the time changed to look fresh', header: good.replace('1700000000000', String(NOW + 60_000)), now: NOW + 60_000, reason: 'forged' },
    { name: 'a signature made with another secret', header: new HopAuth('another-cluster-secret-0123456789', WINDOW).sign(claim, NOW), reason: 'forged' },
    { name: 'a MAC of the right shape but made up', header: `v1.${NOW}.${'A'.repeat(43)}`, reason: 'forged' },
    { name: 'a truncated MAC', header: good.slice(0, -1), reason: 'malformed' },
    { name: 'only the version and time', header: `v1.${NOW}`, reason: 'malformed' },
    { name: 'another version', header: good.replace(/^v1/, 'v2'), reason: 'malformed' },
    { name: 'a time that is not a number', header: good.replace('1700000000000', '17000000000x0'), reason: 'malformed' },
    { name: 'surrounding spaces', header: ` ${good}`, reason: 'malformed' },
    { name: 'no header', header: undefined, reason: 'missing' },
    { name: 'an empty header', header: '', reason: 'missing' },
    { name: 'two headers', header: [good, good], reason: 'malformed' },
  ];

  for (const c of cases) {
    it(`${c.reason === undefined ? 'accepts' : `refuses (${c.reason})`} ${c.name}`, () => {
      const verdict = auth.verify(c.header, { ...claim, ...c.claim }, c.now ?? NOW);
      if (c.reason === undefined) expect(verdict).toEqual({ ok: true });
      else expect(verdict).toMatchObject({ ok: false, reason: c.reason });
    });
  }

  it('refuses a short secret', () => {
    expect(() => new HopAuth('short', WINDOW)).toThrow(/at least 16/);
  });

  it('makes a different secret each time', () => {
    const a = newClusterSecret();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(newClusterSecret()).not.toBe(a);
  });
});
