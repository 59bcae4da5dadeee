// The paper's figures 3 (scale out) and 4 (scale up), reproduced. One fastcontainer/php container
// serving `<?php phpinfo();` limited to 0.3 of a core, under 100 connections for a fixed time; the
// per-second mean latency is plotted for five runs, each on a fresh stack and a fresh app:
//   (a) one container, no scaling: the baseline;
//   (b) manual scale out: a second container asked for at the midpoint (figure 3);
//   (c) manual scale up: the container's quota raised from 0.3 to 0.6 of a core at the midpoint (figure 4);
//   (d) automatic scale out: the autoscaler, allowed 2 containers and no scale up;
//   (e) automatic scale up: the autoscaler, allowed 0.6 of a core and 1 container.
// The automatic runs should cut the mean latency at least as much as the manual ones, with no
// failed request. Settings: FC_BENCH_FIG_SECONDS (60), FC_BENCH_FIG_RUNS (a,b,c,d,e),
// FC_BENCH_FIG_ROUNDS (1; more take turns and the table shows medians), FC_BENCH_FIG_CONNECTIONS
// (100), FC_BENCH_LATENCY_TARGET_MS (default: from run (a), see targetFrom).

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppWatch, missingEndpoints, warm, type AppEvent } from './lib/app-watch.js';
import { ApiError, startFastcontainer, type Fastcontainer } from './lib/fastcontainer.js';
import { markdownTable, median, timedLoad, until, type LoadResult } from './lib/load.js';
import { displayPath, lineChartSpec, resultsDir, toCsv, writePlot } from './lib/plot.js';
import { fmt, goalsMarkdown, type Goal } from './lib/report.js';
import type { LatencyTimeline, SecondBucket } from './lib/timeline.js';

type RunId = 'a' | 'b' | 'c' | 'd' | 'e';

interface RunDef {
  id: RunId;
  label: string;
  spec: { maxContainers: number; maxCpus: number; autoscale: boolean };
  manual?: { containers: number } | { cpus: number };
  auto?: 'scale-out' | 'scale-up';
  needs: ('events' | 'scale')[];
}

const CPUS = 0.3;
const runDefs: RunDef[] = [
  { id: 'a', label: '(a) 1 container, no scaling', spec: { maxContainers: 1, maxCpus: CPUS, autoscale: false }, needs: [] },
  { id: 'b', label: '(b) manual scale out at the midpoint', spec: { maxContainers: 2, maxCpus: CPUS, autoscale: false }, manual: { containers: 2 }, needs: ['scale'] },
  { id: 'c', label: '(c) manual scale up at the midpoint', spec: { maxContainers: 1, maxCpus: 2 * CPUS, autoscale: false }, manual: { cpus: 2 * CPUS }, needs: ['scale'] },
  { id: 'd', label: '(d) automatic scale out', spec: { maxContainers: 2, maxCpus: CPUS, autoscale: true }, auto: 'scale-out', needs: ['events'] },
  { id: 'e', label: '(e) automatic scale up', spec: { maxContainers: 1, maxCpus: 2 * CPUS, autoscale: true }, auto: 'scale-up', needs: ['events'] },
];

interface Decision {
  kind: string;
  /** Seconds since the load began. */
  decidedAt: number | null;
  appliedAt: number | null;
  reason: string;
}

interface RunResult {
  def: RunDef;
  round: number;
  skipped?: string;
  note?: string;
  result?: LoadResult;
  buckets?: SecondBucket[];
  timeline?: LatencyTimeline;
  elapsed?: number;
  /** Seconds since the load began where before/after is split: the midpoint, or the first applied decision. */
  split?: number | null;
  decisions?: Decision[];
  events?: AppEvent[];
  startedAt?: number;
}

export interface FiguresSettings {
  seconds: number;
  connections: number;
  runs: RunId[];
  /** Every run this many times, taking turns (a, b, ..., e, a, b, ...): the table shows medians. */
  rounds: number;
  latencyTargetMs: number | null;
}

export function figuresSettings(): FiguresSettings {
  const runs = (process.env.FC_BENCH_FIG_RUNS ?? 'a,b,c,d,e').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = runs.filter((r) => !runDefs.some((d) => d.id === r));
  if (bad.length > 0) throw new Error(`FC_BENCH_FIG_RUNS: no run ${bad.join(', ')}; the runs are a, b, c, d, e`);
  const target = process.env.FC_BENCH_LATENCY_TARGET_MS;
  return {
    seconds: Number(process.env.FC_BENCH_FIG_SECONDS ?? 60),
    connections: Number(process.env.FC_BENCH_FIG_CONNECTIONS ?? 100),
    runs: runs as RunId[],
    rounds: Math.max(1, Number(process.env.FC_BENCH_FIG_ROUNDS ?? 1)),
    latencyTargetMs: target === undefined || target === '' ? null : Number(target),
  };
}

