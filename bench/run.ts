// Runs benchmarks by name and writes each one's section to bench/results/<name>.md, then
// bench/RESULTS.md from all the sections there are (so running one keeps the others').
// With no name: those with the performance goals (warm-path, cold-start, freeze, burst,
// many-tenants: 100,000 apps in the CMDB, a proxy's sync, memory, route changes, lookups, and the
// warm path beside 200 live containers); `all`: every one. The others run by name: proxy-libs,
// autoscale (the paper's figures 3 and 4), recycle, metabolism, php-image (the PHP image before
// and after issue 9's extensions: size and cold start). Times are noisy on a shared
// machine: read the ratios, which compare paths measured side by side in the same run.
//
//   node dist-bench/bench/run.js [all] [proxy-libs] [warm-path] [cold-start] [autoscale] [recycle] [metabolism] [freeze] [burst] [many-tenants] [slow-clients] [php-image]

import path from 'node:path';
import { benchAutoscaleFigures } from './autoscale-figures.js';
import { benchBurst } from './burst.js';
import { benchColdStart } from './cold-start.js';
import { benchFreeze } from './freeze.js';
import { benchManyTenants } from './many-tenants.js';
import { benchMetabolism } from './metabolism.js';
import { benchPhpImage } from './php-image.js';
import { benchProxyLibs } from './proxy-libs.js';
import { benchRecycle } from './recycle.js';
import { benchSlowClients } from './slow-clients.js';
import { displayPath, resultsDir } from './lib/plot.js';
import { machine, resultsFile, writeLatest, writeSection } from './lib/report.js';
import { benchWarmPath } from './warm-path.js';

const seconds = Number(process.env.FC_BENCH_SECONDS ?? 5);
const runs = Number(process.env.FC_BENCH_RUNS ?? 30);
const rounds = Number(process.env.FC_BENCH_ROUNDS ?? 3);
const quickLoad = `Load: autocannon, 50 connections, ${seconds} s per row, on loopback/the Docker bridge.`;

const benchmarks: Record<string, { title: string; run(): Promise<string> }> = {
  'proxy-libs': { title: 'Forwarding: undici vs http-proxy-3 vs node:http', run: async () => `${quickLoad}\n\n${await benchProxyLibs(seconds, rounds)}` },
  'warm-path': { title: 'Warm path: fastcontainer vs nginx in front of the same container', run: async () => `${quickLoad}\n\n${await benchWarmPath(seconds, rounds)}` },
  'cold-start': { title: 'Cold start: fastcontainer vs the engine\'s own create + start', run: () => benchColdStart(runs) },
  autoscale: { title: 'Autoscaling: the paper\'s figures 3 (scale out) and 4 (scale up)', run: benchAutoscaleFigures },
  recycle: { title: 'Recycling under load: lifespan 10 s, 50 connections', run: benchRecycle },
  metabolism: { title: 'Metabolism at scale: thousands of container starts', run: benchMetabolism },
  freeze: { title: 'Freezing idle containers: request to first byte on a frozen container', run: benchFreeze },
  burst: { title: `Burst: ${process.env.FC_BENCH_BURST_CONCURRENCY ?? 100} concurrent first requests to an app with no container`, run: benchBurst },
  'many-tenants': { title: 'Many tenants: 100,000 apps in the CMDB, 200 live containers', run: benchManyTenants },
  'slow-clients': { title: 'Slow clients: a normal client\'s p99 beside 100 uploads at 700 B/s', run: benchSlowClients },
  'php-image': { title: 'The PHP image with WordPress\'s extensions (issue 9): size and cold start, before vs after', run: benchPhpImage },
};
/** With no name: those with the performance goals (issue 7), about 15 minutes. `all`: every one. */
const goals = ['warm-path', 'cold-start', 'freeze', 'burst', 'many-tenants'];

const asked = process.argv.slice(2).flatMap((n) => (n === 'all' ? Object.keys(benchmarks) : [n]));
const unknown = asked.filter((n) => !(n in benchmarks));
if (unknown.length > 0) {
  process.stderr.write(`[bench] no benchmark named ${unknown.join(', ')}; the names are ${Object.keys(benchmarks).join(', ')}\n`);
  process.exit(2);
}
// The commit is read now, when dist/ has just been built from it, not when a long run ends.
await machine();
for (const name of asked.length === 0 ? goals : asked) {
  const b = benchmarks[name] as (typeof benchmarks)[string];
  process.stderr.write(`[bench] ${name}: ${b.title}...\n`);
  const text = await writeSection(name, b.title, await b.run());
  process.stdout.write(`${text}\n`);
  writeLatest();
}
process.stderr.write(`[bench] results: ${displayPath(resultsFile)}\n`);
