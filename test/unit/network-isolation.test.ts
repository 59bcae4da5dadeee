import { describe, expect, it } from 'vitest';
import {
  bridgeNameOf, chainsOf, isolationRules, needsOwnRules, restoreScript, type ContainerFacts, type IsolationPolicy, type Rule,
} from '../../src/dispatcher/runtime/network-isolation.js';
import { loadConfig } from '../../src/shared/config.js';
import { parseCidrList, parseTenantServices } from '../../src/shared/network-policy.js';

const net = { name: 'fc-host1', bridge: 'fcbr0' };
const policy: IsolationPolicy = {
  blockedNetworks: ['10.0.0.0/8'],
  services: [
    { app: 'blog', address: '10.0.0.5', port: 3306, protocol: 'tcp' },
    { app: '*', address: '10.0.0.9', port: 2049, protocol: 'udp' },
  ],
};
const blog: ContainerFacts = { ip: '172.20.0.2', app: 'blog', egress: 'open' };
const shop: ContainerFacts = { ip: '172.20.0.3', app: 'shop', egress: 'closed' };

/**
 * A tiny model of how the kernel walks our chains for a NEW packet (replies are accepted by the
 * first rule of each chain): 'accept', 'reject' or 'return' (on to Docker's own rules).
 */
function verdict(rules: readonly Rule[], p: { src: string; dst: string; port: number; proto: 'tcp' | 'udp'; out: string; dnat?: boolean }): string {
  const inCidr = (ip: string, cidr: string) => {
    const [base, bits] = cidr.split('/') as [string, string];
    const n = (a: string) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(bits));
    return Math.floor(n(ip) / size) === Math.floor(n(base) / size);
  };
  for (const r of rules) {
    const arg = (flag: string) => {
      const i = r.indexOf(flag);
      return i < 0 ? undefined : r[i + 1];
    };
    const state = arg('--ctstate');
    if (state === 'RELATED,ESTABLISHED') continue;
    if (state === 'DNAT' && p.dnat !== true) continue;
    if (arg('-s') !== undefined && !inCidr(p.src, arg('-s') as string)) continue;
    if (arg('-d') !== undefined && !inCidr(p.dst, arg('-d') as string)) continue;
    if (arg('--ctorigdst') !== undefined && !inCidr(p.dst, arg('--ctorigdst') as string)) continue;
    if (arg('--ctorigdstport') !== undefined && Number(arg('--ctorigdstport')) !== p.port) continue;
    if (arg('-p') !== undefined && arg('-p') !== p.proto) continue;
    if (arg('-o') !== undefined && arg('-o') !== p.out) continue;
    return (arg('-j') as string).toLowerCase();
  }
  return 'return';
}

