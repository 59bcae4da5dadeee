// Freezing idle containers (freezeAfter): a container idle for freezeAfter seconds is paused with
// the cgroup freezer (`docker pause`), not removed, and the next request thaws it. The goal: p50 of
// at most 25 ms from sending a request to the first byte of its answer on a frozen container.
//
// One app on fastcontainer/php (its default page) with freezeAfter 1 s, lifespan and idleTimeout
// an hour, minContainers 0, autoscale off, so that one container serves every request. Then, side
// by side, FC_BENCH_FREEZE_RUNS (30) times:
//   thaw: wait (polling its container entries every 50 ms, at most 15 s) until the entry shows
//         frozenAt, then one GET through the proxy, timed to the first byte (when undici's
//         `request` resolves with the status and headers), body read, 200 checked;
//   warm: the same GET right after that one, the container not frozen.
// cold: the first request to a newly registered app of the same image and spec, runs/3 times
// (at least 10), as bench/cold-start.ts times it but to the first byte.
// While frozen, the container's CPU counter (its cgroup's cpuacct usage) is read twice 1 s apart,
// and `docker inspect` is asked whether it is State.Paused; the same read on an idle container
// that is not frozen (the cold apps', freezeAfter 0) is the reference.

import Docker from 'dockerode';
import { CgroupCpu } from '../src/dispatcher/signals/cgroup.js';
import { listEvents, warm } from './lib/app-watch.js';
import { ApiError, startFastcontainer, type Fastcontainer } from './lib/fastcontainer.js';
import { markdownTable } from './lib/load.js';
import { displayPath, lineChartSpec, writePlot } from './lib/plot.js';
import { fmt, goalsMarkdown, type Goal } from './lib/report.js';
import { failureText, ok, timedGet, type Timed } from './lib/timed-get.js';
import { quantile } from './lib/timeline.js';

const APP = 'freeze';
const HOST = 'freeze.bench';
const GOAL_P50_MS = 25;
const FREEZE_DEADLINE_MS = 15_000;
const POLL_MS = 50;
/** CPU time (ns) in 1 s under which a frozen container counts as using none: 0.1% of a core. */
const NO_CPU_NS = 1_000_000;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** The same app spec for the frozen app and the cold ones: the image's default page, one container. */
const spec = { image: 'fastcontainer/php', cpus: 0.5, maxCpus: 0.5, memory: '256m', lifespan: 3600, idleTimeout: 3600, minContainers: 0, maxContainers: 1, autoscale: false };


interface Entry {
  id: string;
  state: string;
  runtimeId: string | null;
  frozenAt?: unknown;
}

