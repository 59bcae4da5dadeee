// What tenants' containers may reach, as iptables rules: a pure function of the operator's policy,
// the dispatcher's network and the containers on it. No I/O here; iptables.ts applies the result
// and tenant-network.ts keeps it converged.
//
// Every packet a container sends leaves its namespace on the network's bridge interface, so the
// rules match `-i <bridge>` and nothing else on the machine is touched:
//   - to the host itself (any of its addresses, any port): the INPUT chain `FC-<h>-H` rejects all
//     but replies (ESTABLISHED,RELATED: the dispatcher's own connections to its containers) and
//     the services the operator lists;
//   - through the host (FORWARD, from DOCKER-USER): `FC-<h>-F` rejects another container on the
//     same network, a host port that Docker forwards to some container elsewhere (DNAT), the
//     blocked networks (link-local 169.254.0.0/16 always: cloud metadata), and for an app whose
//     egress is closed everything else; listed services pass first. Containers on other Docker
//     networks are already cut off by Docker's own DOCKER-ISOLATION chains.
//   - IPv6: the networks are IPv4 only, so `FC-<h>-6` rejects every new IPv6 connection from the
//     bridge (a container's link-local fe80:: address would otherwise reach the host's [::] ports).
//
// Worked example: network "fc-host1" on bridge fc1a2b3c4d5e, policy {blocked: [10.0.0.0/8],
// services: [blog -> 10.0.0.5:3306/tcp]}, containers {blog at 172.20.0.2, open}, {shop at
// 172.20.0.3, closed}. From 172.20.0.2: 10.0.0.5:3306 passes (F: service), 10.0.0.5:22 is
// rejected (F: blocked 10.0.0.0/8), 172.20.0.3 is rejected (F: -o bridge), the gateway
// 172.20.0.1:8082 is rejected (H), 203.0.113.7:443 (the internet) passes. From 172.20.0.3 only replies pass.

import { createHash } from 'node:crypto';
import { LINK_LOCAL, type Egress, type TenantService } from '../../shared/network-policy.js';

export { LINK_LOCAL, type Egress, type TenantService };

export interface IsolationPolicy {
  /** IPv4 CIDRs no container may reach (the link-local range is always among them). */
  blockedNetworks: readonly string[];
  services: readonly TenantService[];
}

/** A tenant container as the rules need it: its address on the network, its app, its egress. */
export interface ContainerFacts {
  ip: string;
  app: string;
  egress: Egress;
}

/** One rule: iptables arguments after `-A <chain>` (or `-C`/`-D <chain>`). */
export type Rule = readonly string[];

export interface Chain {
  family: 'ipv4' | 'ipv6';
  name: string;
  rules: Rule[];
}

/** A jump from a built-in (or Docker's) chain into one of ours, inserted first. */
export interface Jump {
  family: 'ipv4' | 'ipv6';
  from: string;
  rule: Rule;
}

export interface Ruleset {
  chains: Chain[];
  jumps: Jump[];
}

/** The services listed for this app by name (those listed for '*' are open to every container by the network's rules). */
export function servicesOf(policy: IsolationPolicy, app: string): TenantService[] {
  return policy.services.filter((s) => s.app === app);
}

/**
 * Whether a container needs rules of its own (by its address), so its address must be known and
 * its rules in place before its code runs; an app with open egress and no services of its own
 * needs none (the network's rules cover it), which keeps its cold start free of iptables calls.
 */
export function needsOwnRules(policy: IsolationPolicy, app: string, egress: Egress): boolean {
  return egress === 'closed' || servicesOf(policy, app).length > 0;
}

function hash(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 10);
}

/** The bridge interface of a network the dispatcher makes (at most 15 characters). */
export function bridgeNameOf(network: string): string {
  return `fc${hash(network)}`;
}

