// Plots for the benchmark results: a Vega-Lite spec is compiled to Vega, rendered headless to SVG
// (no canvas: Vega estimates text widths), then rasterised to PNG by resvg. Each plot is written
// as <name>.svg, <name>.png and the data behind it as <name>.csv, side by side in bench/results/.
//
// resvg draws text only with a font it has loaded, and a headless machine may have none: we use a
// system sans-serif font (fontconfig's choice, else DejaVu Sans where Debian's fonts-dejavu-core
// puts it; scripts/bench.sh installs that package when no font is found).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** bench/results/, or FC_BENCH_RESULTS_DIR (for a trial run that should not replace the results). */
export const resultsDir = process.env.FC_BENCH_RESULTS_DIR ?? fileURLToPath(new URL('../../../bench/results/', import.meta.url));

/** A written file's path as the results should name it: from the repository's root when inside it. */
export function displayPath(file: string): string {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const rel = path.relative(root, file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

export interface Font {
  file: string;
  family: string;
}

const knownFonts: Font[] = [
  { file: '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', family: 'DejaVu Sans' },
  { file: '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf', family: 'Liberation Sans' },
  { file: '/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf', family: 'Noto Sans' },
];

let cachedFont: Font | undefined;

/** A sans-serif font file on this machine and its family name; throws saying how to get one. */
export function findFont(): Font {
  if (cachedFont !== undefined) return cachedFont;
  try {
    const out = execFileSync('fc-match', ['-f', '%{file}\n%{family[0]}', 'sans-serif:style=Regular'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const [file, family] = out.split('\n');
    if (file !== undefined && family !== undefined && /\.(ttf|otf|ttc)$/i.test(file) && existsSync(file)) return (cachedFont = { file, family });
  } catch {
    // no fontconfig: look in the usual places
  }
  const known = knownFonts.find((f) => existsSync(f.file));
  if (known !== undefined) return (cachedFont = known);
  const any = findTtf('/usr/share/fonts', 4);
  if (any !== undefined) return (cachedFont = { file: any, family: path.basename(any).replace(/(-Regular)?\.(ttf|otf)$/i, '') });
  throw new Error('no font found to draw the plots\' text: install one, e.g. `apt-get install fonts-dejavu-core`');
}

function findTtf(dir: string, depth: number): string | undefined {
  if (depth < 0 || !existsSync(dir)) return undefined;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isFile() && /\.(ttf|otf)$/i.test(e.name)) return p;
    if (e.isDirectory()) {
      const found = findTtf(p, depth - 1);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Vega-Lite spec to SVG text. */
export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const font = findFont();
  const withFont: TopLevelSpec = { ...spec, config: { font: font.family, background: 'white', ...(spec.config ?? {}) } } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(withFont).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVG text to PNG bytes, at `scale` times the SVG's size. */
export function svgToPng(svg: string, scale = 2): Buffer {
  const font = findFont();
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { fontFiles: [font.file], loadSystemFonts: false, defaultFontFamily: font.family, sansSerifFamily: font.family },
  });
  return resvg.render().asPng();
}

type Cell = string | number | boolean | null | undefined;

/** CSV with a header row; fields quoted where needed. */
export function toCsv(rows: Record<string, Cell>[], columns: string[] = Object.keys(rows[0] ?? {})): string {
  const quote = (v: Cell) => {
    const s = v === null || v === undefined ? '' : typeof v === 'number' ? (Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : '') : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return `${[columns.join(','), ...rows.map((r) => columns.map((c) => quote(r[c])).join(','))].join('\n')}\n`;
}

export interface LineChart {
  title: string;
  /** Long format: one row per point, with the x, y and series fields. */
  rows: Record<string, Cell>[];
  x: { field: string; title: string };
  y: { field: string; title: string; scale?: 'linear' | 'log' };
  /** Field naming each line; omit for one line. */
  series?: { field: string; title: string; order?: string[] };
  /** Dashed vertical rules, e.g. the moment a change was applied. */
  rules?: { x: number; label: string }[];
  width?: number;
  height?: number;
}

/** A line chart like the paper's figures: x time, y latency, one line per run. */
export function lineChartSpec(c: LineChart): TopLevelSpec {
  const color = c.series === undefined
    ? {}
    : { color: { field: c.series.field, type: 'nominal', title: c.series.title, ...(c.series.order ? { sort: c.series.order, scale: { domain: c.series.order } } : {}), legend: { orient: 'bottom', direction: 'vertical', labelLimit: 600 } } };
  const line = {
    mark: { type: 'line', strokeWidth: 1.6, point: false, interpolate: 'linear' },
    encoding: {
      x: { field: c.x.field, type: 'quantitative', title: c.x.title, axis: { tickMinStep: 1 } },
      y: { field: c.y.field, type: 'quantitative', title: c.y.title, ...(c.y.scale === 'log' ? { scale: { type: 'log' } } : {}) },
      ...color,
    },
  };
  const layers: unknown[] = [line];
  if (c.rules !== undefined && c.rules.length > 0) {
    layers.push({
      data: { values: c.rules },
      mark: { type: 'rule', strokeDash: [4, 3], color: '#666', strokeWidth: 1 },
      encoding: { x: { field: 'x', type: 'quantitative' } },
    });
    // Labels only when there are few rules; many would overprint.
    if (c.rules.length <= 6) {
      layers.push({
        data: { values: c.rules },
        mark: { type: 'text', align: 'left', baseline: 'top', dx: 3, dy: 2, fontSize: 10, color: '#444', angle: 0 },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } },
      });
    }
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: c.title,
    width: c.width ?? 640,
    height: c.height ?? 320,
    data: { values: c.rows },
    layer: layers,
  } as TopLevelSpec;
}

export interface WrittenPlot {
  svg: string;
  png: string;
  csv: string;
}

/** Writes <name>.csv (the rows), <name>.svg and <name>.png into `dir` (default bench/results/). */
export async function writePlot(name: string, spec: TopLevelSpec, rows: Record<string, Cell>[], dir = resultsDir): Promise<WrittenPlot> {
  mkdirSync(dir, { recursive: true });
  const out = { svg: path.join(dir, `${name}.svg`), png: path.join(dir, `${name}.png`), csv: path.join(dir, `${name}.csv`) };
  const svg = await toSvg(spec);
  writeFileSync(out.svg, svg);
  writeFileSync(out.png, svgToPng(svg));
  writeFileSync(out.csv, toCsv(rows));
  return out;
}
