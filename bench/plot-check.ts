// Renders a plot of synthetic data (two noisy latency curves, one halved at the midpoint, like
// figure 3) into a temp dir and prints the paths: a quick look that the plot chain (Vega-Lite →
// SVG → PNG) and the font work on this machine, without running a benchmark.
//   npx tsc -p tsconfig.bench.json && node dist-bench/bench/plot-check.js

import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFont, lineChartSpec, writePlot } from './lib/plot.js';

const rows: { second: number; run: string; mean_ms: number }[] = [];
for (let s = 0; s < 60; s++) {
  const ramp = Math.min(1, (s + 1) / 3);
  const noise = () => 1 + 0.08 * Math.sin(s * 1.7) + 0.05 * Math.cos(s * 3.1);
  rows.push({ second: s, run: '(a) 1 container, no scaling', mean_ms: 1900 * ramp * noise() });
  rows.push({ second: s, run: '(b) manual scale out at the midpoint', mean_ms: (s < 31 ? 1900 : 950) * ramp * noise() });
}
const dir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-plot-'));
const out = await writePlot('plot-check', lineChartSpec({
  title: 'Synthetic: scale out at the midpoint',
  rows,
  x: { field: 'second', title: 'seconds since the load began' },
  y: { field: 'mean_ms', title: 'mean latency per second (ms)' },
  series: { field: 'run', title: 'run' },
  rules: [{ x: 30, label: 'b: manual' }],
}), rows, dir);
process.stdout.write(`font: ${JSON.stringify(findFont())}\n${out.png}\n${out.svg}\n${out.csv}\n`);