/** Our chains for a network (iptables chain names are at most 28 characters). */
export function chainsOf(network: string): { forward: string; host: string; ipv6: string } {
  const h = hash(network);
  return { forward: `FC-${h}-F`, host: `FC-${h}-H`, ipv6: `FC-${h}-6` };
}

/** The comment our jumps carry, so `iptables -S` says whose they are. */
export function jumpComment(network: string): string {
  return `fastcontainer network ${network}`;
}

function allow(s: TenantService, source: string | null): Rule {
  return [
    ...(source === null ? [] : ['-s', `${source}/32`]),
    '-p', s.protocol, '-m', 'conntrack', '--ctorigdst', `${s.address}/32`, '--ctorigdstport', String(s.port), '-j', 'ACCEPT',
  ];
}

const REPLIES: Rule = ['-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'RETURN'];
const REJECT: Rule = ['-j', 'REJECT'];

/**
 * Rejects what `match` matches: TCP with a reset (the caller's connect fails at once, where an
 * ICMP port-unreachable costs it a retransmission, about a second), the rest with ICMP.
 */
function reject(...match: string[]): Rule[] {
  return [[...match, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'], [...match, ...REJECT]];
}

/** Every chain and jump for `network` (on interface `bridge`) with these containers on it. */
export function isolationRules(network: { name: string; bridge: string }, policy: IsolationPolicy, containers: readonly ContainerFacts[]): Ruleset {
  const names = chainsOf(network.name);
  // Sorted, so the same facts give the same text whatever order they were learnt in.
  const sorted = [...containers].sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  const everyApp = policy.services.filter((s) => s.app === '*');
  const own = sorted.flatMap((c) => servicesOf(policy, c.app).map((s) => allow(s, c.ip)));
  const blocked = [LINK_LOCAL, ...policy.blockedNetworks.filter((n) => n !== LINK_LOCAL)];

  const forward: Rule[] = [
    REPLIES,
    ...everyApp.map((s) => allow(s, null)),
    ...own,
    ...reject('-o', network.bridge),
    ...reject('-m', 'conntrack', '--ctstate', 'DNAT'),
    ...blocked.flatMap((cidr) => reject('-d', cidr)),
    ...sorted.filter((c) => c.egress === 'closed').flatMap((c) => reject('-s', `${c.ip}/32`)),
  ];
  const host: Rule[] = [REPLIES, ...everyApp.map((s) => allow(s, null)), ...own, ...reject()];
  const ipv6: Rule[] = [REPLIES, ...reject()];

  const from = (chain: string): Rule => ['-i', network.bridge, '-m', 'comment', '--comment', jumpComment(network.name), '-j', chain];
  return {
    chains: [
      { family: 'ipv4', name: names.forward, rules: forward },
      { family: 'ipv4', name: names.host, rules: host },
      { family: 'ipv6', name: names.ipv6, rules: ipv6 },
    ],
    jumps: [
      { family: 'ipv4', from: 'DOCKER-USER', rule: from(names.forward) },
      { family: 'ipv4', from: 'INPUT', rule: from(names.host) },
      { family: 'ipv6', from: 'INPUT', rule: from(names.ipv6) },
      { family: 'ipv6', from: 'FORWARD', rule: from(names.ipv6) },
    ],
  };
}

function quote(arg: string): string {
  return /^[A-Za-z0-9_./:,=-]+$/.test(arg) ? arg : `"${arg.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * iptables-restore input (to be run with --noflush) that replaces our chains of one family
 * wholesale, in one atomic commit: declaring a chain empties it, then its rules are appended.
 */
export function restoreScript(chains: readonly Chain[], family: 'ipv4' | 'ipv6'): string {
  const mine = chains.filter((c) => c.family === family);
  return [
    '*filter',
    ...mine.map((c) => `:${c.name} - [0:0]`),
    ...mine.flatMap((c) => c.rules.map((r) => ['-A', c.name, ...r].map(quote).join(' '))),
    'COMMIT',
    '',
  ].join('\n');
}