function makeSite(): string {
  const site = mkdtempSync(path.join(os.tmpdir(), 'fcbench-phpinfo-'));
  chmodSync(site, 0o755);
  writeFileSync(path.join(site, 'index.php'), '<?php phpinfo();\n');
  chmodSync(path.join(site, 'index.php'), 0o644);
  return site;
}

/**
 * Creates the app; a build without the autoscaling fields refuses them, and run (a) (which needs
 * none of them to mean "no scaling": such a build has no autoscaler) is then created without them.
 */
async function createApp(fc: Fastcontainer, spec: Record<string, unknown>, optional: string[]): Promise<string | undefined> {
  try {
    await fc.api('POST', '/v1/apps', spec);
    return undefined;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400 || !/no such field/.test(err.body) || optional.length === 0) throw err;
    const bare = Object.fromEntries(Object.entries(spec).filter(([k]) => !optional.includes(k)));
    await fc.api('POST', '/v1/apps', bare);
    return `this build has no ${optional.join('/')} fields: the app was created without them (a build without an autoscaler)`;
  }
}

/** A run's scaling decisions and when each was applied, from the events (or, lacking them, the entries). */
function decisionsOf(def: RunDef, events: AppEvent[], watch: AppWatch, startedAt: number, firstContainer: string | undefined): Decision[] {
  const s = (at: number) => (at - startedAt) / 1000;
  const out: Decision[] = [];
  const inRun = events.filter((e) => e.at >= startedAt);
  for (const e of inRun) {
    if (!['scale-out', 'scale-up', 'scale-in', 'scale-down', 'manual'].includes(e.kind)) continue;
    let applied: number | null = e.at;
    if (e.kind === 'scale-out' || (e.kind === 'manual' && def.manual !== undefined && 'containers' in def.manual)) {
      // Applied when the new container is ready: the event's own container, else the next other one.
      const ready = inRun.find((r) => r.kind === 'ready' && r.at >= e.at && (e.container !== null ? r.container === e.container : r.container !== firstContainer));
      applied = ready?.at ?? null;
    }
    out.push({ kind: e.kind, decidedAt: s(e.at), appliedAt: applied === null ? null : s(applied), reason: e.reason ?? '' });
  }
  if (watch.eventsApi || def.auto === undefined) return out;
  // No events API: what the entries showed (to the poll's resolution).
  for (const t of watch.containers.values()) {
    if (t.id !== firstContainer && t.readyAt !== null && t.readyAt >= startedAt) out.push({ kind: 'scale-out (seen in entries)', decidedAt: t.startedAt === null ? null : s(t.startedAt), appliedAt: s(t.readyAt), reason: '' });
    const up = t.cpus.find(([, c], i) => i > 0 && c > (t.cpus[0]?.[1] ?? c));
    if (up !== undefined) out.push({ kind: 'scale-up (seen in entries)', decidedAt: null, appliedAt: s(up[0]), reason: `cpus ${t.cpus[0]?.[1]} → ${up[1]}` });
  }
  return out.sort((a, b) => (a.appliedAt ?? Infinity) - (b.appliedAt ?? Infinity));
}

async function runOne(def: RunDef, round: number, st: FiguresSettings, site: string, latencyTargetMs: number): Promise<RunResult> {
  const name = `fig-${def.id}`;
  const host = `${name}.bench`;
  const fc = await startFastcontainer();
  try {
    const spec = {
      name, hostnames: [host], image: 'fastcontainer/php', port: 8080,
      volumes: [`${site}:/var/www/html:ro`],
      cpus: CPUS, memory: '256m', lifespan: 3600, minContainers: 1, idleTimeout: 3600, latencyTargetMs,
      ...def.spec,
    };
    const note = await createApp(fc, spec, def.id === 'a' ? ['maxCpus', 'autoscale', 'latencyTargetMs', 'idleTimeout'] : []);
    const missing = await missingEndpoints(fc, name, def.needs);
    if (missing.length > 0) return { def, round, skipped: `this build lacks ${missing.join(' and ')}` };
    await warm(fc, host);
    const first = ((await fc.api('GET', `/v1/apps/${name}/containers`)) as { containers: { id: string; state: string }[] }).containers.find((c) => c.state === 'ready')?.id;
    const watch = new AppWatch(fc, name, 250).start();
    let split: number | null = null;
    const mid = st.seconds / 2;
    const load = await timedLoad(fc.proxyUrl, { host, connections: st.connections, seconds: st.seconds, timeout: 60 }, async (startedAt) => {
      if (def.manual === undefined) return;
      await until(startedAt + mid * 1000);
      split = (Date.now() - startedAt) / 1000;
      await fc.api('POST', `/v1/apps/${name}/scale`, def.manual);
      process.stderr.write(`[bench]   ${def.id}: POST scale ${JSON.stringify(def.manual)} at ${split.toFixed(1)} s\n`);
    });
    await watch.stop();
    const events = watch.allEvents();
    const decisions = decisionsOf(def, events, watch, load.startedAt, first);
    if (def.auto !== undefined) split = decisions.find((d) => d.appliedAt !== null && !d.kind.startsWith('scale-in') && !d.kind.startsWith('scale-down'))?.appliedAt ?? null;
    if (def.id === 'a') split = mid;
    return { def, round, ...(note === undefined ? {} : { note }), result: load.result, buckets: load.timeline.buckets(st.seconds), timeline: load.timeline, elapsed: load.elapsed, split, decisions, events, startedAt: load.startedAt };
  } finally {
    await fc.stop();
  }
}

