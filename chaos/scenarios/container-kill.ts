// The container killed (docker kill) while it executes a request: the client gets a clean 502
// soon after, the next request a fresh container, and the request is executed once: a POST is
// never replayed, and a GET that reached the app is not either (issue 8, section 3). The app's
// CGI writes a line to the container's log per execution, so the logs count executions.

import { cgiCommand, chaosApp, startCluster } from '../lib/cluster.js';
import { docker, executions } from '../lib/docker.js';
import { once, secs, type Rec } from '../lib/load.js';
import { pollUntil, sleep } from '../lib/proc.js';
import { Marks, type Scenario } from '../lib/scenario.js';

export const containerKill: Scenario = {
  name: 'container-kill',
  quick: true,
  async run() {
    const c = await startCluster('container-kill', { hosts: 1 });
    try {
      const app = 'ck';
      const host = `${app}.chaos.test`;
      await c.createApp(chaosApp(app, { command: cgiCommand(), minContainers: 1, maxContainers: 1 }));
      if ((await c.untilReady(app, 1, 30_000)) === undefined) throw new Error('the app did not get a ready container within 30 s');
      const m = new Marks();
      const rows: string[] = [];
      let sent = 0;
      let failed = 0;
      const killed: string[] = [];
      const recoveries: number[] = [];
      const notes: string[] = [];
      for (const method of ['POST', 'GET'] as const) {
        const target = (await c.running(app))[0];
        if (target === undefined) throw new Error('no running container to kill');
        const marker = `/cgi-bin/sleep?${method === 'POST' ? 6 : 7}`;
        const pending = once({ url: c.proxyUrl, host, path: marker, method, ...(method === 'POST' ? { body: 'payload' } : {}), timeoutMs: 20_000 });
        // Killed while the app is inside the request (its log shows the execution began).
        const began = await pollUntil(5000, async () => ((await executions(target.id, marker)) > 0 ? true : undefined), 100);
        const inKilled = await executions(target.id, marker);
        const tKill = Date.now();
        await docker.getContainer(target.id).kill({ signal: 'SIGKILL' });
        killed.push(target.id);
        const r: Rec = await pending;
        sent += 1;
        if (r.status !== 200) failed += 1;
        const answeredIn = r.t1 - tKill;
        // The next request: a 200 (from another container: the killed one has no restart policy).
        const tNext = Date.now();
        const next = await pollUntil(20_000, async () => {
          const n = await once({ url: c.proxyUrl, host, path: '/cgi-bin/whoami', timeoutMs: 20_000, keepBody: true });
          sent += 1;
          if (n.status !== 200) failed += 1;
          return n.status === 200 ? n : undefined;
        }, 200);
        recoveries.push(next === undefined ? Number.NaN : next.t1 - tNext);
        const killedRuns = await docker.getContainer(target.id).inspect().then((i) => i.State.Running, () => false);
        const fresh = next !== undefined && !killedRuns;
        await sleep(1000);
        // Executions of the request: in the killed container before the kill, and in every other
        // container the app has had since (a replay would show there).
        let execs = inKilled;
        for (const ct of await docker.listContainers({ all: true, filters: { label: [`fastcontainer.app=${app}`, `fastcontainer.host=${c.hostIds[0]}`] } })) {
          if (ct.Id !== target.id) execs += await executions(ct.Id, marker);
        }
        if (began === undefined) notes.push(`${method}: the request had not reached the app 5 s after it was sent; killed anyway`);
        m.check(`${method}: a 502 within 2 s of the kill`, r.status === 502 && answeredIn <= 2000);
        m.check(`${method}: the next request 200 from a fresh container`, fresh);
        m.check(`${method}: executed once (not replayed)`, execs === 1);
        rows.push(`${method} → ${r.status === 0 ? r.error : r.status} after ${secs(answeredIn)}, executed ${execs}×, next 200 ${next === undefined ? 'never' : fresh ? 'fresh container' : 'SAME container'}`);
      }
      return {
        did: 'docker kill of the container during a POST, then during a GET (each 6-7 s long)',
        sent,
        failed,
        sideEffects: rows.join('; '),
        recovery: `next 200 after ${recoveries.map((x) => secs(x)).join(', ')}`,
        goal: 'clean 502; next request fresh container; POST (and a GET that reached the app) executed once',
        verdict: m.passed ? 'pass' : 'fail',
        notes: [...notes, ...m.missed()],
      };
    } finally {
      await c.cleanup();
    }
  },
};
