// Metabolism at scale: a small app (fastcontainer/hello) whose containers live 1 s, at least 2 at a
// time, recycled until FC_BENCH_METABOLISM_STARTS (5000) containers have started, or
// FC_BENCH_METABOLISM_MAX_SECONDS (1800) have passed (FC_BENCH_METABOLISM_LIFESPAN, 1 s, and
// FC_BENCH_METABOLISM_MIN_CONTAINERS, 2, set the pace). Starting the 5000th container should take
// no longer than the 100th (median of the last 100 within 1.2× the first 100), and nothing may be
// left behind: no exited or created container of the stack's host in the engine at the end.
//
// Each start's latency is its entry's readyAt - startedAt, read by polling the app's container
// entries (the events API keeps only the newest 200 events); the dispatcher's
// fc_dispatcher_cold_starts_total counts the starts too, as a check that the poll missed none.
// The stack reconciles every second (FC_RECONCILE_INTERVAL=1s), so minContainers is restored
// within a second of a drain even by a build that does not replace containers ahead of time.

import Docker from 'dockerode';
import { request } from 'undici';
import { AppWatch, type ContainerTrack } from './lib/app-watch.js';
import { startFastcontainer, type Fastcontainer } from './lib/fastcontainer.js';
import { markdownTable, median } from './lib/load.js';
import type { TopLevelSpec } from 'vega-lite';
import { displayPath, writePlot } from './lib/plot.js';
import { fmt, goalsMarkdown, type Goal } from './lib/report.js';

const APP = 'metabolism';
const HOST = 'metabolism.bench';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Sum of fc_dispatcher_cold_starts_total for the app, by result. */
export function coldStarts(metrics: string, app: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('fc_dispatcher_cold_starts_total{')) continue;
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (!labels.includes(`app="${app}"`)) continue;
    const result = /result="([^"]*)"/.exec(labels)?.[1] ?? '?';
    out[result] = (out[result] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

/** The stack's containers in the engine, by state (running, exited, created, ...). */
async function engineStates(fc: Fastcontainer): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of await docker.listContainers({ all: true, filters: { label: [`fastcontainer.host=${fc.hostId}`] } })) out[c.State] = (out[c.State] ?? 0) + 1;
  return out;
}

const deadStates = ['exited', 'created', 'dead'];
const dead = (states: Record<string, number>) => deadStates.reduce((n, s) => n + (states[s] ?? 0), 0);