/**
 * The autoscaler's latency target when none is given: below what one saturated container gives
 * (so the autoscaler acts) and above what the scaled app gives (so it does not act again, or
 * undo its decision). With 100 closed-loop connections, latency is connections / throughput, so
 * doubling the capacity halves it: 0.7 of run (a)'s second-half mean sits between the two.
 */
function targetFrom(a: RunResult | undefined, seconds: number): number | null {
  const m = a?.timeline?.meanBetween(seconds / 2, seconds);
  return m === null || m === undefined ? null : Math.max(10, Math.round((0.7 * m) / 10) * 10);
}

export async function benchAutoscaleFigures(): Promise<string> {
  const st = figuresSettings();
  const site = makeSite();
  const results: RunResult[] = [];
  let target = st.latencyTargetMs ?? 300;
  let targetNote = st.latencyTargetMs !== null ? 'FC_BENCH_LATENCY_TARGET_MS' : 'default (run (a) did not run before the automatic runs)';
  try {
    // Run (a) first: it calibrates the automatic runs' target (from the first round, then fixed).
    const order = [...runDefs].filter((d) => st.runs.includes(d.id));
    for (let round = 1; round <= st.rounds; round++) {
      for (const def of order) {
        if (def.auto !== undefined && st.latencyTargetMs === null && round === 1) {
          const fromA = targetFrom(results.find((r) => r.def.id === 'a'), st.seconds);
          if (fromA !== null) {
            target = fromA;
            targetNote = '0.7 × run (a)\'s mean latency over its second half';
          }
        }
        process.stderr.write(`[bench]   ${st.rounds > 1 ? `round ${round}/${st.rounds}: ` : ''}run ${def.label} (${st.seconds} s, ${st.connections} connections${def.auto ? `, latency target ${target} ms` : ''})...\n`);
        const r = await runOne(def, round, st, site, target).catch((err: unknown): RunResult => ({ def, round, skipped: `failed: ${err instanceof Error ? err.message : String(err)}` }));
        if (r.skipped !== undefined) process.stderr.write(`[bench]   ${def.id}: not run: ${r.skipped}\n`);
        results.push(r);
      }
    }
  } finally {
    rmSync(site, { recursive: true, force: true });
  }
  return report(results, st, target, targetNote);
}

function failed(r: RunResult): number {
  return (r.result?.errors ?? 0) + (r.result?.non2xx ?? 0);
}

/** What one run measured, with its split. */
interface RunRow {
  r: RunResult;
  split: number | null;
  before: number | null;
  after: number | null;
  /** Reduction (%) from before to after the split. */
  own: number | null;
  /** Mean over the second half, when every change (manual at the midpoint, automatic earlier) is in. */
  secondHalf: number | null;
  /** Reduction (%) of the second half's mean against run (a)'s of the same round. */
  vsA: number | null;
}

const med = (xs: (number | null | undefined)[]): number | null => {
  const v = xs.filter((x): x is number => x !== null && x !== undefined && Number.isFinite(x));
  return v.length === 0 ? null : median(v);
};

