// SIGTERM to the proxy under keep-alive load (issue 8, section 3): it stops accepting, answers
// the requests in flight (with Connection: close), closes its connections and exits within
// FC_DRAIN_TIMEOUT (5 s here), rather than serving busy keep-alive connections for as long as
// their clients keep sending.

import { cgiCommand, chaosApp, startCluster } from '../lib/cluster.js';
import { secs, startLoad, summarize } from '../lib/load.js';
import { pollUntil, sleep } from '../lib/proc.js';
import { Marks, type Scenario } from '../lib/scenario.js';

const DRAIN_MS = 5000;

export const proxyDrain: Scenario = {
  name: 'proxy-drain',
  quick: true,
  async run() {
    const c = await startCluster('proxy-drain', { hosts: 1, env: { FC_DRAIN_TIMEOUT: `${DRAIN_MS}ms` } });
    try {
      await c.createApp(chaosApp('pd', { command: cgiCommand(), minContainers: 1, maxContainers: 1 }));
      if ((await c.untilReady('pd', 1, 30_000)) === undefined) throw new Error('the app did not get a ready container within 30 s');
      // Busy keep-alive connections (each sends its next request the moment the last is answered),
      // and requests of a second each, so that some are in flight at SIGTERM.
      const concurrency = 8;
      const busy = startLoad({ url: c.proxyUrl, host: 'pd.chaos.test', concurrency: concurrency / 2, timeoutMs: 10_000, thinkMs: 0 });
      const slow = startLoad({ url: c.proxyUrl, host: 'pd.chaos.test', path: '/cgi-bin/sleep?1', concurrency: concurrency / 2, timeoutMs: 10_000, thinkMs: 0 });
      await sleep(2500);
      const tTerm = Date.now();
      c.proxy.signal('SIGTERM');
      // Watched for the drain timeout and 5 s more while the clients keep sending.
      const exitedAt = await pollUntil(DRAIN_MS + 5000, async () => (c.proxy.alive() ? undefined : Date.now()), 50);
      await Promise.all([busy.stop(), slow.stop()]);
      const recs = [...busy.recs, ...slow.recs];
      const all = summarize(recs);
      const inFlight = recs.filter((r) => r.t0 < tTerm && r.t1 >= tTerm);
      const lostInFlight = inFlight.filter((r) => r.status !== 200).length;
      const servedAfter = recs.filter((r) => r.t0 >= tTerm && r.status !== 0).length;
      const m = new Marks();
      m.check(`exits within FC_DRAIN_TIMEOUT (${secs(DRAIN_MS)}) under load`, exitedAt !== undefined && exitedAt - tTerm <= DRAIN_MS);
      m.check('requests in flight at SIGTERM: some, each answered 200', inFlight.length > 0 && lostInFlight === 0);
      m.check(`new requests after SIGTERM answered ≤ ${2 * concurrency} (it stops taking them)`, servedAfter <= 2 * concurrency);
      return {
        did: `SIGTERM to the proxy under ${concurrency} keep-alive clients that keep sending (half of them 1 s requests)`,
        sent: all.sent,
        failed: all.failed,
        sideEffects: `requests sent after SIGTERM and answered: ${servedAfter}; in flight at SIGTERM: ${inFlight.length}, lost ${lostInFlight}`,
        recovery: exitedAt === undefined ? `still running ${secs(DRAIN_MS + 5000)} after SIGTERM` : `exited ${secs(exitedAt - tTerm)} after SIGTERM`,
        goal: 'stop accepting, answer in-flight, exit within FC_DRAIN_TIMEOUT',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`failures: ${all.kinds || 'none'}`, ...m.missed()],
      };
    } finally {
      await c.cleanup();
    }
  },
};
