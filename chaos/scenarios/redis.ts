// The CMDB fails (issue 8, section 4), on a Redis of the scenario's own:
// - stop: SIGTERM for 10 s (it comes back with its data): zero failed requests to a warm app; a
//   cold start meanwhile answers 503 with Retry-After; writes and cold starts converge within
//   seconds of its return.
// - stall: SIGSTOP for 8 s: warm requests keep their latency bounded; a cold start and a write
//   answer fast (a deadline of about a second, not the stall).
// - empty restart: SIGKILL and a start on an empty directory: the dispatcher announces itself
//   again, the app created again (as an operator restoring it would) serves, no container runs
//   untracked, maxContainers holds, and deleting the app leaves nothing running.

import { chaosApp, startCluster, type Cluster } from '../lib/cluster.js';
import { firstOkAfter, once, secs, startLoad, summarize, type Rec } from '../lib/load.js';
import { pollUntil, sleep } from '../lib/proc.js';
import { Marks, type Scenario } from '../lib/scenario.js';
import { sideEffects } from './dispatcher-kill.js';

const statusText = (r: Rec): string => (r.status === 0 ? `no answer (${r.error})` : `${r.status}${r.code === undefined ? '' : ` ${r.code}`}${r.retryAfter === undefined ? '' : ` Retry-After ${r.retryAfter}`}`);

/** When the load's failures began and ended, relative to `t` (the fault). */
function failureSpan(recs: readonly Rec[], t: number): string {
  const bad = recs.filter((r) => r.status < 200 || r.status >= 400);
  if (bad.length === 0) return '';
  return `; failures from ${secs(Math.min(...bad.map((r) => r.t0)) - t)} to ${secs(Math.max(...bad.map((r) => r.t1)) - t)} after the fault`;
}

/** Epoch ms when a write (a new app) first succeeds from `t` on, polling; undefined after `ms`. */
async function writeBack(c: Cluster, t: number, ms: number, name: string): Promise<number | undefined> {
  return pollUntil(ms, async () => {
    const a = await c.api('POST', '/v1/apps', chaosApp(name), 2000);
    return a.status === 201 || a.status === 409 ? Date.now() : undefined;
  }, 100).then((x) => (x === undefined ? undefined : x - t));
}

async function warmCluster(name: string): Promise<Cluster> {
  const c = await startCluster(name, { hosts: 1 });
  try {
    await c.createApp(chaosApp('warm', { minContainers: 1, maxContainers: 1 }));
    for (const cold of ['cold', 'cold2']) await c.createApp(chaosApp(cold));
    if ((await c.untilReady('warm', 1, 30_000)) === undefined) throw new Error('the warm app did not get a ready container within 30 s');
    return c;
  } catch (err) {
    await c.cleanup();
    throw err;
  }
}

