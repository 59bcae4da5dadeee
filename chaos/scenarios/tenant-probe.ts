// A tenant probing the platform from inside its container (issue 8, section 1). The cluster runs
// with the build's default listen address (FC_LISTEN_HOST unset). From tenant A's container
// (docker exec, busybox wget with a 2 s deadline) it tries: a listener of this run's on all of the
// host's addresses, the dispatcher, proxy and CoreAPI ports at the host's bridge address, tenant
// B's container, and a stand-in metadata service (a container of this run's at 169.254.169.254 on
// a network of this run's): every one must be refused. An "internet" server (a container of this
// run's on another network of its own, reached through the host's routing like any outside
// address) must stay reachable. Nothing is sent to any address this run did not create.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chaosApp, runId, startCluster } from '../lib/cluster.js';
import { CHAOS_LABEL, docker, exec, ipOf } from '../lib/docker.js';
import { Marks, type Scenario } from '../lib/scenario.js';

async function gatewayOf(id: string): Promise<string | null> {
  const info = await docker.getContainer(id).inspect();
  for (const n of Object.values(info.NetworkSettings.Networks ?? {})) if (n.Gateway) return n.Gateway;
  const mode = info.HostConfig.NetworkMode ?? '';
  return mode.startsWith('container:') ? gatewayOf(mode.slice('container:'.length)) : null;
}

/** A container of this run's: busybox httpd on `port`, on `network`, at `ip` if given. */
async function ownServer(name: string, network: string, port: number, ip?: string): Promise<string> {
  const ct = await docker.createContainer({
    name: `fcchaos-${runId}-${name}`,
    Image: 'fastcontainer/hello',
    Entrypoint: ['/bin/busybox', 'httpd', '-f', '-p', String(port), '-h', '/www'],
    Cmd: [],
    Labels: { [CHAOS_LABEL]: runId },
    HostConfig: { NetworkMode: network, CapDrop: ['ALL'], CapAdd: port < 1024 ? ['NET_BIND_SERVICE'] : [], Memory: 32 * 1024 * 1024 },
    ...(ip === undefined ? {} : { NetworkingConfig: { EndpointsConfig: { [network]: { IPAMConfig: { IPv4Address: ip } } } } }),
  });
  await ct.start();
  return ct.id;
}

/** reached: a connection was made (any HTTP answer, even an error status); the wget output otherwise. */
async function probe(from: string, url: string): Promise<{ reached: boolean; output: string }> {
  const r = await exec(from, ['/bin/busybox', 'wget', '-T', '2', '-q', '-O', '-', url], 8000);
  const reached = r.code === 0 || /server returned error|HTTP\/1\.[01] \d{3}/.test(r.output);
  return { reached, output: r.output.trim().split('\n').slice(-1)[0]?.slice(0, 80) ?? '' };
}

export const tenantProbe: Scenario = {
  name: 'tenant-probe',
  quick: true,
  async run() {
    const listener = http.createServer((_req, res) => res.end('chaos host listener\n'));
    await new Promise<void>((r) => listener.listen(0, '0.0.0.0', () => r()));
    const listenerPort = (listener.address() as AddressInfo).port;
    const c = await startCluster('tenant-probe', { hosts: 1, listenHost: null });
    try {
      for (const app of ['ta', 'tb']) {
        await c.createApp(chaosApp(app, { minContainers: 1, maxContainers: 1 }));
      }
      for (const app of ['ta', 'tb']) if ((await c.untilReady(app, 1, 30_000)) === undefined) throw new Error(`${app} did not get a ready container within 30 s`);
      const a = (await c.running('ta'))[0]!;
      const b = (await c.running('tb'))[0]!;
      const gw = await gatewayOf(a.id);
      const bIp = await ipOf(b.id);
      // Networks of this run's: the "internet" and the metadata stand-in.
      const inet = await docker.createNetwork({ Name: `fcchaos-${runId}-inet`, Labels: { [CHAOS_LABEL]: runId } });
      const inetId = await ownServer('inet', `fcchaos-${runId}-inet`, 8080);
      const inetIp = await ipOf(inetId);
      let metaNote = '';
      let metaIp: string | null = null;
      try {
        await docker.createNetwork({
          Name: `fcchaos-${runId}-meta`,
          Labels: { [CHAOS_LABEL]: runId },
          IPAM: { Config: [{ Subnet: '169.254.169.248/29', Gateway: '169.254.169.249' }] },
        });
        await ownServer('meta', `fcchaos-${runId}-meta`, 80, '169.254.169.254');
        metaIp = '169.254.169.254';
      } catch (err) {
        metaNote = `the metadata stand-in could not be made: ${String((err as Error).message).slice(0, 120)}`;
      }
      void inet;
      const port = (u: string) => new URL(u).port;
      const blocked: { what: string; url: string }[] = [
        { what: 'host listener (0.0.0.0)', url: `http://${gw}:${listenerPort}/` },
        { what: 'dispatcher port', url: `http://${gw}:${c.dispatchers[0]!.port}/v1/containers` },
        { what: 'proxy port', url: `http://${gw}:${port(c.proxyUrl)}/` },
        { what: 'CoreAPI port', url: `http://${gw}:${port(c.apiUrl)}/v1/apps` },
        { what: "another tenant's container", url: `http://${bIp}:8080/` },
        ...(metaIp === null ? [] : [{ what: 'metadata stand-in', url: `http://${metaIp}/` }]),
      ];
      const m = new Marks();
      const seen: string[] = [];
      let reached = 0;
      for (const p of blocked) {
        const r = await probe(a.id, p.url);
        if (r.reached) reached += 1;
        seen.push(`${p.what}: ${r.reached ? 'REACHED' : 'refused'}`);
        m.check(`${p.what} refused`, !r.reached);
      }
      m.check('a metadata stand-in was made and probed', metaIp !== null);
      const out = await probe(a.id, `http://${inetIp}:8080/`);
      seen.push(`own "internet" server: ${out.reached ? 'reached' : `REFUSED (${out.output})`}`);
      m.check('outbound to the "internet" allowed', out.reached);
      return {
        did: "from a tenant's container: the host's ports, another tenant, a metadata stand-in, an \"internet\" server",
        sent: blocked.length + 1,
        failed: reached + (out.reached ? 0 : 1),
        sideEffects: `platform/tenant addresses reached: ${reached} of ${blocked.length}; ${seen.join('; ')}`,
        recovery: '—',
        goal: 'all refused; outbound to the internet allowed',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`host bridge address ${gw}, tenant B ${bIp}, internet ${inetIp}`, ...(metaNote ? [metaNote] : []), ...m.missed()],
      };
    } finally {
      listener.close();
      await c.cleanup();
    }
  },
};
