// The operator's network policy for tenants' containers, as configuration reads it: which
// networks no container may reach (FC_BLOCKED_NETWORKS) and which services of the operator's each
// app may reach (FC_TENANT_SERVICES). The dispatcher turns it into iptables rules
// (src/dispatcher/runtime/network-isolation.ts).

export type Egress = 'open' | 'closed';
export type Protocol = 'tcp' | 'udp';

/** A service of the operator's that tenants may reach: all apps ('*') or one. */
export interface TenantService {
  app: string;
  address: string;
  port: number;
  protocol: Protocol;
}

/** Always blocked: link-local, where cloud metadata services answer (169.254.169.254). */
export const LINK_LOCAL = '169.254.0.0/16';

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const APP = /^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/;

export function isIpv4(s: string): boolean {
  return IPV4.test(s);
}

/** "10.0.0.0/8" or a single address (as /32); undefined if neither. */
export function parseCidr(raw: string): string | undefined {
  const [addr, bits, more] = raw.trim().split('/');
  if (more !== undefined || addr === undefined || !isIpv4(addr)) return undefined;
  if (bits === undefined) return `${addr}/32`;
  if (!/^\d{1,2}$/.test(bits) || Number(bits) > 32) return undefined;
  return `${addr}/${Number(bits)}`;
}

/** A comma- or space-separated list of CIDRs; undefined if any is not one. */
export function parseCidrList(raw: string): string[] | undefined {
  const out: string[] = [];
  for (const item of raw.split(/[\s,]+/).filter((s) => s !== '')) {
    const cidr = parseCidr(item);
    if (cidr === undefined) return undefined;
    if (!out.includes(cidr)) out.push(cidr);
  }
  return out;
}

/**
 * `FC_TENANT_SERVICES`: entries `<app or *>=<IPv4>:<port>[/tcp|/udp]`, separated by commas or
 * spaces, e.g. "blog=10.0.0.5:3306 shop=10.0.0.6:3306 *=10.0.0.9:2049". undefined if any is wrong.
 */
export function parseTenantServices(raw: string): TenantService[] | undefined {
  const out: TenantService[] = [];
  for (const item of raw.split(/[\s,]+/).filter((s) => s !== '')) {
    const m = /^([^=]+)=([\d.]+):(\d{1,5})(?:\/(tcp|udp))?$/.exec(item);
    if (m === null) return undefined;
    const [, app, address, port, protocol] = m as unknown as [string, string, string, string, string | undefined];
    if (!APP.test(app) || !isIpv4(address) || Number(port) < 1 || Number(port) > 65535) return undefined;
    out.push({ app, address, port: Number(port), protocol: (protocol ?? 'tcp') as Protocol });
  }
  return out;
}