export async function benchMetabolism(): Promise<string> {
  const target = Number(process.env.FC_BENCH_METABOLISM_STARTS ?? 5000);
  const maxSeconds = Number(process.env.FC_BENCH_METABOLISM_MAX_SECONDS ?? 1800);
  const lifespan = Number(process.env.FC_BENCH_METABOLISM_LIFESPAN ?? 1);
  // More containers at a time only make the starts come faster (2 at lifespan 1 s: about 2 a second).
  const minContainers = Number(process.env.FC_BENCH_METABOLISM_MIN_CONTAINERS ?? 2);
  const maxContainers = Math.max(4, 2 * minContainers);
  const fc = await startFastcontainer({ env: { FC_RECONCILE_INTERVAL: '1s' } });
  let watch: AppWatch | undefined;
  let metricStarts: Record<string, number> = {};
  let maxDead = 0;
  let leftDead = 0;
  let leftStates: Record<string, number> = {};
  let probes = 0;
  let probeFailures = 0;
  const t0 = Date.now();
  let elapsed = 0;
  try {
    await fc.api('POST', '/v1/apps', {
      name: APP, hostnames: [HOST], image: 'fastcontainer/hello', cpus: 0.25, maxCpus: 0.25, memory: '32m',
      lifespan, minContainers, maxContainers, autoscale: false,
    });
    watch = new AppWatch(fc, APP, 150);
    watch.eventsApi = false; // the entries say all this needs, and a poll stays cheap
    watch.start();
    // A request every 200 ms through the proxy: the app keeps answering while it is recycled.
    let probing = true;
    const probe = (async () => {
      while (probing) {
        probes++;
        try {
          const res = await request(`${fc.proxyUrl}/`, { headers: { host: HOST }, headersTimeout: 30_000, bodyTimeout: 30_000 });
          await res.body.dump();
          if (res.statusCode !== 200) probeFailures++;
        } catch {
          probeFailures++;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    let lastLog = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 2000));
      metricStarts = coldStarts(await fc.dispatcherMetrics(), APP);
      const seen = started(watch).length;
      const counted = Math.max(seen, metricStarts.ok ?? 0);
      maxDead = Math.max(maxDead, dead(await engineStates(fc)));
      elapsed = (Date.now() - t0) / 1000;
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        process.stderr.write(`[bench]   ${counted} starts (${seen} seen in the entries) after ${elapsed.toFixed(0)} s\n`);
      }
      if (counted >= target || elapsed >= maxSeconds) break;
    }
    probing = false;
    await probe;
    await watch.stop();
    metricStarts = coldStarts(await fc.dispatcherMetrics(), APP);
    // The end: the app goes, its containers drain; then nothing of this stack may be left but
    // running containers on their way out.
    await fc.api('DELETE', `/v1/apps/${APP}`);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      leftStates = await engineStates(fc);
      if (Object.values(leftStates).reduce((a, b) => a + b, 0) === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    leftStates = await engineStates(fc);
    leftDead = dead(leftStates);
  } finally {
    await fc.stop();
  }

  const starts = started(watch);
  const ms = starts.map((t) => (t.readyAt as number) - (t.startedAt as number));
  const first = ms.slice(0, 100);
  const last = ms.slice(-100);
  const firstMedian = first.length === 0 ? null : median(first);
  const lastMedian = last.length === 0 ? null : median(last);
  const ratio = firstMedian === null || lastMedian === null || firstMedian === 0 ? null : lastMedian / firstMedian;
  // Each start a dot; the line is the median of the 100 starts around it (drift shows there).
  const rolling = ms.map((_, i) => median(ms.slice(Math.max(0, i - 50), i + 50)));
  const rows = starts.map((t, i) => ({ start: i + 1, ms: ms[i] as number, median100_ms: rolling[i] as number, startedAt: new Date(t.startedAt as number).toISOString(), container: t.id }));
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Start latency over ${starts.length} starts (fastcontainer/hello, lifespan ${lifespan} s, ≥ ${minContainers} containers)`,
    width: 640,
    height: 320,
    data: { values: rows },
    layer: [
      { mark: { type: 'circle', size: 6, opacity: 0.35, color: '#4c78a8' }, encoding: { x: { field: 'start', type: 'quantitative', title: 'start number' }, y: { field: 'ms', type: 'quantitative', title: 'start latency: readyAt − startedAt (ms)' } } },
      { mark: { type: 'line', color: '#e45756', strokeWidth: 2 }, encoding: { x: { field: 'start', type: 'quantitative' }, y: { field: 'median100_ms', type: 'quantitative' } } },
    ],
  } as TopLevelSpec;
  const out = starts.length === 0 ? undefined : await writePlot('metabolism', spec, rows);
  const okStarts = metricStarts.ok ?? 0;
  const failedStarts = Object.entries(metricStarts).filter(([k]) => k !== 'ok').reduce((n, [, v]) => n + v, 0);
  const goals: Goal[] = [
    { goal: `reach ${target} container starts within ${maxSeconds} s`, met: Math.max(okStarts, starts.length) >= target, detail: `${okStarts} counted by the dispatcher, ${starts.length} seen in the entries, in ${fmt(elapsed)} s` },
    { goal: 'median start latency of the last 100 starts within 1.2× the first 100', met: ratio === null || starts.length < 200 ? null : ratio <= 1.2, detail: `${fmt(firstMedian)} ms → ${fmt(lastMedian)} ms (${fmt(ratio, 2)}×)${starts.length < 200 ? '; fewer than 200 starts' : ''}` },
    { goal: 'no dead container (exited, created) of the stack left in the engine at the end', met: leftDead === 0, detail: `${leftDead} at the end (${JSON.stringify(leftStates)}); at most ${maxDead} at any 2 s sample during the run` },
  ];
  return [
    `fastcontainer/hello (busybox httpd), 0.25 of a core, lifespan ${lifespan} s, minContainers ${minContainers}, maxContainers ${maxContainers}, autoscale off; the stack reconciles every second. A probe request every 200 ms through the proxy. Start latency: each container entry's readyAt − startedAt, polled every 150 ms.`,
    '',
    markdownTable(
      ['starts (dispatcher)', 'failed starts', 'starts seen in entries', 'run s', 'starts/s', 'median ms, first 100', 'median ms, last 100', 'ratio', 'probe requests', 'probe failures', 'dead containers left'],
      [[okStarts, failedStarts, starts.length, fmt(elapsed), fmt(starts.length / Math.max(1, elapsed), 2), fmt(firstMedian), fmt(lastMedian), fmt(ratio, 2), probes, probeFailures, leftDead]],
    ),
    '',
    '### Goals',
    '',
    goalsMarkdown(goals),
    '',
    out === undefined ? 'Plot: none (no start was seen).' : `Plot: \`${displayPath(out.png)}\` (\`.svg\`, data \`.csv\`): each start a dot, the red line the median of the 100 starts around it.`,
  ].join('\n');
}

/** Containers that started and became ready, in order of start. */
function started(watch: AppWatch | undefined): ContainerTrack[] {
  if (watch === undefined) return [];
  return [...watch.containers.values()].filter((t) => t.startedAt !== null && t.readyAt !== null).sort((a, b) => (a.startedAt as number) - (b.startedAt as number));
}