export const redisStop: Scenario = {
  name: 'redis-stop',
  quick: false,
  async run() {
    const c = await warmCluster('redis-stop');
    try {
      const load = startLoad({ url: c.proxyUrl, host: 'warm.chaos.test', concurrency: 4, timeoutMs: 5000 });
      await sleep(2000);
      await c.redis.stop();
      const tStop = Date.now();
      await sleep(3000);
      // Probes during the outage; the outage lasts 10 s whatever they wait for.
      const probes = Promise.all([once({ url: c.proxyUrl, host: 'cold.chaos.test', timeoutMs: 15_000 }), c.api('POST', '/v1/apps', chaosApp('during'), 15_000)]);
      await sleep(Math.max(0, tStop + 10_000 - Date.now()));
      await c.redis.start();
      const tBack = Date.now();
      const [writeMs, coldBack] = await Promise.all([
        writeBack(c, tBack, 20_000, 'after'),
        pollUntil(20_000, async () => {
          const r = await once({ url: c.proxyUrl, host: 'cold2.chaos.test', timeoutMs: 15_000 });
          return r.status === 200 ? r.t1 - tBack : undefined;
        }, 200),
      ]);
      const [cold, write] = await probes;
      await sleep(2000);
      await load.stop();
      const all = summarize(load.recs);
      const outage = summarize(load.recs.filter((r) => r.t0 >= tStop && r.t0 < tBack));
      const s = await sideEffects(c, 'warm');
      const m = new Marks();
      m.check('zero failed warm requests', all.failed === 0);
      m.check('cold start during the outage: 503 with Retry-After (or 200) within 5 s', ((cold.status === 503 && cold.retryAfter !== undefined) || cold.status === 200) && cold.t1 - cold.t0 <= 5000);
      m.check('writes back within 5 s of Redis returning', writeMs !== undefined && writeMs <= 5000);
      m.check('a cold start serves within 10 s of Redis returning', coldBack !== undefined && coldBack <= 10_000);
      m.check('warm app: no orphan, at most 1 container', s !== null && s.orphans === 0 && s.running <= 1);
      return {
        did: 'Redis stopped (SIGTERM) for 10 s under 4 clients of a warm app; a cold start and a write during it',
        sent: all.sent,
        failed: all.failed,
        sideEffects: `during outage: ${outage.sent} sent, ${outage.failed} failed; cold start → ${statusText(cold)} in ${secs(cold.t1 - cold.t0)}; write → ${write.status || write.error} in ${secs(write.ms)}; warm app running ${s?.running ?? '?'}, orphans ${s?.orphans ?? '?'}`,
        recovery: `write ${secs(writeMs)}, cold start 200 ${secs(coldBack)} after Redis returned`,
        goal: '0 failed warm; cold → 503 + Retry-After; converge within seconds',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`failures: ${all.kinds || 'none'}${failureSpan(load.recs, tStop)}`, ...m.missed()],
      };
    } finally {
      c.redis.resume();
      await c.cleanup();
    }
  },
};

export const redisStall: Scenario = {
  name: 'redis-stall',
  quick: true,
  async run() {
    const c = await warmCluster('redis-stall');
    try {
      const load = startLoad({ url: c.proxyUrl, host: 'warm.chaos.test', concurrency: 4, timeoutMs: 15_000 });
      await sleep(2000);
      c.redis.pause();
      const tStop = Date.now();
      await sleep(1000);
      // Probes during the stall; it lasts 8 s whatever they wait for.
      const probes = Promise.all([
        once({ url: c.proxyUrl, host: 'cold.chaos.test', timeoutMs: 15_000 }),
        c.api('POST', '/v1/apps', chaosApp('during'), 15_000),
        c.api('GET', '/v1/apps/warm', undefined, 15_000),
      ]);
      await sleep(Math.max(0, tStop + 8000 - Date.now()));
      c.redis.resume();
      const tBack = Date.now();
      const writeMs = await writeBack(c, tBack, 20_000, 'after');
      const [cold, write, read] = await probes;
      await sleep(2000);
      await load.stop();
      const all = summarize(load.recs);
      const stall = summarize(load.recs.filter((r) => r.t0 >= tStop - 1000 && r.t0 < tBack));
      const m = new Marks();
      m.check('zero failed warm requests', all.failed === 0);
      m.check('warm max latency ≤ 2 s (no hang)', all.max <= 2000);
      m.check('cold start answered within 2 s (503 with Retry-After, or 200)', cold.t1 - cold.t0 <= 2000 && ((cold.status === 503 && cold.retryAfter !== undefined) || cold.status === 200));
      m.check('a write answered within 2 s', write.status !== 0 && write.ms <= 2000);
      m.check('writes back within 5 s of the stall\'s end', writeMs !== undefined && writeMs <= 5000);
      return {
        did: 'Redis stalled (SIGSTOP) for 8 s under 4 clients of a warm app; a cold start, a write and a read during it',
        sent: all.sent,
        failed: all.failed,
        sideEffects: `warm max latency ${secs(all.max)} (p99 ${all.p99} ms; during stall ${stall.sent} sent); cold start → ${statusText(cold)} in ${secs(cold.t1 - cold.t0)}; write → ${write.status || 'no answer'} in ${secs(write.ms)}; read → ${read.status || 'no answer'} in ${secs(read.ms)}`,
        recovery: `writes back ${secs(writeMs)} after SIGCONT`,
        goal: 'fast 503s, no hang (≤ 2 s), 0 failed warm',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`failures: ${all.kinds || 'none'}${failureSpan(load.recs, tStop)}`, ...m.missed()],
      };
    } finally {
      c.redis.resume();
      await c.cleanup();
    }
  },
};

