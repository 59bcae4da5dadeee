// A compute host lost from a two-host cluster (kill -9 of its dispatcher), under load.
// spread: an app with two containers (min = max = 2) should have one on each host; only the
// requests in flight on the lost host fail and the app is back to two ready containers on live
// hosts within 15 s; and minContainers held (two entries) within a second of the app's creation. single: an app with one container; the first 200 from the other host comes
// within one host timeout (FC_HOST_TIMEOUT) plus one cold start.

import { chaosApp, startCluster } from '../lib/cluster.js';
import { hostnameOf } from '../lib/docker.js';
import { firstOkAfter, once, secs, startLoad, summarize } from '../lib/load.js';
import { pollUntil, sleep } from '../lib/proc.js';
import { Marks, type Scenario } from '../lib/scenario.js';

const hostTimeout = Number(process.env.FC_HOST_TIMEOUT ?? 10_000);

export const hostLostSpread: Scenario = {
  name: 'host-lost-spread',
  quick: false,
  async run() {
    const c = await startCluster('host-lost-spread', { hosts: 2 });
    try {
      const app = 'hs';
      const concurrency = 8;
      const tCreate = Date.now();
      await c.createApp(chaosApp(app, { minContainers: 2, maxContainers: 2 }));
      // minContainers holds within a second of the app's creation: its two entries exist.
      const minHeld = await pollUntil(10_000, async () => (((await c.entries(app)) ?? []).filter((e) => e.state !== 'gone').length >= 2 ? Date.now() - tCreate : undefined), 50);
      if ((await c.untilReady(app, 2, 30_000)) === undefined) throw new Error('the app did not get two ready containers within 30 s');
      const before = (await c.entries(app)) ?? [];
      const hostsUsed = new Set(before.filter((e) => e.state === 'ready').map((e) => e.host));
      const victim = c.dispatchers.find((d) => d.hostId === before.find((e) => e.state === 'ready')?.host) ?? c.dispatchers[0]!;
      const survivor = c.dispatchers.find((d) => d !== victim)!;
      const load = startLoad({ url: c.proxyUrl, host: `${app}.chaos.test`, concurrency, timeoutMs: 5000 });
      await sleep(2000);
      const tKill = Date.now();
      await victim.kill9();
      const back = await c.untilReady(app, 2, 30_000, [survivor.hostId]);
      await sleep(1000);
      await load.stop();
      const all = summarize(load.recs);
      const running = (await c.running(app)).filter((r) => r.host === survivor.hostId).length;
      const m = new Marks();
      m.check('minContainers (2 entries) within 1 s of the app\'s creation', minHeld !== undefined && minHeld <= 1000);
      m.check('both containers spread over the two hosts before the kill', hostsUsed.size === 2);
      m.check(`only requests in flight lost (failed ≤ ${concurrency})`, all.failed <= concurrency);
      m.check('back to 2 ready containers on the live host within 15 s', back !== undefined && back <= 15_000);
      m.check('running containers on the live host ≤ maxContainers (2)', running <= 2);
      return {
        did: `2 hosts, app min=max=2; kill -9 of a dispatcher holding one (${concurrency} clients)`,
        sent: all.sent,
        failed: all.failed,
        sideEffects: `min 2 entries ${secs(minHeld)} after creation; spread before: ${hostsUsed.size} host(s); running on live host after: ${running}`,
        recovery: `2 ready on live host ${secs(back)} after kill`,
        goal: 'min held ≤ 1 s; spread; only in-flight lost; 2 ready within 15 s',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`failures: ${all.kinds || 'none'}${all.failed === 0 ? '' : `; last failure ${secs(Math.max(...load.recs.filter((r) => r.status !== 200).map((r) => r.t1 - tKill)))} after the kill`}`, ...m.missed()],
      };
    } finally {
      await c.cleanup();
    }
  },
};

export const hostLostSingle: Scenario = {
  name: 'host-lost-single',
  quick: false,
  async run() {
    const c = await startCluster('host-lost-single', { hosts: 2 });
    try {
      // One cold start, measured here, is part of the goal.
      await c.createApp(chaosApp('probe'));
      const cold = await once({ url: c.proxyUrl, host: 'probe.chaos.test', timeoutMs: 30_000 });
      const coldMs = cold.t1 - cold.t0;
      const app = 'h1';
      await c.createApp(chaosApp(app, { minContainers: 1, maxContainers: 1 }));
      if ((await c.untilReady(app, 1, 30_000)) === undefined) throw new Error('the app did not get a ready container within 30 s');
      const entry = ((await c.entries(app)) ?? []).find((e) => e.state === 'ready');
      const victim = c.dispatchers.find((d) => d.hostId === entry?.host) ?? c.dispatchers[0]!;
      const survivor = c.dispatchers.find((d) => d !== victim)!;
      const load = startLoad({ url: c.proxyUrl, host: `${app}.chaos.test`, path: '/cgi-bin/whoami', concurrency: 4, timeoutMs: 5000, keepBody: true });
      await sleep(2000);
      const tKill = Date.now();
      await victim.kill9();
      const goalMs = hostTimeout + coldMs;
      // whoami answers the container's host name: a 200 from a container on the surviving host.
      const names = new Map<string, string>();
      const onSurvivor = async (): Promise<Set<string>> => {
        const out = new Set<string>();
        for (const r of (await c.running(app)).filter((x) => x.host === survivor.hostId)) {
          if (!names.has(r.id)) names.set(r.id, await hostnameOf(r.id));
          out.add(names.get(r.id) as string);
        }
        return out;
      };
      const firstFromOther = await pollUntil(goalMs + 15_000, async () => {
        const ids = await onSurvivor();
        return firstOkAfter(load.recs, tKill, (r) => r.status === 200 && ids.has((r.body ?? '').trim()));
      }, 200);
      await sleep(1000);
      await load.stop();
      const all = summarize(load.recs);
      const running = (await c.running(app)).filter((r) => r.host === survivor.hostId).length;
      const took = firstFromOther === undefined ? undefined : firstFromOther - tKill;
      const m = new Marks();
      m.check(`first 200 from the other host within host timeout + one cold start (${secs(goalMs)})`, took !== undefined && took <= goalMs);
      m.check('running containers on the live host ≤ maxContainers (1)', running <= 1);
      return {
        did: `2 hosts, app with 1 container; kill -9 of its host's dispatcher (4 clients)`,
        sent: all.sent,
        failed: all.failed,
        sideEffects: `running on live host after: ${running}; cold start here ${secs(coldMs)}`,
        recovery: `first 200 from the other host ${secs(took)} after kill`,
        goal: `≤ host timeout (${secs(hostTimeout)}) + one cold start`,
        verdict: m.passed ? 'pass' : 'fail',
        notes: [`failures: ${all.kinds || 'none'}`, ...m.missed()],
      };
    } finally {
      await c.cleanup();
    }
  },
};
