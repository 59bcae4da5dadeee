// Chaos results: each scenario's row is kept as chaos/results/<name>.json, and CHAOS.md at the
// repository's root is written from all of them (so `--only x` keeps the others' last rows, each
// with its date and commit).

import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/**
 * Where rows and the report go: chaos/results and CHAOS.md, or CHAOS_OUT/results and
 * CHAOS_OUT/CHAOS.md (CI's quick run, which must not overwrite the full run's committed report).
 */
const out = process.env.CHAOS_OUT === undefined || process.env.CHAOS_OUT === '' ? undefined : path.resolve(process.env.CHAOS_OUT);
const resultsDir = out === undefined ? path.join(repoRoot, 'chaos', 'results') : path.join(out, 'results');
const reportPath = out === undefined ? path.join(repoRoot, 'CHAOS.md') : path.join(out, 'CHAOS.md');

/** pass: the goal held; fail: it did not; unavailable: the scenario could not run here (not a pass). */
export type Verdict = 'pass' | 'fail' | 'unavailable';

export interface Row {
  scenario: string;
  did: string;
  sent: number;
  failed: number;
  sideEffects: string;
  recovery: string;
  goal: string;
  verdict: Verdict;
  /** Why it failed, or what was seen beyond the table's cells. */
  notes: string[];
  at?: string;
  commit?: string;
  seconds?: number;
  /** Run with CHAOS_QUICK=1 (shorter windows). */
  quick?: boolean;
}

/** The commit under test: the repository's, or the other build's path when FC_CHAOS_BIN names one. */
export function commit(): string {
  if (process.env.FC_CHAOS_BIN !== undefined) return `FC_CHAOS_BIN=${process.env.FC_CHAOS_BIN}`;
  try {
    const sha = execSync('git rev-parse --short HEAD', { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
    return dirty ? `${sha}+` : sha;
  } catch {
    return 'unknown';
  }
}

export function saveRow(row: Row): void {
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, `${row.scenario}.json`), `${JSON.stringify(row, null, 2)}\n`);
}

const cell = (s: string | number): string => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** Rows in the suite's order (unknown names last). */
export function ordered(rows: Row[], order: string[]): Row[] {
  const rank = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
  return [...rows].sort((a, b) => rank(a.scenario) - rank(b.scenario));
}

/** The run's exit code: 0 only when every scenario run passed (not available is not a pass). */
export function exitCodeOf(rows: readonly Row[]): number {
  return rows.length > 0 && rows.every((r) => r.verdict === 'pass') ? 0 : 1;
}

export function renderChaosMd(all: Row[], order: string[]): string {
  const rows = ordered(all, order);
  const mark = { pass: 'pass', fail: '**FAIL**', unavailable: '**not available** (not passed)' } as const;
  return [
    '# Chaos results',
    '',
    'Written by `npm run chaos` (chaos/run.ts): each fault run against the real stack (every role a',
    'process of the real CLI, a Redis of its own, the Docker engine) with real clients. "Sent" and',
    '"failed" count the client requests of the scenario\'s load; side effects are counted from the',
    'Docker engine and the CMDB. The goals are issue 8\'s. Rows keep the date and commit they ran at',
    '(`npm run chaos -- --only NAME` reruns one).',
    '',
    `Machine: ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'}), Node ${process.version}.`,
    '',
    '| scenario | what was done | sent | failed | side effects | recovery | goal | result |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${cell(r.scenario)} | ${cell(r.did)} | ${r.sent} | ${r.failed} | ${cell(r.sideEffects)} | ${cell(r.recovery)} | ${cell(r.goal)} | ${mark[r.verdict]} |`),
    '',
    '## Notes',
    '',
    ...rows.flatMap((r) => [`### ${r.scenario} (${r.at ?? '?'}, commit ${r.commit ?? '?'}, ${r.seconds ?? '?'} s${r.quick === true ? ', CHAOS_QUICK' : ''})`, '', ...(r.notes.length === 0 ? ['-'] : r.notes.map((n) => `- ${n}`)), '']),
  ].join('\n');
}

/** CHAOS.md from every row in chaos/results (this run's and the last of the others). */
export function writeChaosMd(order: string[]): string {
  const rows: Row[] = [];
  if (existsSync(resultsDir)) {
    for (const f of readdirSync(resultsDir).filter((x) => x.endsWith('.json'))) rows.push(JSON.parse(readFileSync(path.join(resultsDir, f), 'utf8')) as Row);
  }
  const text = renderChaosMd(rows, order);
  mkdirSync(path.dirname(reportPath), { recursive: true });
  writeFileSync(reportPath, text);
  return text;
}
