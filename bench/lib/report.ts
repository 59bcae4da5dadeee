// Results as markdown: each benchmark writes its own section, bench/results/<name>.md, saying
// when, on what and by which command it ran and whether each of its goals is met; bench/RESULTS.md is
// every section there is, in a fixed order, so running one benchmark keeps the others' results.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { resultsDir } from './plot.js';

/** Sections of RESULTS.md, in order. */
export const sectionOrder = ['proxy-libs', 'warm-path', 'cold-start', 'php-image', 'autoscale', 'recycle', 'metabolism', 'freeze', 'burst', 'many-tenants', 'slow-clients'] as const;

export interface Goal {
  goal: string;
  met: boolean | null;
  /** The measured value(s) the verdict rests on. */
  detail: string;
}

export function goalsMarkdown(goals: Goal[]): string {
  return ['| goal | met | measured |', '| --- | --- | --- |', ...goals.map((g) => `| ${g.goal} | ${g.met === null ? 'not measured' : g.met ? 'yes' : '**no**'} | ${g.detail} |`)].join('\n');
}

let machineLine: string | undefined;

/** CPUs, memory, kernel, Node, Docker, and the fastcontainer commit (with "+ changes" when dirty). */
export async function machine(): Promise<string> {
  if (machineLine !== undefined) return machineLine;
  let dockerVersion = 'unknown';
  try {
    dockerVersion = (await new Docker({ socketPath: '/var/run/docker.sock' }).version()).Version;
  } catch {
    // no engine: the benchmarks that need it will say so
  }
  let commit = 'unknown';
  try {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'bin'], { encoding: 'utf8' }).trim() !== '';
    if (dirty) commit += ' + uncommitted changes in src/';
  } catch {
    // not a git checkout
  }
  const bin = process.env.FC_BENCH_BIN === undefined ? '' : `, fastcontainer from ${process.env.FC_BENCH_BIN}`;
  machineLine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}, Docker ${dockerVersion}; fastcontainer ${commit}${bin}`;
  return machineLine;
}

/** The command that reproduces a run: the script, the benchmark's name and the FC_BENCH_* settings in force. */
export function commandLine(name: string): string {
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith('FC_BENCH_'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v ?? ''} `)
    .join('');
  return `${env}bash scripts/bench.sh ${name}`;
}

/** Writes bench/results/<name>.md: the heading, when/where/how, then the body. */
export async function writeSection(name: string, title: string, body: string): Promise<string> {
  const text = `## ${title}\n\nRun ${new Date().toISOString()} on ${await machine()}.\nCommand: \`${commandLine(name)}\`\n\n${body.trim()}\n`;
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, `${name}.md`), text);
  return text;
}

/** Where every section is joined: bench/RESULTS.md (the README links it and copies it in). */
export const resultsFile = path.join(resultsDir, '..', 'RESULTS.md');

/**
 * Rebuilds bench/RESULTS.md from the section files there are, each plot a section names shown
 * under it (the sections name them by path, e.g. `bench/results/fig3.png`).
 */
export function writeLatest(): string {
  const parts = sectionOrder.map((n) => path.join(resultsDir, `${n}.md`)).filter((f) => existsSync(f)).map((f) => {
    const text = readFileSync(f, 'utf8').trim();
    const plots = [...new Set([...text.matchAll(/`bench\/results\/([\w.-]+)\.png`/g)].map((m) => m[1] as string))];
    return [text, ...plots.map((p) => `![${p}](results/${p}.png)`)].join('\n\n');
  });
  const text = `# Benchmark results\n\nWritten by \`npm run bench\` (\`bash scripts/bench.sh [name ...]\`): each section comes from its own run and says when, on what machine and with which command it ran, and whether each of its goals is met. Times are noisy on a shared machine: read the ratios, which compare paths measured side by side in the same run.\n\n${parts.join('\n\n')}\n`;
  writeFileSync(resultsFile, text);
  return text;
}

/** A number for a table: fixed decimals, or "-" when there is none. */
export function fmt(v: number | null | undefined, digits = 0): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}
