// Recycling under load: an app whose containers live 10 s (lifespan), at least 2 of them, under
// 50 connections for FC_BENCH_RECYCLE_SECONDS (60). Every container is drained and replaced
// several times during the load; no request may fail, and the per-second latency shows what each
// recycle costs (the drains are marked on the plot).

import { AppWatch, readyContainers, warm } from './lib/app-watch.js';
import { startFastcontainer } from './lib/fastcontainer.js';
import { markdownTable, median, timedLoad } from './lib/load.js';
import { displayPath, lineChartSpec, writePlot } from './lib/plot.js';
import { fmt, goalsMarkdown, type Goal } from './lib/report.js';

const APP = 'recycle';
const HOST = 'recycle.bench';

export async function benchRecycle(): Promise<string> {
  const seconds = Number(process.env.FC_BENCH_RECYCLE_SECONDS ?? 60);
  const connections = Number(process.env.FC_BENCH_RECYCLE_CONNECTIONS ?? 50);
  const lifespan = 10;
  const fc = await startFastcontainer();
  let load;
  let watch;
  try {
    // The image's own default page (a few lines of PHP); the autoscaler is off so that only
    // lifespans change the set of containers.
    await fc.api('POST', '/v1/apps', {
      name: APP, hostnames: [HOST], image: 'fastcontainer/php', cpus: 0.5, maxCpus: 0.5, memory: '256m',
      lifespan, minContainers: 2, maxContainers: 4, autoscale: false,
    });
    await warm(fc, HOST);
    await readyContainers(fc, APP, 2);
    watch = new AppWatch(fc, APP, 200).start();
    process.stderr.write(`[bench]   ${connections} connections for ${seconds} s, lifespan ${lifespan} s...\n`);
    load = await timedLoad(fc.proxyUrl, { host: HOST, connections, seconds, timeout: 30 });
    await watch.stop();
  } finally {
    await fc.stop();
  }
  const s = (at: number) => (at - load.startedAt) / 1000;
  const inLoad = (at: number) => at >= load.startedAt && at <= load.startedAt + load.elapsed * 1000;
  const drainEvents = watch.allEvents().filter((e) => e.kind === 'drain' && inLoad(e.at));
  // Without an events API: when a poll first saw each container draining.
  const drains = watch.eventsApi
    ? drainEvents.map((e) => ({ at: s(e.at), container: e.container ?? '', reason: e.reason ?? '' }))
    : [...watch.containers.values()].filter((t) => t.drainSeenAt !== null && inLoad(t.drainSeenAt)).map((t) => ({ at: s(t.drainSeenAt as number), container: t.id, reason: 'seen draining in the entries' }));
  drains.sort((a, b) => a.at - b.at);
  const starts = [...watch.containers.values()].filter((t) => t.readyAt !== null && inLoad(t.readyAt)).length;

  const buckets = load.timeline.buckets(seconds);
  const rows = buckets.map((b) => ({ second: b.second, mean_ms: b.mean, p99_ms: b.p99, responses: b.responses, failed: b.errors + b.non2xx, drains: drains.filter((d) => Math.floor(d.at) === b.second).length }));
  const long = rows.flatMap((r) => [
    { second: r.second, series: 'mean', ms: r.mean_ms },
    { second: r.second, series: 'p99', ms: r.p99_ms },
  ]).filter((r) => r.ms !== null);
  const spec = lineChartSpec({
    title: `Recycling under load: lifespan ${lifespan} s, ≥ 2 containers, ${connections} connections`,
    rows: long,
    x: { field: 'second', title: 'seconds since the load began (dashed: a container drained)' },
    y: { field: 'ms', title: 'latency per second (ms)' },
    series: { field: 'series', title: 'latency', order: ['mean', 'p99'] },
    rules: drains.map((d) => ({ x: d.at, label: 'drain' })),
  });
  const out = await writePlot('recycle', spec, rows);

  // A recycle's cost: the worst per-second p99 from the second of a drain to two seconds after it
  // (drains of containers started together come together: one recycle), against the median
  // per-second p99 of the seconds away from any drain.
  const recycles: number[][] = [];
  for (const d of drains) {
    const sec = Math.floor(d.at);
    const last = recycles.at(-1);
    if (last !== undefined && sec - (last.at(-1) as number) <= 2) last.push(sec);
    else recycles.push([sec]);
  }
  const near = new Set(recycles.flatMap((g) => [g[0] as number, (g.at(-1) as number) + 1, (g.at(-1) as number) + 2, ...g]));
  const p99At = (sec: number) => rows[sec]?.p99_ms ?? null;
  const worstAfter = recycles.map((g) => Math.max(...[...g, (g.at(-1) as number) + 1, (g.at(-1) as number) + 2].map((sec) => p99At(sec) ?? 0)));
  const otherP99 = rows.filter((r) => !near.has(r.second) && r.p99_ms !== null).map((r) => r.p99_ms as number);
  const failedCount = load.result.errors + load.result.non2xx;
  const goals: Goal[] = [
    { goal: 'no failed request (non-2xx or error) while containers are recycled', met: failedCount === 0, detail: `${failedCount} failed (${load.result.non2xx} non-2xx, ${load.result.errors} errors) of ${load.result.total}` },
    { goal: 'containers were recycled during the load (else the test shows nothing)', met: drains.length > 0, detail: `${drains.length} drains, ${starts} containers became ready during the load` },
  ];
  return [
    `fastcontainer/php (its default page: a few lines of PHP), 0.5 of a core per container, lifespan ${lifespan} s, minContainers 2, maxContainers 4, autoscale off; autocannon, ${connections} connections for ${seconds} s through the proxy. Drains ${watch.eventsApi ? 'from the events API (`drain` events)' : 'as first seen by polling the container entries every 200 ms (this build has no events API)'}.`,
    '',
    markdownTable(
      ['requests', 'req/s', 'failed (non-2xx + errors)', 'mean ms', 'p99 ms', 'drains', 'recycles (drains within 2 s of each other)', 'containers ready during the load', 'worst per-second p99 ms in a recycle\'s seconds, median over recycles', 'per-second p99 ms away from recycles, median'],
      [[load.result.total, fmt(load.result.rps), failedCount, fmt(load.timeline.meanBetween(0, seconds + 5), 1), load.result.p99, drains.length, recycles.length, starts, worstAfter.length === 0 ? '-' : fmt(median(worstAfter)), otherP99.length === 0 ? '-' : fmt(median(otherP99))]],
    ),
    '',
    '### Goals',
    '',
    goalsMarkdown(goals),
    '',
    `Plot: \`${displayPath(out.png)}\` (\`.svg\`, data \`.csv\`: per second mean, p99, responses, failed, drains).`,
  ].join('\n');
}