async function report(results: RunResult[], st: FiguresSettings, target: number, targetNote: string): Promise<string> {
  const ran = results.filter((r) => r.timeline !== undefined);
  const T = st.seconds;
  const rows: RunRow[] = ran.map((r) => {
    const tl = r.timeline as LatencyTimeline;
    const base = ran.find((x) => x.def.id === 'a' && x.round === r.round)?.timeline;
    const split = r.split ?? null;
    const before = split === null ? null : tl.meanBetween(0, split);
    const after = split === null ? null : tl.meanBetween(split, T + 5);
    const own = before === null || after === null ? null : 100 * (1 - after / before);
    const secondHalf = tl.meanBetween(T / 2, T + 5);
    const baseHalf = base === undefined ? null : base.meanBetween(T / 2, T + 5);
    const vsA = secondHalf === null || baseHalf === null || r.def.id === 'a' ? null : 100 * (1 - secondHalf / baseHalf);
    return { r, split, before, after, own, secondHalf, vsA };
  });
  const ids = runDefs.map((d) => d.id).filter((id) => rows.some((x) => x.r.def.id === id));
  // One row per run: the median over its rounds (just the value with one round).
  const summary = ids.map((id) => {
    const rs = rows.filter((x) => x.r.def.id === id);
    return {
      id,
      def: (rs[0] as RunRow).r.def,
      rounds: rs.length,
      requests: med(rs.map((x) => x.r.result?.total)),
      rps: med(rs.map((x) => x.r.result?.rps)),
      failed: rs.reduce((n, x) => n + failed(x.r), 0),
      split: med(rs.map((x) => x.split)),
      noDecision: rs.filter((x) => x.split === null).length,
      before: med(rs.map((x) => x.before)),
      after: med(rs.map((x) => x.after)),
      own: med(rs.map((x) => x.own)),
      secondHalf: med(rs.map((x) => x.secondHalf)),
      vsA: med(rs.map((x) => x.vsA)),
      elapsed: med(rs.map((x) => x.r.elapsed)),
    };
  });
  const many = st.rounds > 1;
  const table = markdownTable(
    ['run', ...(many ? ['rounds'] : []), 'requests', 'req/s', 'failed (non-2xx + errors)', 'split at s', 'mean ms before', 'mean ms after', 'reduction %', 'mean ms, second half', 'reduction % vs (a), second half', 'load s'],
    [
      ...summary.map((x) => [
        x.def.label, ...(many ? [x.rounds] : []), fmt(x.requests), fmt(x.rps), x.failed,
        x.split === null ? 'no decision' : `${fmt(x.split, 1)}${x.noDecision > 0 ? ` (no decision in ${x.noDecision})` : ''}`,
        fmt(x.before), fmt(x.after), fmt(x.own, 1), fmt(x.secondHalf), fmt(x.vsA, 1), fmt(x.elapsed, 1),
      ]),
      ...results.filter((r) => r.skipped !== undefined).map((r) => [r.def.label, ...(many ? [r.round] : []), '-', '-', '-', '-', '-', '-', '-', '-', '-', `not run: ${r.skipped}`]),
    ],
  );
  const decisionRows = ran.flatMap((r) => (r.decisions ?? []).map((d) => [r.def.label, ...(many ? [r.round] : []), d.kind, fmt(d.decidedAt, 1), fmt(d.appliedAt, 1), d.reason.replace(/\|/g, '/')]));
  const decisions = decisionRows.length === 0 ? 'No scaling event was recorded.' : markdownTable(['run', ...(many ? ['round'] : []), 'event', 'decided at s', 'applied at s', 'reason'], decisionRows);
  const eventRows = ran.flatMap((r) => (r.events ?? []).map((e) => ({ run: r.def.id, round: r.round, at_s: (e.at - (r.startedAt as number)) / 1000, kind: e.kind, container: e.container, from: typeof e.from === 'number' ? e.from : null, to: typeof e.to === 'number' ? e.to : null, reason: e.reason })));
  if (eventRows.length > 0) {
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(path.join(resultsDir, 'autoscale-events.csv'), toCsv(eventRows));
  }

  // Figures: the paper's layout, one line per run (the mean over rounds of each second's mean),
  // the changes marked. A bucket [s, s+1) is drawn at its middle, so a change at second 30 falls
  // between the buckets before and after it.
  const plotRows = (fig: readonly RunId[]) => summary.filter((x) => fig.includes(x.id)).flatMap((x) => {
    const rs = ran.filter((r) => r.def.id === x.id);
    const n = Math.max(...rs.map((r) => r.buckets?.length ?? 0));
    return Array.from({ length: n }, (_, sec) => {
      const bs = rs.map((r) => r.buckets?.[sec]).filter((b): b is SecondBucket => b !== undefined);
      const means = bs.map((b) => b.mean).filter((m): m is number => m !== null);
      return {
        second: sec, t: sec + 0.5, run: x.def.label,
        mean_ms: means.length === 0 ? null : means.reduce((a, b) => a + b, 0) / means.length,
        responses: bs.reduce((a, b) => a + b.responses, 0),
        failed: bs.reduce((a, b) => a + b.errors + b.non2xx, 0),
      };
    });
  });
  const rulesFor = (fig: readonly RunId[]) => summary.filter((x) => fig.includes(x.id) && x.id !== 'a' && x.split !== null).map((x) => ({ x: x.split as number, label: `${x.id}: ${x.def.auto ?? 'manual'}` }));
  const files: string[] = [];
  for (const [fig, figIds, title] of [['fig3', ['a', 'b', 'd'], 'Figure 3: scale out (phpinfo, 0.3 core, 100 connections)'], ['fig4', ['a', 'c', 'e'], 'Figure 4: scale up (phpinfo, 0.3 → 0.6 core, 100 connections)']] as const) {
    const data = plotRows(figIds);
    if (data.length === 0) continue;
    const spec = lineChartSpec({
      title: many ? `${title}, mean of ${st.rounds} rounds` : title,
      rows: data.filter((d) => d.mean_ms !== null),
      x: { field: 't', title: 'seconds since the load began' },
      y: { field: 'mean_ms', title: 'mean latency per second (ms)' },
      series: { field: 'run', title: 'run', order: summary.filter((x) => (figIds as readonly string[]).includes(x.id)).map((x) => x.def.label) },
      rules: rulesFor(figIds),
    });
    const out = await writePlot(fig, spec, data);
    files.push(`\`${displayPath(out.png)}\` (\`.svg\`, data \`.csv\`)`);
  }

  const goals: Goal[] = [];
  goals.push({
    goal: 'no failed request (non-2xx or error) in any run',
    met: ran.length === 0 ? null : ran.every((r) => failed(r) === 0),
    detail: summary.map((x) => `${x.id}: ${x.failed}`).join(', ') || 'no run',
  });
  for (const [auto, manual] of [['d', 'b'], ['e', 'c']] as const) {
    const a = summary.find((x) => x.id === auto);
    const m = summary.find((x) => x.id === manual);
    const label = `automatic ${auto === 'd' ? 'scale out (d)' : 'scale up (e)'} cuts mean latency at least as much as manual (${manual})`;
    if (a === undefined || m === undefined || a.vsA === null || m.vsA === null) {
      goals.push({ goal: label, met: null, detail: `needs runs a, ${manual} and ${auto}` });
      continue;
    }
    goals.push({
      goal: label,
      met: a.vsA >= m.vsA,
      detail: `second half vs (a): ${fmt(a.vsA, 1)} % vs ${fmt(m.vsA, 1)} % (${fmt(a.secondHalf)} ms vs ${fmt(m.secondHalf)} ms); own before → after: ${fmt(a.own, 1)} % vs ${fmt(m.own, 1)} %${a.noDecision > 0 ? `; ${auto} made no decision in ${a.noDecision} round(s)` : ''}`,
    });
  }

  const notes = results.filter((r) => r.note !== undefined).map((r) => `- ${r.def.label}: ${r.note}`);
  return [
    `fastcontainer/php serving \`<?php phpinfo();\` from a read-only bind mount, one container limited to ${CPUS} of a core (CFS quota), memory 256 MiB, Apache prefork with 20 workers; autocannon, ${st.connections} connections for ${T} s per run${many ? `, ${st.rounds} rounds taking turns (the table shows medians over rounds, the plots the mean of each second over rounds)` : ''}, each run on a fresh stack (\`fastcontainer up\`) and a fresh app whose first container is warmed by one request before the load. Latency: per response, bucketed by the second in which it ended. "Before/after": split at the midpoint (manual runs and (a)) or at the first applied decision (automatic runs: the new container's \`ready\` for a scale out, the \`scale-up\` event for a scale up).`,
    '',
    `Automatic runs' latency target: ${target} ms (${targetNote}). The goal "cuts mean latency at least as much" compares the second half of each run (every change is in by then) with run (a)'s second half: an automatic run's own "before" is only the second or two until its first decision, which includes Apache's warm-up, so its own before → after reduction (in the table too) is not comparable with a manual run's.`,
    ...(notes.length > 0 ? ['', ...notes] : []),
    '',
    table,
    '',
    '### Scaling decisions (seconds since the load began)',
    '',
    decisions,
    '',
    '### Goals',
    '',
    goalsMarkdown(goals),
    '',
    `Plots: ${files.length === 0 ? 'none (no run)' : files.join(', ')}${eventRows.length > 0 ? `; every event of every run: \`${displayPath(path.join(resultsDir, 'autoscale-events.csv'))}\`` : ''}.`,
  ].join('\n');
}
