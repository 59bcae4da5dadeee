// Runs every benchmark in one go and writes bench/results/latest.md. Times are noisy on a shared
// machine: read the ratios, which compare paths measured side by side in the same run.

import { writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchColdStart } from './cold-start.js';
import { benchProxyLibs } from './proxy-libs.js';
import { benchWarmPath } from './warm-path.js';

const seconds = Number(process.env.FC_BENCH_SECONDS ?? 5);
const runs = Number(process.env.FC_BENCH_RUNS ?? 10);
const rounds = Number(process.env.FC_BENCH_ROUNDS ?? 3);
const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);

const sections: string[] = [
  `# Benchmark results`,
  '',
  `Run ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}; load: autocannon, 50 connections, ${seconds} s per row, on loopback/the Docker bridge.`,
];
if (want('proxy-libs')) {
  process.stderr.write('[bench] proxy libraries...\n');
  sections.push('', '## Forwarding: undici vs http-proxy-3 vs node:http', '', await benchProxyLibs(seconds, rounds));
}
if (want('warm-path')) {
  process.stderr.write('[bench] warm path vs nginx...\n');
  sections.push('', '## Warm path: fastcontainer vs nginx in front of the same container', '', await benchWarmPath(seconds, rounds));
}
if (want('cold-start')) {
  process.stderr.write('[bench] cold start vs the engine...\n');
  sections.push('', '## Cold start: fastcontainer vs the engine\'s own create + start', '', await benchColdStart(runs));
}
const text = `${sections.join('\n')}\n`;
const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
mkdirSync(dir, { recursive: true });
writeFileSync(`${dir}latest.md`, text);
process.stdout.write(text);