interface CpuSample {
  /** usageNs after 1 s minus before; null where the cgroup could not be read. */
  deltaNs: number | null;
  /** docker inspect's State.Paused (during the second); null where inspect failed. */
  paused: boolean | null;
  /** Whether the entry still showed the same frozenAt after the second. */
  stayedFrozen: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


async function entries(fc: Fastcontainer, app: string): Promise<Entry[]> {
  return ((await fc.api('GET', `/v1/apps/${app}/containers`)) as { containers: Entry[] }).containers;
}

const isFrozen = (e: Entry) => typeof e.frozenAt === 'number';

/** Polls until an entry of the app is frozen; throws, saying what the entries showed, after 15 s. */
async function waitFrozen(fc: Fastcontainer, app: string): Promise<Entry & { frozenAt: number }> {
  const deadline = Date.now() + FREEZE_DEADLINE_MS;
  let last: Entry[] = [];
  for (;;) {
    last = await entries(fc, app);
    const frozen = last.find(isFrozen);
    if (frozen !== undefined) return frozen as Entry & { frozenAt: number };
    if (Date.now() > deadline) break;
    await sleep(POLL_MS);
  }
  const seen = last.length === 0
    ? 'no entries'
    : last.map((e) => `${e.id} ${e.state} frozenAt ${e.frozenAt === undefined ? 'absent' : JSON.stringify(e.frozenAt)}`).join('; ');
  throw new Error(`no entry became frozen within ${FREEZE_DEADLINE_MS / 1000} s: is freezeAfter implemented? (app ${app}: ${seen})`);
}

/** CPU used in one second by the container, and whether the engine calls it paused meanwhile. */
async function cpuOverASecond(cgroup: CgroupCpu, runtimeId: string): Promise<{ deltaNs: number | null; paused: boolean | null }> {
  const before = await cgroup.read(runtimeId);
  await sleep(500);
  const paused = await docker.getContainer(runtimeId).inspect().then((i) => i.State.Paused, () => null);
  await sleep(500);
  const after = await cgroup.read(runtimeId);
  return { deltaNs: before === null || after === null ? null : after.usageNs - before.usageNs, paused };
}

interface Stats {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

function stats(xs: number[]): Stats | null {
  if (xs.length === 0) return null;
  return { n: xs.length, p50: quantile(xs, 0.5), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), max: Math.max(...xs) };
}


export async function benchFreeze(): Promise<string> {
  const runs = Number(process.env.FC_BENCH_FREEZE_RUNS ?? 30);
  const coldRuns = Math.max(10, Math.ceil(runs / 3));
  const cpuSamples = Math.min(runs, 3);
  const cgroup = new CgroupCpu();
  const thaw: Timed[] = [];
  const warmed: Timed[] = [];
  const cold: Timed[] = [];
  /** ms from the end of the last request to the frozenAt the entry showed. */
  const freezeDelays: number[] = [];
  const frozenIds = new Set<string>();
  let thawedNotListed = 0;
  const frozenCpu: CpuSample[] = [];
  const idleCpu: { deltaNs: number | null; paused: boolean | null }[] = [];
  let eventCounts: { freeze: number; thaw: number } | null = null;

  const fc = await startFastcontainer();
  try {
    try {
      await fc.api('POST', '/v1/apps', { name: APP, hostnames: [HOST], ...spec, freezeAfter: 1 });
    } catch (err) {
      if (err instanceof ApiError && err.status === 400 && err.body.includes('freezeAfter')) {
        throw new Error(`this build does not take freezeAfter (is freezeAfter implemented? run npm run build): ${err.message}`);
      }
      throw err;
    }
    const app = (await fc.api('GET', `/v1/apps/${APP}`)) as Record<string, unknown>;
    if (app.freezeAfter !== 1) throw new Error(`GET /v1/apps/${APP} shows freezeAfter ${JSON.stringify(app.freezeAfter)}, not 1: is freezeAfter implemented (and built)?`);

    // The first request starts the container (a cold start, not timed here).
    await warm(fc, HOST);
    let lastEnd = Date.now();
    process.stderr.write(`[bench]   ${runs} thaws (freezeAfter 1 s), each followed by a warm request...\n`);
    for (let i = 0; i < runs; i++) {
      const frozen = await waitFrozen(fc, APP);
      freezeDelays.push(frozen.frozenAt - lastEnd);
      frozenIds.add(frozen.id);
      if (i < cpuSamples && frozen.runtimeId !== null) {
        const cpu = await cpuOverASecond(cgroup, frozen.runtimeId);
        const still = (await entries(fc, APP)).find((e) => e.id === frozen.id);
        frozenCpu.push({ ...cpu, stayedFrozen: still?.frozenAt === frozen.frozenAt });
      }
      // Left frozen at least freezeAfter (1 s): a container thawed sooner waits longer before its
      // next freeze (the dispatcher's back-off against churn), which would slow the runs down.
      const frozenFor = Date.now() - frozen.frozenAt;
      if (frozenFor < 1_100) await new Promise((r) => setTimeout(r, 1_100 - frozenFor));
      thaw.push(await timedGet(fc, HOST));
      warmed.push(await timedGet(fc, HOST));
      lastEnd = Date.now();
      // Thawed, and by the container that was frozen (not a new one started in its place).
      const after = (await entries(fc, APP)).find((e) => e.id === frozen.id);
      if (after === undefined || after.state !== 'ready' || after.frozenAt !== null) thawedNotListed++;
    }
    const events = await listEvents(fc, APP);
    if (events !== null) eventCounts = { freeze: events.filter((e) => e.kind === 'freeze').length, thaw: events.filter((e) => e.kind === 'thaw').length };
    await fc.api('DELETE', `/v1/apps/${APP}`);

    process.stderr.write(`[bench]   ${coldRuns} cold starts (first request of a new app)...\n`);
    for (let i = 0; i < coldRuns; i++) {
      const name = `freezecold${i}`;
      await fc.api('POST', '/v1/apps', { name, hostnames: [`${name}.bench`], ...spec, freezeAfter: 0 });
      cold.push(await timedGet(fc, `${name}.bench`));
      // The reference for the CPU while frozen: the same container idle, not frozen.
      if (i < cpuSamples) {
        await sleep(500);
        const e = (await entries(fc, name)).find((x) => x.state === 'ready' && x.runtimeId !== null);
        if (e !== undefined) idleCpu.push(await cpuOverASecond(cgroup, e.runtimeId as string));
      }
      await fc.api('DELETE', `/v1/apps/${name}`);
    }
  } finally {
    await fc.stop();
  }

  const th = stats(thaw.filter(ok).map((t) => t.ms));
  const wa = stats(warmed.filter(ok).map((t) => t.ms));
  const co = stats(cold.filter(ok).map((t) => t.ms));
  const failures = [...thaw, ...warmed, ...cold].filter((t) => !ok(t)).length;
  const row = (label: string, s: Stats | null, ts: Timed[]) => [
    label, s?.n ?? 0, fmt(s?.p50, 1), fmt(s?.p90, 1), fmt(s?.p99, 1), fmt(s?.max, 1),
    s === null || co === null ? '-' : fmt(s.p50 / co.p50, 3), failureText(ts),
  ];

  const frozenDeltas = frozenCpu.map((c) => c.deltaNs).filter((d): d is number => d !== null);
  const list = (xs: (number | null)[]) => (xs.length === 0 ? 'not read' : xs.map((x) => (x === null ? 'unreadable' : String(x))).join(', '));
  const pausedText = (xs: (boolean | null)[]) => (xs.length === 0 ? '-' : xs.map((p) => (p === null ? '?' : String(p))).join(', '));
  const cpuMet = frozenDeltas.length === 0 ? null : frozenDeltas.every((d) => d < NO_CPU_NS) && frozenCpu.every((c) => c.stayedFrozen);

  const plotRows = thaw.flatMap((t, i) => [
    { run: i + 1, series: 'thaw (frozen container)', ms: ok(t) ? t.ms : null },
    { run: i + 1, series: 'warm (right after)', ms: ok(warmed[i] as Timed) ? (warmed[i] as Timed).ms : null },
  ]).filter((r) => r.ms !== null);
  const out = await writePlot('freeze', lineChartSpec({
    title: `Request to first byte on a frozen container (freezeAfter 1 s), ${runs} runs`,
    rows: plotRows,
    x: { field: 'run', title: 'run' },
    y: { field: 'ms', title: 'ms to the first byte' },
    series: { field: 'series', title: 'request', order: ['thaw (frozen container)', 'warm (right after)'] },
  }), plotRows);

  const goals: Goal[] = [
    { goal: `p50 from request to first byte on a frozen container ≤ ${GOAL_P50_MS} ms`, met: th === null ? false : th.p50 <= GOAL_P50_MS, detail: `p50 ${fmt(th?.p50, 1)} ms (p99 ${fmt(th?.p99, 1)} ms) over ${th?.n ?? 0} thaws; warm p50 ${fmt(wa?.p50, 1)} ms, cold p50 ${fmt(co?.p50, 0)} ms` },
    { goal: 'no failed request (non-200 or error)', met: failures === 0, detail: `${failures} of ${thaw.length + warmed.length + cold.length}` },
    { goal: 'a frozen container uses no CPU', met: cpuMet, detail: `cpuacct usage over 1 s while frozen: ${list(frozenCpu.map((c) => c.deltaNs))} ns (under ${NO_CPU_NS} ns counts as none); docker inspect State.Paused: ${pausedText(frozenCpu.map((c) => c.paused))}` },
  ];
  return [
    `fastcontainer/php (its default page), 0.5 of a core, 256 MiB, one container (minContainers 0, maxContainers 1, autoscale off, lifespan and idleTimeout 3600 s). **thaw**: freezeAfter 1 s; each run waits until the container entry shows \`frozenAt\` (polled every ${POLL_MS} ms) and has been frozen at least 1.1 s, then sends one GET through the proxy; **warm**: the same GET right after it; **cold**: the first request of a newly registered app with the same spec (freezeAfter 0), a new app each run. Time from sending to the first byte (undici \`request\` resolving with status and headers), then the body is read; latencies of 200 answers only. Requests one at a time, on loopback.`,
    '',
    markdownTable(
      ['request', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'p50 ratio to cold', 'failures (non-200)'],
      [row('thaw: a frozen container', th, thaw), row('warm: right after another request', wa, warmed), row('cold: first request of a new app', co, cold)],
    ),
    '',
    markdownTable(
      ['check', 'measured'],
      [
        ['thaw p50 / cold p50', th === null || co === null ? '-' : fmt(th.p50 / co.p50, 3)],
        ['thaw p50 − warm p50 (what the thaw adds), ms', th === null || wa === null ? '-' : fmt(th.p50 - wa.p50, 1)],
        ['CPU over 1 s while frozen (cgroup cpuacct usage delta), ns', list(frozenCpu.map((c) => c.deltaNs))],
        ['… the same container stayed frozen over that second', frozenCpu.length === 0 ? '-' : frozenCpu.map((c) => (c.stayedFrozen ? 'yes' : '**no**')).join(', ')],
        ['docker inspect State.Paused while frozen', pausedText(frozenCpu.map((c) => c.paused))],
        ['reference: CPU over 1 s idle, not frozen (a cold app\'s container, 0.5 s after its request), ns', list(idleCpu.map((c) => c.deltaNs))],
        ['reference: docker inspect State.Paused then', pausedText(idleCpu.map((c) => c.paused))],
        ['frozenAt after the last request, ms (p50, max)', freezeDelays.length === 0 ? '-' : `${fmt(quantile(freezeDelays, 0.5))}, ${fmt(Math.max(...freezeDelays))}`],
        ['containers seen frozen over the runs (1: every thaw woke the same one)', String(frozenIds.size)],
        ['runs after which the frozen container was not listed ready and thawed (frozenAt null)', String(thawedNotListed)],
        ['events API: freeze, thaw events', eventCounts === null ? 'no events API' : `${eventCounts.freeze}, ${eventCounts.thaw}`],
      ],
    ),
    '',
    '### Goals',
    '',
    goalsMarkdown(goals),
    '',
    `Plot: \`${displayPath(out.png)}\` (\`.svg\`, data \`.csv\`: ms to the first byte per run, thaw and the warm request right after it).`,
  ].join('\n');
}
