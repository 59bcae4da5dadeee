// The chaos suite (issue 8, section 6): each fault run against the real stack with real clients,
// each scenario's row (requests sent and failed, side effects counted, recovery, its goal, pass or
// fail) written to chaos/results/<name>.json and CHAOS.md at the repository's root. Exits 1 when a
// scenario run now missed its pass mark (or could not run: "not available" is not a pass).
//
//   node dist-chaos/chaos/run.js [--only a,b] [--list]      (npm run chaos -- --only redis-stall)
//   CHAOS_QUICK=1: the quick set (for CI), shorter load windows.
// Started through scripts/chaos.sh, which holds the machine's benchmark lock.

import { bin, runId } from './lib/cluster.js';
import { docker, removeByLabel, removeOwnNetworks, removeTenantNetworks, CHAOS_LABEL } from './lib/docker.js';
import { removeNetns } from './lib/outside.js';
import { killAllNow, stopAll } from './lib/proc.js';
import { commit, exitCodeOf, saveRow, writeChaosMd, type Row } from './lib/report.js';
import { quick, type Scenario } from './lib/scenario.js';
import { containerKill } from './scenarios/container-kill.js';
import { dispatcherKill } from './scenarios/dispatcher-kill.js';
import { headerFlood, slowApp, slowClients, slowReaders } from './scenarios/front-door.js';
import { hostDrain } from './scenarios/host-drain.js';
import { hostLostSingle, hostLostSpread } from './scenarios/host-lost.js';
import { proxyDrain } from './scenarios/proxy-drain.js';
import { redisEmptyRestart, redisStall, redisStop } from './scenarios/redis.js';
import { redisSentinel } from './scenarios/redis-sentinel.js';
import { tenantProbe } from './scenarios/tenant-probe.js';

const scenarios: Scenario[] = [
  dispatcherKill,
  hostLostSpread,
  hostLostSingle,
  hostDrain,
  containerKill,
  redisStop,
  redisStall,
  redisEmptyRestart,
  redisSentinel,
  slowClients,
  slowReaders,
  slowApp,
  proxyDrain,
  headerFlood,
  tenantProbe,
];
const order = scenarios.map((s) => s.name);
/** A scenario that has not ended by then is abandoned (its row says so); each is far shorter. */
const SCENARIO_LIMIT_MS = Number(process.env.CHAOS_SCENARIO_LIMIT_MS ?? 120_000);

function parseArgs(argv: string[]): { only: string[] | null; list: boolean } {
  let only: string[] | null = null;
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--list') list = true;
    else if (a === '--only') only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a.startsWith('--only=')) only = a.slice('--only='.length).split(',').filter(Boolean);
    else {
      process.stderr.write(`[chaos] unknown argument ${a}; usage: [--only name[,name]] [--list]\n`);
      process.exit(2);
    }
  }
  return { only, list };
}

/** Containers of this run's clusters and of its own, whatever a scenario left behind. */
async function sweep(): Promise<void> {
  const mine = (await docker.listContainers({ all: true, filters: { label: ['fastcontainer.host'] } })).filter((c) => (c.Labels['fastcontainer.host'] ?? '').startsWith(`fcchaos-${runId}-`));
  for (const c of mine) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  const hosts = (await docker.listNetworks({ filters: { label: ['fastcontainer.host'] } })).map((n) => n.Labels?.['fastcontainer.host'] ?? '').filter((h) => h.startsWith(`fcchaos-${runId}-`));
  await removeTenantNetworks(bin, [...new Set(hosts)]);
  await removeByLabel(`${CHAOS_LABEL}=${runId}`);
  await removeOwnNetworks(runId);
  removeNetns(runId);
}

const { only, list } = parseArgs(process.argv.slice(2));
if (list) {
  for (const s of scenarios) process.stdout.write(`${s.name}${s.quick ? ' (quick)' : ''}\n`);
  process.exit(0);
}
const unknown = (only ?? []).filter((n) => !order.includes(n));
if (unknown.length > 0) {
  process.stderr.write(`[chaos] no scenario named ${unknown.join(', ')}; the names are ${order.join(', ')}\n`);
  process.exit(2);
}
const chosen = scenarios.filter((s) => (only === null ? !quick || s.quick : only.includes(s.name)));
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`[chaos] ${sig}: ending this run's processes and containers\n`);
    killAllNow();
    void sweep().finally(() => process.exit(130));
  });
}

const sha = commit();
const rows: Row[] = [];
for (const s of chosen) {
  process.stderr.write(`[chaos] ${s.name}...\n`);
  const t0 = Date.now();
  let row: Row;
  try {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not end within ${SCENARIO_LIMIT_MS / 1000} s`)), SCENARIO_LIMIT_MS);
    });
    const running = s.run();
    // An abandoned scenario that fails later must not end the run (an unhandled rejection would).
    running.catch(() => undefined);
    const outcome = await Promise.race([running, limit]).finally(() => clearTimeout(timer));
    row = { scenario: s.name, ...outcome };
  } catch (err) {
    row = {
      scenario: s.name,
      did: '(the scenario could not complete)',
      sent: 0,
      failed: 0,
      sideEffects: '—',
      recovery: '—',
      goal: '—',
      verdict: 'fail',
      notes: [`error: ${String((err as Error).stack ?? err).split('\n').slice(0, 6).join(' ')}`],
    };
    await stopAll();
  }
  await sweep();
  row.at = new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  row.commit = sha;
  row.seconds = Math.round((Date.now() - t0) / 1000);
  if (quick) row.quick = true;
  saveRow(row);
  rows.push(row);
  process.stderr.write(`[chaos] ${s.name}: ${row.verdict} (${row.seconds} s) — ${row.sideEffects}\n${row.notes.map((n) => `    ${n}\n`).join('')}`);
}
writeChaosMd(order);
await stopAll();
const missed = rows.filter((r) => r.verdict !== 'pass');
process.stderr.write(`[chaos] ${rows.length - missed.length}/${rows.length} passed${missed.length > 0 ? `; missed: ${missed.map((r) => r.scenario).join(', ')}` : ''}; CHAOS.md written\n`);
process.exit(exitCodeOf(rows));
