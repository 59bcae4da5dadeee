// The dashboard's pure parts: signed session cookies (expiry, forgery, token change, logout) and
// the per-app samples its charts draw (sums, weighted means, the ring's bounds).

import { describe, expect, it } from 'vitest';
import type { ContainerStats } from '../../src/cmdb/types.js';
import { AppSeries, sampleApps, SAMPLES_KEPT } from '../../src/coreapi/dashboard/series.js';
import { SESSION_TTL_MS, Sessions, cookieValue } from '../../src/coreapi/dashboard/session.js';

const tokens = { token: 'admin-token-0123456789', readToken: 'read-token-0123456789' };

describe('sessions', () => {
  const sessions = new Sessions(tokens);

  it('gives each token its access, and none to anything else', () => {
    expect(sessions.accessOfToken(tokens.token)).toBe('write');
    expect(sessions.accessOfToken(tokens.readToken)).toBe('read');
    expect(sessions.accessOfToken('admin-token-012345678')).toBeNull();
    expect(sessions.accessOfToken('')).toBeNull();
  });

  it('takes a session until it expires', () => {
    const { value, expiresAt } = sessions.mint('write', 1_000);
    expect(expiresAt).toBe(1_000 + SESSION_TTL_MS);
    expect(sessions.verify(value, 1_000 + SESSION_TTL_MS - 1)).toMatchObject({ access: 'write' });
    expect(sessions.verify(value, 1_000 + SESSION_TTL_MS)).toBeNull();
  });

  it('refuses a changed field, a session of another installation, and one made from a token since changed', () => {
    const { value } = sessions.mint('read', 1_000);
    const parts = value.split('.');
    for (const i of [1, 2, 3, 4]) {
      const forged = [...parts];
      forged[i] = i === 1 ? 'write' : i === 2 ? String(Number(parts[2]) + 1) : `${parts[i]}x`;
      expect(sessions.verify(forged.join('.'), 2_000), `part ${i}`).toBeNull();
    }
    expect(new Sessions({ ...tokens, readToken: 'another-read-token-0123' }).verify(value, 2_000)).toBeNull();
    expect(new Sessions(tokens).verify(value, 2_000)).toMatchObject({ access: 'read' });
    for (const junk of ['', 'v1', 'v1.read.1.2', 'v2.read.99999999999.a.b', 'v1.root.99999999999.a.b', 'v1.read.1e20.a.b']) expect(sessions.verify(junk, 2_000)).toBeNull();
  });

  it('refuses a logged-out session', () => {
    const { value } = sessions.mint('write', 1_000);
    const s = sessions.verify(value, 1_000);
    expect(s).not.toBeNull();
    sessions.revoke(s?.nonce as string, s?.expiresAt as number, 1_000);
    expect(sessions.verify(value, 1_001)).toBeNull();
  });

  it('reads the cookie among others', () => {
    expect(cookieValue('a=1; fc_session=v1.x; b=2', 'fc_session')).toBe('v1.x');
    expect(cookieValue('xfc_session=1', 'fc_session')).toBeUndefined();
    expect(cookieValue(undefined, 'fc_session')).toBeUndefined();
  });
});

function stat(app: string, id: string, rps: number, meanMs: number | null, p95Ms: number | null, inflight = 0): ContainerStats {
  return { id, app, host: 'h', cpus: 0.5, inflight, held: 0, rps, meanMs, p95Ms, throttledShare: null, cpuUsage: null, lastRequestAt: null, at: 0 };
}

describe('samples of an app', () => {
  it('adds rates and in-flight, weights means by rate, and takes the highest p95 (the worked example)', () => {
    const s = sampleApps([stat('a', 'c1', 30, 20, 40, 2), stat('a', 'c2', 10, 60, 150, 1), stat('b', 'c3', 0, null, null)], 5);
    expect(s.get('a')).toEqual({ at: 5, rps: 40, meanMs: 30, p95Ms: 150, inflight: 3, containers: 2 });
    expect(s.get('b')).toEqual({ at: 5, rps: 0, meanMs: null, p95Ms: null, inflight: 0, containers: 1 });
  });

  it('keeps SAMPLES_KEPT per app, and drops an app once it has only idle samples', () => {
    const series = new AppSeries();
    for (let i = 0; i < SAMPLES_KEPT + 10; i++) series.add(sampleApps([stat('a', 'c1', i, 10, 20)], i), i);
    const ring = series.all().a ?? [];
    expect(ring).toHaveLength(SAMPLES_KEPT);
    expect(ring[0]?.at).toBe(10);
    for (let i = 0; i < SAMPLES_KEPT - 1; i++) series.add(new Map(), 1_000 + i);
    expect(series.all().a).toBeDefined();
    expect(series.latest().a).toMatchObject({ rps: 0, containers: 0 });
    series.add(new Map(), 2_000);
    expect(series.all().a).toBeUndefined();
  });
});
