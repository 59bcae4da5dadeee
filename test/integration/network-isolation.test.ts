// Tenants' containers cannot reach the host, each other, link-local (metadata) or the operator's
// blocked networks; the services the operator lists for an app are reachable by that app only;
// egress closed blocks what egress open reaches. Real iptables, real containers, and only servers
// of this test's own on this machine:
//   - a listener in this process on every host address (probed at the network's gateway and at the
//     host's primary address);
//   - a network namespace of its own joined to the host by a veth pair, holding three address
//     ranges that stand for the outside: 169.254.213.1 (link-local, a "metadata service"),
//     10.213.0.1 (an "operator network", blocked by FC_BLOCKED_NETWORKS, with one allowed service)
//     and 198.51.100.1 (TEST-NET-2, "the internet"). Before any probe, the route to each is checked
//     to go into that veth, so nothing leaves the machine.
// Each blocked probe has a control that reaches the same server from a container on Docker's
// default bridge (no isolation there), so a probe cannot pass for a missing server.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys, type ContainerSpec } from '../../src/dispatcher/container-runtime.js';
import { DockerRuntime } from '../../src/dispatcher/runtime/docker-runtime.js';
import { applyRuleset } from '../../src/dispatcher/runtime/iptables.js';
import { bridgeNameOf, chainsOf, isolationRules, type IsolationPolicy } from '../../src/dispatcher/runtime/network-isolation.js';
import { removeTenantNetwork } from '../../src/dispatcher/runtime/tenant-network.js';
import { containersOfHost, docker, removeContainersOfHost } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { startTestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const exec = promisify(execFile);
const hostId = uniqueName('fctest-host');
const network = `fc-${hostId}`;
const tag = randomBytes(3).toString('hex');
const ns = `fct-${tag}`;
const vethHost = `fcv${tag}a`;
const vethNs = `fcv${tag}b`;
const outside = {
  metadata: { ns: '169.254.213.1', host: '169.254.213.2' },
  operator: { ns: '10.213.0.1', host: '10.213.0.2' },
  internet: { ns: '198.51.100.1', host: '198.51.100.2' },
};
const SERVICE_PORT = 8080;
const OTHER_PORT = 8081;
/** Made once the host's listener has its port: blog may reach it at the host's primary address. */
let policy: IsolationPolicy;

function runtime(): DockerRuntime {
  return new DockerRuntime({
    dockerHost: 'unix:///var/run/docker.sock',
    network,
    sandboxes: { size: 1, image: 'fastcontainer/hello', labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId }, warn: () => undefined },
    isolation: { hostId, policy },
  });
}

let rt: DockerRuntime;
let seq = 0;
function spec(app: string, egress: 'open' | 'closed'): ContainerSpec {
  seq += 1;
  return {
    name: `fctest-${hostId}-${seq}`, image: 'fastcontainer/hello', command: null, env: {}, port: 8080, volumes: [],
    cpus: 0.2, memory: 32 * 1024 * 1024, pidsLimit: 32, egress,
    labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId, [labelKeys.app]: app, [labelKeys.container]: `entry-${seq}` },
  };
}

async function startTenant(app: string, egress: 'open' | 'closed'): Promise<{ id: string; ip: string }> {
  const id = await rt.create(spec(app, egress));
  const c = await rt.start(id);
  expect(c.ip).not.toBeNull();
  return { id, ip: c.ip as string };
}

/**
 * From inside container `id`: 'answered' if an HTTP server answers at ip:port within 3 s,
 * 'refused' if the connection is refused, else what happened. By what nc says, not its exit
 * status, which the pipeline does not always carry.
 */
async function answersAt(id: string, ip: string, port: number): Promise<string> {
  // stdin is held open a while: busybox nc half-closes at its end, and Node's servers close a
  // half-closed connection before an answer that takes a moment (a Redis round trip) is written.
  const probe = `(printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n'; sleep 1) | /bin/busybox nc -w 3 ${ip} ${port}`;
  const { stdout, stderr } = await exec('docker', ['exec', id, '/bin/busybox', 'sh', '-c', probe], { timeout: 10_000 })
    .catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? String(err) }));
  if (stdout.startsWith('HTTP/1.')) return 'answered';
  if (/connection refused/i.test(stderr)) return 'refused';
  return `neither (${JSON.stringify(stdout.slice(0, 80))}, ${JSON.stringify(stderr.slice(0, 200))})`;
}

