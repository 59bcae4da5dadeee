// Slow clients: does a crowd uploading at 700 B/s change what a normal visitor of the same app
// sees? Goal (issue 8): 100 slow clients change a normal client's p99 by at most 2x.
//
// `fastcontainer up` (the built CLI, real Docker), one app on fastcontainer/php (its default page)
// with one container (maxContainers 1, autoscale off, freezeAfter 0), so that the container's
// connections (FC_CONTAINER_CONNECTIONS, 16) are the scarce thing a slow upload would hold.
// FC_BENCH_SLOW_ROUNDS (3) rounds, each of two phases of FC_BENCH_SLOW_SECONDS (5) side by side, so
// that a change in the shared machine's load falls on both alike:
//   alone:  FC_BENCH_SLOW_NORMAL (4) normal clients, each a loop of GETs through the proxy on a
//           keep-alive connection, every request timed to the end of its answer (5 s at most);
//   beside: the same, while FC_BENCH_SLOW_CLIENTS (100) slow clients (bench/servers/slow-crowd.ts,
//           a process of their own, started 2 s before and stopped after) each send a POST of the
//           same app at 700 B/s over raw TCP, as the attack did: four in five with a 64 KiB
//           body (read whole at the proxy), one in five with a 4 MiB one (its first MiB must arrive
//           before it may take a slot); a slow client that is cut off (408) reconnects at once.
// The ratio of the two phases' p99s (over all their rounds) is the verdict; failed normal requests
// and the slow clients' 408s are counted. About 45 s in all.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'undici';
import { startFastcontainer } from './lib/fastcontainer.js';
import { startNode } from './lib/proc.js';
import { markdownTable } from './lib/load.js';
import { fmt, goalsMarkdown } from './lib/report.js';
import { quantile } from './lib/timeline.js';

const GOAL_RATIO = 2;
const HOST = 'slow-clients.bench';
const seconds = Number(process.env.FC_BENCH_SLOW_SECONDS ?? 5);
const rounds = Number(process.env.FC_BENCH_SLOW_ROUNDS ?? 3);
const normalClients = Number(process.env.FC_BENCH_SLOW_NORMAL ?? 4);
const slowClients = Number(process.env.FC_BENCH_SLOW_CLIENTS ?? 100);

interface Phase {
  times: number[];
  failed: number;
}

/** Normal clients: GET loops on keep-alive connections until `until`. */
async function normalLoad(proxyUrl: string, until: number): Promise<Phase> {
  const pool = new Pool(proxyUrl, { connections: normalClients, pipelining: 1 });
  const times: number[] = [];
  let failed = 0;
  try {
    await Promise.all(Array.from({ length: normalClients }, async () => {
      while (Date.now() < until) {
        const began = performance.now();
        try {
          // Bounded, so that an app taken offline shows as failures, not as a phase that never ends.
          const res = await pool.request({ path: '/', method: 'GET', headers: { host: HOST }, headersTimeout: 5_000, bodyTimeout: 5_000 });
          await res.body.dump();
          if (res.statusCode === 200) times.push(performance.now() - began);
          else failed += 1;
        } catch {
          failed += 1;
        }
      }
    }));
  } finally {
    await pool.destroy();
  }
  return { times, failed };
}

interface CrowdStats {
  /** Connections opened in all (a client reconnects when it is cut off). */
  connections: number;
  /** Answers with status 408 the slow clients got. */
  timeouts: number;
  /** Other answers (a slow body that did arrive whole, or an error). */
  other: number;
}

/** Runs the normal clients for one phase beside the slow crowd (its own process). */
async function besideCrowd(proxyUrl: string, total: CrowdStats): Promise<Phase> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-crowd-'));
  const statsFile = path.join(dir, 'stats.json');
  const crowd = await startNode('slow-crowd', [new URL(proxyUrl).port, HOST, String(slowClients), statsFile]);
  try {
    // The crowd takes hold first: every slow client connected and sending.
    await new Promise((r) => setTimeout(r, 2_000));
    return await normalLoad(proxyUrl, Date.now() + seconds * 1000);
  } finally {
    await crowd.stop();
    const s = JSON.parse(readFileSync(statsFile, 'utf8')) as CrowdStats;
    total.connections += s.connections;
    total.timeouts += s.timeouts;
    total.other += s.other;
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchSlowClients(): Promise<string> {
  const fc = await startFastcontainer();
  try {
    await fc.api('POST', '/v1/apps', { name: 'slow-clients', hostnames: [HOST], image: 'fastcontainer/php', autoscale: false, minContainers: 0, maxContainers: 1, freezeAfter: 0 });
    // Warm: the container is up before anything is measured.
    const warm = await normalLoad(fc.proxyUrl, Date.now() + 2_000);
    if (warm.times.length === 0) throw new Error(`the app did not answer (${warm.failed} failed)`);
    const alone: Phase = { times: [], failed: 0 };
    const beside: Phase = { times: [], failed: 0 };
    const crowd: CrowdStats = { connections: 0, timeouts: 0, other: 0 };
    for (let round = 0; round < rounds; round++) {
      const a = await normalLoad(fc.proxyUrl, Date.now() + seconds * 1000);
      const b = await besideCrowd(fc.proxyUrl, crowd);
      alone.times.push(...a.times);
      alone.failed += a.failed;
      beside.times.push(...b.times);
      beside.failed += b.failed;
    }
    const p = (ph: Phase, q: number) => quantile(ph.times, q);
    const ratio = p(beside, 0.99) / p(alone, 0.99);
    const rows = [
      ['alone', alone.times.length, alone.failed, fmt(p(alone, 0.5), 1), fmt(p(alone, 0.99), 1), '-'],
      [`beside ${slowClients} slow clients`, beside.times.length, beside.failed, fmt(p(beside, 0.5), 1), fmt(p(beside, 0.99), 1), `${crowd.connections} connections, ${crowd.timeouts} answered 408, ${crowd.other} other answers`],
    ];
    return [
      `${normalClients} normal clients (GET loops on keep-alive connections); ${rounds} rounds of ${seconds} s alone, then ${seconds} s beside ${slowClients} slow clients at 700 B/s (4 in 5 with a 64 KiB body, 1 in 5 with 4 MiB; their own process); app on fastcontainer/php with one container.`,
      '',
      markdownTable(['phase', 'normal requests', 'failed', 'p50 ms', 'p99 ms', 'slow clients'], rows),
      '',
      goalsMarkdown([
        { goal: `normal client's p99 beside ${slowClients} slow clients ≤ ${GOAL_RATIO}× alone`, met: ratio <= GOAL_RATIO && beside.failed === 0, detail: `${fmt(ratio, 2)}× (${fmt(p(beside, 0.99), 1)} vs ${fmt(p(alone, 0.99), 1)} ms), ${beside.failed} failed` },
      ]),
    ].join('\n');
  } finally {
    await fc.stop();
  }
}
