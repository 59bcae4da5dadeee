// The operator's host commands under load (issue 8, section 5), through the real CLI:
// `fastcontainer host drain ID` moves an app's containers off a host make-before-break (no failed
// request, no new container there, all back on the other host); then that host's dispatcher dies
// for good (kill -9) and, once it is no longer live, `fastcontainer host rm ID` forgets it with its
// entries. Abuse beside it: `host rm` of a live host is refused and changes nothing.

import { chaosApp, startCluster } from '../lib/cluster.js';
import { docker } from '../lib/docker.js';
import { secs, startLoad, summarize } from '../lib/load.js';
import { pollUntil, sleep } from '../lib/proc.js';
import { Marks, type Scenario } from '../lib/scenario.js';

interface Host {
  id: string;
  live: boolean;
}

export const hostDrain: Scenario = {
  name: 'host-drain',
  quick: false,
  async run() {
    const c = await startCluster('host-drain', { hosts: 2 });
    try {
      const app = 'hd';
      await c.createApp(chaosApp(app, { minContainers: 2, maxContainers: 2 }));
      if ((await c.untilReady(app, 2, 30_000)) === undefined) throw new Error('the app did not get two ready containers within 30 s');
      const entries = (await c.entries(app)) ?? [];
      const count = (h: string) => entries.filter((e) => e.host === h && e.state === 'ready').length;
      const [h1, h2] = c.hostIds as [string, string];
      const drained = count(h1) >= count(h2) ? h1 : h2;
      const other = drained === h1 ? h2 : h1;
      const concurrency = 8;
      const load = startLoad({ url: c.proxyUrl, host: `${app}.chaos.test`, concurrency, timeoutMs: 10_000 });
      await sleep(2000);
      const tDrain = Date.now();
      const drain = await c.cli(['host', 'drain', drained]);
      // (Not waited for when the drain was refused: nothing would move.)
      const moved = await pollUntil(drain.code === 0 ? 30_000 : 0, async () => {
        const es = await c.entries(app);
        if (es === null) return undefined;
        const onDrained = es.filter((e) => e.host === drained && e.state !== 'gone').length;
        return onDrained === 0 && (await c.untilReady(app, 2, 0, [other])) !== undefined ? Date.now() - tDrain : undefined;
      }, 250);
      await sleep(1000);
      await load.stop();
      const all = summarize(load.recs);
      const newOnDrained = (await docker.listContainers({ all: true, filters: { label: [`fastcontainer.host=${drained}`, `fastcontainer.app=${app}`] } })).filter((x) => x.Created * 1000 >= tDrain - 1000).length;

      // Abuse: forgetting a live host is refused.
      const rmLive = await c.cli(['host', 'rm', other]);
      const hostsAfterRmLive = ((await c.api('GET', '/v1/hosts')).body?.hosts ?? []) as Host[];
      // The drained host dies for good; once it is no longer live, the operator forgets it.
      const dead = c.dispatchers.find((d) => d.hostId === drained)!;
      await dead.kill9();
      const tKill = Date.now();
      const notLive = await pollUntil(30_000, async () => {
        const hs = ((await c.api('GET', '/v1/hosts')).body?.hosts ?? []) as Host[];
        const h = hs.find((x) => x.id === drained);
        return h === undefined || !h.live ? Date.now() - tKill : undefined;
      }, 250);
      const rm = await c.cli(['host', 'rm', drained]);
      const hostsAfter = ((await c.api('GET', '/v1/hosts')).body?.hosts ?? []) as Host[];
      const entriesLeft = ((await c.entries()) ?? []).filter((e) => e.host === drained).length;
      const m = new Marks();
      m.check('host drain accepted', drain.code === 0);
      m.check('no failed request during the drain', all.failed === 0);
      m.check('both containers ready on the other host, none on the drained one, within 30 s', moved !== undefined);
      m.check('no new container on the drained host', newOnDrained === 0);
      m.check('host rm of a live host refused, the host kept', rmLive.code !== 0 && hostsAfterRmLive.some((h) => h.id === other));
      m.check('host rm of the dead host accepted', notLive !== undefined && rm.code === 0);
      m.check('the removed host and its entries are gone', !hostsAfter.some((h) => h.id === drained) && entriesLeft === 0);
      return {
        did: `host drain under ${concurrency} clients (app min=max=2), then kill -9 of the drained host and host rm; host rm of a live host`,
        sent: all.sent,
        failed: all.failed,
        sideEffects: `new containers on the drained host: ${newOnDrained}; rm of a live host → exit ${rmLive.code}; entries of the removed host left: ${entriesLeft}`,
        recovery: `containers moved ${secs(moved)} after drain; host not live ${secs(notLive)} after kill`,
        goal: 'drain make-before-break (0 failed); host rm forgets a dead host, refuses a live one',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [
          `before: ${count(drained)} on the drained host, ${count(other)} on the other; drain → exit ${drain.code} ${drain.output.split('\n')[0]?.slice(0, 120) ?? ''}; rm → exit ${rm.code} ${rm.output.split('\n')[0]?.slice(0, 120) ?? ''}`,
          `failures: ${all.kinds || 'none'}`,
          ...m.missed(),
        ],
      };
    } finally {
      await c.cleanup();
    }
  },
};