export const redisEmptyRestart: Scenario = {
  name: 'redis-empty-restart',
  quick: false,
  async run() {
    const reconcile = process.env.CHAOS_RECONCILE_INTERVAL ?? '2s';
    const c = await startCluster('redis-empty-restart', { hosts: 1, env: { FC_RECONCILE_INTERVAL: reconcile } });
    try {
      const spec = chaosApp('er', { minContainers: 1, maxContainers: 1 });
      await c.createApp(spec);
      if ((await c.untilReady('er', 1, 30_000)) === undefined) throw new Error('the app did not get a ready container within 30 s');
      const load = startLoad({ url: c.proxyUrl, host: 'er.chaos.test', concurrency: 2, timeoutMs: 5000, });
      await sleep(1000);
      await c.redis.kill9();
      await c.redis.start({ empty: true });
      const tEmpty = Date.now();
      // The dispatcher announces itself again in the empty CMDB.
      const announced = await pollUntil(15_000, async () => {
        const a = await c.api('GET', '/v1/hosts', undefined, 2000);
        return ((a.body?.hosts ?? []) as { id: string; live: boolean }[]).some((h) => h.id === c.hostIds[0] && h.live) ? Date.now() - tEmpty : undefined;
      }, 200);
      // The operator creates the app again (or restores the CMDB).
      const recreate = await c.api('POST', '/v1/apps', spec, 10_000);
      const tRecreated = Date.now();
      const back = await pollUntil(20_000, async () => firstOkAfter(load.recs, tRecreated), 100);
      // Settle for a few reconciles, then count what runs.
      await sleep(8000);
      await load.stop();
      const s = await sideEffects(c, 'er');
      const del = await c.api('DELETE', '/v1/apps/er', undefined, 10_000);
      const leftAfterDelete = await pollUntil(20_000, async () => ((await c.running('er')).length === 0 ? 0 : undefined), 500);
      const left = leftAfterDelete ?? (await c.running('er')).length;
      const all = summarize(load.recs);
      const m = new Marks();
      m.check('the dispatcher announced itself again within 15 s', announced !== undefined);
      m.check('the app created again', recreate.status === 201);
      m.check('the site serves within 20 s of its re-creation', back !== undefined);
      m.check('no untracked container', s !== null && s.orphans === 0);
      m.check('maxContainers (1) respected', s !== null && s.running <= 1);
      m.check('nothing of the app runs 20 s after its deletion', del.status === 200 && left === 0);
      return {
        did: 'Redis killed and restarted empty under 2 clients; the app (max 1) created again, later deleted',
        sent: all.sent,
        failed: all.failed,
        sideEffects: `untracked containers ${s?.orphans ?? '?'}, running ${s?.running ?? '?'} (max 1); left running after delete ${left}`,
        recovery: `host back ${secs(announced)}; site back ${secs(back === undefined ? undefined : back - tRecreated)} after re-creation`,
        goal: 'sites back, no untracked containers, maxContainers respected',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`FC_RECONCILE_INTERVAL=${reconcile}; recreate → ${recreate.status}; failures: ${all.kinds || 'none'}${failureSpan(load.recs, tEmpty)}`, ...m.missed()],
      };
    } finally {
      await c.cleanup();
    }
  },
};
