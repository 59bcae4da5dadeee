// A tenant probing the platform from inside its container (issue 8, section 1). The cluster runs
// with the build's default listen address (FC_LISTEN_HOST unset). From tenant A's container
// (docker exec, busybox wget with a 3 s deadline) it tries: a listener of this run's on all of the
// host's addresses, the dispatcher, proxy and CoreAPI ports at the host's bridge address, tenant
// B's container, and a stand-in metadata service at a link-local address: every one must be
// refused. An "internet" server must stay reachable. Both stand-ins are this run's own, in a
// network namespace reached through the host's routing like any outside address
// (chaos/lib/outside.ts). Nothing is sent to any address this run did not create.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chaosApp, runId, startCluster } from '../lib/cluster.js';
import { docker, exec, ipOf } from '../lib/docker.js';
import { startOutside, type Outside } from '../lib/outside.js';
import { Marks, type Scenario } from '../lib/scenario.js';

async function gatewayOf(id: string): Promise<string | null> {
  const info = await docker.getContainer(id).inspect();
  for (const n of Object.values(info.NetworkSettings.Networks ?? {})) if (n.Gateway) return n.Gateway;
  const mode = info.HostConfig.NetworkMode ?? '';
  return mode.startsWith('container:') ? gatewayOf(mode.slice('container:'.length)) : null;
}

/** reached: a connection was made (any HTTP answer, even an error status); the wget output otherwise. */
async function probe(from: string, url: string): Promise<{ reached: boolean; output: string }> {
  // busybox's own -T (timeout) crashes this build's wget; its timeout applet bounds it instead.
  const r = await exec(from, ['/bin/busybox', 'timeout', '3', '/bin/busybox', 'wget', '-q', '-O', '-', url], 8000);
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
    const cleanups: (() => Promise<void>)[] = [];
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
      // The outside world's stand-ins, this run's own (chaos/lib/outside.ts).
      let outside: Outside | undefined;
      let outsideNote = '';
      try {
        outside = await startOutside(runId);
      } catch (err) {
        outsideNote = `the outside stand-ins could not be made: ${String((err as Error).message).slice(0, 160)}`;
      }
      cleanups.push(async () => outside?.remove());
      const port = (u: string) => new URL(u).port;
      const blocked: { what: string; url: string }[] = [
        { what: 'host listener (0.0.0.0)', url: `http://${gw}:${listenerPort}/` },
        { what: 'dispatcher port', url: `http://${gw}:${c.dispatchers[0]!.port}/v1/containers` },
        { what: 'proxy port', url: `http://${gw}:${port(c.proxyUrl)}/` },
        { what: 'CoreAPI port', url: `http://${gw}:${port(c.apiUrl)}/v1/apps` },
        { what: "another tenant's container", url: `http://${bIp}:8080/` },
        ...(outside === undefined ? [] : [{ what: 'metadata stand-in (link-local)', url: `http://${outside.metadata}:${outside.port}/` }]),
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
      m.check('the outside stand-ins were made and probed', outside !== undefined);
      const out = outside === undefined ? { reached: false, output: 'no stand-in' } : await probe(a.id, `http://${outside.internet}:${outside.port}/`);
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
        notes: [`host bridge address ${gw}, tenant B ${bIp}, internet stand-in ${outside?.internet ?? '-'}, metadata stand-in ${outside?.metadata ?? '-'}`, ...(outsideNote ? [outsideNote] : []), ...m.missed()],
      };
    } finally {
      for (const f of cleanups) await f();
      listener.close();
      await c.cleanup();
    }
  },
};