describe('isolationRules', () => {
  const rules = isolationRules(net, policy, [shop, blog]);
  const chain = (name: string) => rules.chains.find((c) => c.name === name)?.rules ?? [];
  const names = chainsOf(net.name);

  it.each([
    // [what, from, to, port, proto, out interface, through DNAT, verdict]
    ['its own database', blog, '10.0.0.5', 3306, 'tcp', 'eth0', false, 'accept'],
    ['another port on that address', blog, '10.0.0.5', 22, 'tcp', 'eth0', false, 'reject'],
    ['another app\'s database', shop, '10.0.0.5', 3306, 'tcp', 'eth0', false, 'reject'],
    ['a service for every app', shop, '10.0.0.9', 2049, 'udp', 'eth0', false, 'accept'],
    ['that service over the other protocol', blog, '10.0.0.9', 2049, 'tcp', 'eth0', false, 'reject'],
    ['the internet, egress open', blog, '203.0.113.7', 443, 'tcp', 'eth0', false, 'return'],
    ['the internet, egress closed', shop, '203.0.113.7', 443, 'tcp', 'eth0', false, 'reject'],
    ['cloud metadata', blog, '169.254.169.254', 80, 'tcp', 'eth0', false, 'reject'],
    ['a blocked network', blog, '10.20.30.40', 80, 'tcp', 'eth0', false, 'reject'],
    ['another container on the network', blog, '172.20.0.3', 8080, 'tcp', net.bridge, false, 'reject'],
    ['a host port forwarded to a container elsewhere', blog, '172.18.0.2', 80, 'tcp', 'br-other', true, 'reject'],
  ] as const)('forwarding: %s -> %s', (_what, from, dst, port, proto, out, dnat, expected) => {
    expect(verdict(chain(names.forward), { src: from.ip, dst, port, proto, out, dnat })).toBe(expected);
  });

  it.each([
    ['the dispatcher on the gateway', blog, '172.20.0.1', 8082, 'tcp', 'reject'],
    ['Redis on the host\'s primary address', shop, '192.0.2.2', 6379, 'tcp', 'reject'],
    ['its own service on the host', blog, '10.0.0.5', 3306, 'tcp', 'accept'],
    ['a service for every app on the host', shop, '10.0.0.9', 2049, 'udp', 'accept'],
    ['another app\'s service on the host', shop, '10.0.0.5', 3306, 'tcp', 'reject'],
  ] as const)('to the host: %s', (_what, from, dst, port, proto, expected) => {
    expect(verdict(chain(names.host), { src: from.ip, dst, port, proto, out: 'lo' })).toBe(expected);
  });

  it('lets replies through first in every chain, and rejects new IPv6 from the bridge', () => {
    for (const c of rules.chains) expect(c.rules[0]).toEqual(['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'RETURN']);
    expect(chain(names.ipv6).slice(1)).toEqual([['-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'], ['-j', 'REJECT']]);
  });

  it('jumps only for packets from its own bridge, marked with the network name', () => {
    expect(rules.jumps.map((j) => `${j.family} ${j.from}`)).toEqual(['ipv4 DOCKER-USER', 'ipv4 INPUT', 'ipv6 INPUT', 'ipv6 FORWARD']);
    for (const j of rules.jumps) {
      expect(j.rule.slice(0, 2)).toEqual(['-i', net.bridge]);
      expect(j.rule).toContain('fastcontainer network fc-host1');
    }
  });

  it('gives the same rules whatever order the containers were learnt in', () => {
    expect(isolationRules(net, policy, [blog, shop])).toEqual(rules);
  });

  it('always blocks link-local, even with no blocked networks configured', () => {
    const bare = isolationRules(net, { blockedNetworks: [], services: [] }, [blog]);
    const fwd = bare.chains.find((c) => c.name === names.forward)?.rules ?? [];
    expect(verdict(fwd, { src: blog.ip, dst: '169.254.169.254', port: 80, proto: 'tcp', out: 'eth0' })).toBe('reject');
    expect(verdict(fwd, { src: blog.ip, dst: '10.1.2.3', port: 80, proto: 'tcp', out: 'eth0' })).toBe('return');
  });
});

describe('names', () => {
  it('fit the kernel\'s limits and differ between networks', () => {
    for (const n of ['fc-x', `fc-${'h'.repeat(63)}`]) {
      expect(bridgeNameOf(n).length).toBeLessThanOrEqual(15);
      for (const c of Object.values(chainsOf(n))) expect(c.length).toBeLessThanOrEqual(28);
    }
    expect(chainsOf('fc-a').forward).not.toBe(chainsOf('fc-b').forward);
  });
});

describe('needsOwnRules', () => {
  it.each([
    ['blog', 'open', true],
    ['shop', 'open', false],
    ['shop', 'closed', true],
  ] as const)('%s with egress %s: %s', (app, egress, expected) => {
    expect(needsOwnRules(policy, app, egress)).toBe(expected);
  });
});

describe('restoreScript', () => {
  it('declares (and so empties) each chain before appending its rules, quoting what needs it', () => {
    const text = restoreScript(isolationRules(net, policy, [blog]).chains, 'ipv4');
    const lines = text.trim().split('\n');
    expect(lines[0]).toBe('*filter');
    expect(lines.at(-1)).toBe('COMMIT');
    expect(lines.filter((l) => l.startsWith(':'))).toEqual([`:${chainsOf(net.name).forward} - [0:0]`, `:${chainsOf(net.name).host} - [0:0]`]);
    expect(text).not.toContain(chainsOf(net.name).ipv6);
  });
});

describe('policy options', () => {
  it.each([
    ['10.0.0.0/8, 192.168.0.0/16 10.0.0.0/8', ['10.0.0.0/8', '192.168.0.0/16']],
    ['10.1.2.3', ['10.1.2.3/32']],
    ['10.0.0.0/33', undefined],
    ['10.0.0/8', undefined],
    ['fe80::/10', undefined],
  ])('FC_BLOCKED_NETWORKS=%j', (raw, expected) => {
    expect(parseCidrList(raw)).toEqual(expected);
  });

  it.each([
    ['blog=10.0.0.5:3306 *=10.0.0.9:2049/udp', [
      { app: 'blog', address: '10.0.0.5', port: 3306, protocol: 'tcp' },
      { app: '*', address: '10.0.0.9', port: 2049, protocol: 'udp' },
    ]],
    ['blog=10.0.0.5', undefined],
    ['blog=10.0.0.5:0', undefined],
    ['Blog=10.0.0.5:3306', undefined],
    ['blog=db.internal:3306', undefined],
    ['blog=10.0.0.5:3306/sctp', undefined],
  ])('FC_TENANT_SERVICES=%j', (raw, expected) => {
    expect(parseTenantServices(raw)).toEqual(expected);
  });

  it('makes isolation the default, on a network of the host\'s own', () => {
    const c = loadConfig({ env: { FC_HOST_ID: 'h1' } });
    expect(c).toMatchObject({ networkIsolation: true, dockerNetwork: 'fc-h1', blockedNetworks: [], tenantServices: [] });
  });
});
