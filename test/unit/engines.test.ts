// Our code must run on Node >= 20.18: so must every package we install.

import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

describe('dependencies', () => {
  it('all accept Node 20.18.0', () => {
    const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as {
      packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    };
    const refusing = Object.entries(lock.packages)
      .filter(([p, info]) => p !== '' && !Array.isArray(info.engines) && info.engines?.node !== undefined && !semver.satisfies('20.18.0', info.engines.node))
      .map(([p, info]) => `${p}@${info.version}: ${(info.engines as { node: string }).node}`);
    expect(refusing).toEqual([]);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe('>=20.18.0');
  });
});