let hostServer: net.Server;
const hostSockets = new Set<net.Socket>();
let hostPort: number;
let nsServer: ChildProcess | undefined;
let control: string;
let gateway: string;
let primary: string;
let blog: { id: string; ip: string };
let shop: { id: string; ip: string };
let other: { id: string; ip: string };

/** The host's first non-loopback IPv4 address that is not a Docker bridge's or our veth's. */
function primaryAddress(): string {
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (name === 'lo' || name.startsWith('docker') || name.startsWith('br-') || name.startsWith('fc') || name.startsWith('veth')) continue;
    const a = addrs?.find((x) => x.family === 'IPv4' && !x.internal);
    if (a !== undefined) return a.address;
  }
  throw new Error('no primary IPv4 address on this host');
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  return (await exec(cmd, args)).stdout;
}

beforeAll(async () => {
  // The stand-ins for the outside, in a namespace of the test's own.
  await sh('ip', 'netns', 'add', ns);
  await sh('ip', 'link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs);
  await sh('ip', 'link', 'set', vethNs, 'netns', ns);
  for (const r of Object.values(outside)) {
    await sh('ip', 'addr', 'add', `${r.host}/30`, 'dev', vethHost);
    await sh('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${r.ns}/30`, 'dev', vethNs);
  }
  await sh('ip', 'link', 'set', vethHost, 'up');
  await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', vethNs, 'up');
  await sh('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
  for (const r of Object.values(outside)) {
    expect(await sh('ip', 'route', 'get', r.ns)).toContain(`dev ${vethHost}`);
  }
  const script = `const http=require('node:http');for(const p of [${SERVICE_PORT},${OTHER_PORT}])http.createServer((q,s)=>s.end('fctest-answer '+p)).listen(p,'0.0.0.0',()=>console.log('listening '+p));`;
  nsServer = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  nsServer.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  await eventually(() => out.includes(`listening ${SERVICE_PORT}`) && out.includes(`listening ${OTHER_PORT}`), { timeout: 10_000, what: 'the servers in the namespace' });

  // A listener on every address of the host, as the dispatcher, CoreAPI and Redis could be.
  hostServer = net.createServer((s) => {
    hostSockets.add(s);
    s.on('close', () => hostSockets.delete(s));
    s.end('HTTP/1.0 200 OK\r\n\r\nfctest-answer host\n');
  });
  await new Promise<void>((resolve) => hostServer.listen(0, '0.0.0.0', resolve));
  hostPort = (hostServer.address() as net.AddressInfo).port;
  primary = primaryAddress();
  policy = {
    blockedNetworks: ['10.213.0.0/24'],
    services: [
      { app: 'blog', address: outside.operator.ns, port: SERVICE_PORT, protocol: 'tcp' },
      // A service on the host itself, as a tenant's database on the compute host would be.
      { app: 'blog', address: primary, port: hostPort, protocol: 'tcp' },
    ],
  };

  rt = runtime();
  await rt.ping();
  await rt.prepare();
  const info = await docker.getNetwork(network).inspect();
  gateway = info.IPAM?.Config?.[0]?.Gateway ?? '';
  expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  blog = await startTenant('blog', 'open');
  shop = await startTenant('shop', 'closed');
  other = await startTenant('other', 'open');

  // The control: a container of the test's own on Docker's default bridge, where no rule of ours applies.
  const c = await docker.createContainer({
    Image: 'fastcontainer/hello', Entrypoint: ['/bin/busybox', 'sleep', '600'], Cmd: [],
    Labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId },
    HostConfig: { NetworkMode: 'bridge', CapDrop: ['ALL'] },
  });
  await c.start();
  control = c.id;
}, 120_000);

afterAll(async () => {
  await rt?.close();
  await removeContainersOfHost(hostId);
  await removeTenantNetwork(docker, network, hostId);
  if (nsServer?.pid !== undefined && nsServer.exitCode === null) {
    nsServer.kill('SIGTERM');
    await new Promise((r) => nsServer?.once('exit', r));
  }
  await exec('ip', ['link', 'del', vethHost]).catch(() => undefined);
  await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  // The controls' connections, which busybox nc leaves half-open.
  for (const x of hostSockets) x.destroy();
  await new Promise((r) => hostServer?.close(r));
}, 60_000);

describe('network isolation', () => {
  it('keeps a tenant from the host: a port at the network\'s gateway and at the host\'s primary address', async () => {
    expect(await answersAt(control, gateway, hostPort)).toBe('answered');
    expect(await answersAt(control, primary, hostPort)).toBe('answered');
    for (const c of [blog, shop, other]) expect(await answersAt(c.id, gateway, hostPort)).toBe('refused');
    for (const c of [shop, other]) expect(await answersAt(c.id, primary, hostPort)).toBe('refused');
  });

  it('opens a service on the host to the app it is listed for, at that address only', async () => {
    expect(await answersAt(blog.id, primary, hostPort)).toBe('answered');
    expect(await answersAt(blog.id, gateway, hostPort)).toBe('refused');
    expect(await answersAt(other.id, primary, hostPort)).toBe('refused');
  });

  it('keeps a tenant from another tenant\'s container, which the host still reaches', async () => {
    const res = await fetch(`http://${other.ip}:8080/`);
    expect(res.status).toBe(200);
    expect(await answersAt(blog.id, other.ip, 8080)).toBe('refused');
    expect(await answersAt(other.id, blog.ip, 8080)).toBe('refused');
  });

  it('keeps a tenant from link-local (metadata) and from the operator\'s blocked networks', async () => {
    expect(await answersAt(control, outside.metadata.ns, SERVICE_PORT)).toBe('answered');
    expect(await answersAt(control, outside.operator.ns, OTHER_PORT)).toBe('answered');
    expect(await answersAt(other.id, outside.metadata.ns, SERVICE_PORT)).toBe('refused');
    expect(await answersAt(other.id, outside.operator.ns, OTHER_PORT)).toBe('refused');
  });

  it('opens a listed service to its app only, and only that port', async () => {
    expect(await answersAt(blog.id, outside.operator.ns, SERVICE_PORT)).toBe('answered');
    expect(await answersAt(blog.id, outside.operator.ns, OTHER_PORT)).toBe('refused');
    expect(await answersAt(other.id, outside.operator.ns, SERVICE_PORT)).toBe('refused');
  });

  it('leaves the internet open, unless the app closes its egress', async () => {
    expect(await answersAt(other.id, outside.internet.ns, SERVICE_PORT)).toBe('answered');
    expect(await answersAt(shop.id, outside.internet.ns, SERVICE_PORT)).toBe('refused');
  });

  it('runs tenants without NET_RAW (no spoofing) and with no-new-privileges', async () => {
    const { stdout } = await exec('docker', ['exec', blog.id, '/bin/busybox', 'grep', '-E', 'CapBnd|NoNewPrivs', '/proc/1/status']);
    const bounding = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(stdout)?.[1] ?? 'ffff'}`);
    expect(bounding & (1n << 13n)).toBe(0n);
    expect(stdout).toMatch(/NoNewPrivs:\s*1/);
  });

  it('writes the rules again after a restart that finds them gone, without duplicating jumps', async () => {
    const chains = chainsOf(network);
    // As after a crash and a firewall reload: our chain emptied.
    await sh('iptables', '-w', '-F', chains.forward);
    expect(await answersAt(shop.id, outside.internet.ns, SERVICE_PORT)).toBe('answered');
    const again = runtime();
    try {
      await again.ping();
      expect(await answersAt(shop.id, outside.internet.ns, SERVICE_PORT)).toBe('refused');
      expect(await answersAt(blog.id, outside.operator.ns, SERVICE_PORT)).toBe('answered');
      const rules = await sh('iptables', '-w', '-S');
      expect(rules.split('\n').filter((l) => l.includes(`-j ${chains.forward}`))).toHaveLength(1);
      expect(rules.split('\n').filter((l) => l.includes(`-j ${chains.host}`))).toHaveLength(1);
    } finally {
      // Its containers remain: closing it leaves network and rules in place.
      await again.close();
    }
    expect(await sh('iptables', '-w', '-S')).toContain(`-N ${chains.forward}`);
  });

  it('removes its rules and network on a clean stop once no container is left', async () => {
    const chains = chainsOf(network);
    for (const c of [blog, shop, other]) await rt.remove(c.id);
    await rt.close();
    await eventually(async () => !(await sh('iptables', '-w', '-S')).includes(chains.forward), { timeout: 10_000, what: 'the rules to go' });
    const rules = await sh('iptables', '-w', '-S');
    expect(rules).not.toContain(chains.host);
    expect(await sh('ip6tables', '-w', '-S')).not.toContain(chains.ipv6);
    await expect(docker.getNetwork(network).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('the attack of issue 8 through the whole stack', () => {
  it('keeps a tenant\'s code from the dispatcher, the proxy and the CoreAPI, even listening on every address', async () => {
    const t = await startTestStack({ env: { FC_LISTEN_HOST: '0.0.0.0' } });
    try {
      // Never frozen while the test execs into it.
      const res = await t.api('POST', '/v1/apps', { name: 'tenant', hostnames: ['tenant.test'], image: 'fastcontainer/hello', freezeAfter: 0 });
      expect(res.status).toBe(201);
      // The dispatcher reaches, probes and serves its container.
      expect((await t.get('tenant.test')).status).toBe(200);
      const [tenant] = await containersOfHost(t.hostId);
      expect(tenant).toBeDefined();
      const gw = (await docker.getNetwork(t.config.dockerNetwork).inspect()).IPAM?.Config?.[0]?.Gateway ?? '';
      expect(gw).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const ports = [t.dispatcherUrl, t.proxyUrl, t.apiUrl].map((u) => Number(new URL(u).port));
      for (const port of ports) {
        // The control: they listen on every address, and a container outside the isolation reaches them.
        expect(await answersAt(control, primary, port)).toBe('answered');
        expect(await answersAt(tenant?.Id as string, gw, port)).toBe('refused');
        expect(await answersAt(tenant?.Id as string, primary, port)).toBe('refused');
      }
    } finally {
      await t.cleanup();
    }
    await expect(docker.getNetwork(t.config.dockerNetwork).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});

describe('network isolation turned off', () => {
  it('removes the rules an earlier run with isolation left on its network', async () => {
    const host = uniqueName('fctest-host');
    const name = `fc-${host}`;
    const left = isolationRules({ name, bridge: bridgeNameOf(name) }, { blockedNetworks: [], services: [] }, [{ ip: '10.213.9.9', app: 'blog', egress: 'closed' }]);
    await applyRuleset(left);
    expect(await sh('iptables', '-w', '-S')).toContain(`-N ${chainsOf(name).forward}`);
    const off = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: name, isolation: { hostId: host, policy: null } });
    try {
      await off.ping();
      const rules = await sh('iptables', '-w', '-S');
      expect(rules).not.toContain(chainsOf(name).forward);
      expect(rules).not.toContain(`fastcontainer network ${name}`);
      // The network is still made, with inter-container traffic off.
      expect((await docker.getNetwork(name).inspect()).Options).toMatchObject({ 'com.docker.network.bridge.enable_icc': 'false' });
    } finally {
      await off.close();
      await removeTenantNetwork(docker, name, host);
    }
  });
});

describe('network isolation refuses what it cannot hold', () => {
  it('refuses Docker\'s default bridge, which every container on the engine shares', async () => {
    const shared = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge', isolation: { hostId, policy: { blockedNetworks: [], services: [] } } });
    const err = await shared.ping().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'FC_ERR_CONFIG' });
    expect((err as Error).message).toMatch(/default bridge.*FC_NETWORK_ISOLATION=false/);
    expect(await sh('iptables', '-w', '-S')).not.toContain('fastcontainer network bridge');
    await shared.close();
  });

  it('refuses a network another host\'s dispatcher made, and leaves it alone', async () => {
    const otherHost = uniqueName('fctest-host');
    const theirs = `fc-${otherHost}`;
    const owner = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: theirs, isolation: { hostId: otherHost, policy: { blockedNetworks: [], services: [] } } });
    try {
      await owner.ping();
      const intruder = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: theirs, isolation: { hostId, policy: { blockedNetworks: [], services: [] } } });
      const err = await intruder.ping().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'FC_ERR_CONFIG' });
      expect((err as Error).message).toContain(`belongs to the dispatcher of host ${otherHost}`);
      await intruder.close();
      expect((await docker.getNetwork(theirs).inspect()).Name).toBe(theirs);
      expect(await sh('iptables', '-w', '-S')).toContain(`-N ${chainsOf(theirs).forward}`);
    } finally {
      await owner.close();
      await removeTenantNetwork(docker, theirs, otherHost);
    }
    await expect(docker.getNetwork(theirs).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});
