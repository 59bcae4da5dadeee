// kill -9 of the only dispatcher under load, then a restart with the same host id: the restarted
// dispatcher adopts or removes what it left; no container runs without an entry (orphan), no
// ready entry lacks its container (ghost), maxContainers holds, and the site serves again.

import { chaosApp, startCluster, type Cluster } from '../lib/cluster.js';
import { firstOkAfter, ok, secs, startLoad, summarize } from '../lib/load.js';
import { pollUntil, sleep } from '../lib/proc.js';
import { Marks, quick, type Scenario } from '../lib/scenario.js';

/** Running containers with no live entry, and ready entries with no running container. */
export async function sideEffects(c: Cluster, app: string): Promise<{ orphans: number; ghosts: number; running: number } | null> {
  const entries = await c.entries(app);
  if (entries === null) return null;
  const run = await c.running(app);
  const live = new Set(entries.filter((e) => e.state !== 'gone').map((e) => e.id));
  const runIds = new Set(run.map((r) => r.entryId));
  return {
    orphans: run.filter((r) => !live.has(r.entryId)).length,
    ghosts: entries.filter((e) => e.state === 'ready' && !runIds.has(e.id)).length,
    running: run.length,
  };
}

export const dispatcherKill: Scenario = {
  name: 'dispatcher-kill',
  quick: true,
  async run() {
    const c = await startCluster('dispatcher-kill', { hosts: 1 });
    try {
      const app = 'dk';
      await c.createApp(chaosApp(app, { minContainers: 1, maxContainers: 2 }));
      if ((await c.untilReady(app, 1, 30_000)) === undefined) throw new Error('the app did not get a ready container within 30 s');
      const d = c.dispatchers[0]!;
      const load = startLoad({ url: c.proxyUrl, host: `${app}.chaos.test`, concurrency: 8, timeoutMs: 5000 });
      await sleep(2000);
      const tKill = Date.now();
      await d.kill9();
      await sleep(2000);
      const tRestart = Date.now();
      await d.restart();
      const back = await pollUntil(20_000, async () => firstOkAfter(load.recs, tRestart), 50);
      await sleep(quick ? 2000 : 4000);
      await load.stop();
      // Settled: give the restarted dispatcher one reconcile to clean up, then count.
      const settled = await pollUntil(15_000, async () => {
        const s = await sideEffects(c, app);
        return s !== null && s.orphans === 0 && s.ghosts === 0 ? s : undefined;
      }, 500);
      const s = settled ?? (await sideEffects(c, app)) ?? { orphans: -1, ghosts: -1, running: -1 };
      const all = summarize(load.recs);
      const afterBack = back === undefined ? [] : load.recs.filter((r) => r.t0 >= back && !ok(r));
      const m = new Marks();
      m.check('orphan containers 0', s.orphans === 0);
      m.check('ready entries without a container 0', s.ghosts === 0);
      m.check('running containers ≤ maxContainers (2)', s.running >= 0 && s.running <= 2);
      m.check('first 200 within 10 s of the restart', back !== undefined && back - tRestart <= 10_000);
      m.check('no failed request after the first 200', back !== undefined && afterBack.length === 0);
      return {
        did: 'kill -9 of the dispatcher under 8 clients; restarted 2 s later (same host id)',
        sent: all.sent,
        failed: all.failed,
        sideEffects: `orphans ${s.orphans}, ghost entries ${s.ghosts}, running ${s.running}; failed after recovery ${afterBack.length}`,
        recovery: `first 200 ${secs(back === undefined ? undefined : back - tRestart)} after restart`,
        goal: 'no orphan, clean recovery (≤ 10 s, then no failure)',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`failures: ${all.kinds || 'none'} (while down: ${load.recs.filter((r) => r.t0 >= tKill && r.t0 < tRestart && !ok(r)).length})`, ...m.missed()],
      };
    } finally {
      await c.cleanup();
    }
  },
};
