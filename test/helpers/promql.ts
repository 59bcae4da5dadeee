// Metric names in PromQL expressions and in Prometheus's text exposition format, so a test can
// check that a dashboard asks only for series the code exports. Not a PromQL parser: it removes
// what cannot be a metric name (strings, label matchers, ranges, grouping clauses, Grafana's
// $variables, numbers) and keeps the identifiers that are not functions or keywords.

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'atan2', 'inf', 'nan']);

/** The metric names an expression selects, e.g. `sum by (app) (rate(fc_x_total{a="b"}[5m]))` -> fc_x_total. */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice((m.index ?? 0) + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function (sum, rate, histogram_quantile, ...)
    if (KEYWORDS.has(word.toLowerCase())) continue;
    const before = stripped.slice(0, m.index ?? 0);
    if (/[0-9.]$/.test(before)) continue; // the "e9" of 1e9
    names.add(word);
  }
  return [...names];
}

/**
 * The series names a /metrics answer can have: every `# TYPE` line's name and, for histograms and
 * summaries, only their suffixed series (a histogram named x has x_bucket, x_sum and x_count,
 * not x), plus the name of every sample line.
 */
export function exportedSeriesNames(exposition: string): Set<string> {
  const names = new Set<string>();
  const histograms = new Set<string>();
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type !== null) {
      const [, name, kind] = type as unknown as [string, string, string];
      if (kind === 'histogram') {
        histograms.add(name);
        for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      } else if (kind === 'summary') {
        histograms.add(name);
        for (const s of ['_sum', '_count']) names.add(name + s);
      } else {
        names.add(name);
      }
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)/.exec(line);
    if (sample !== null && !histograms.has(sample[1] as string)) names.add(sample[1] as string);
  }
  return names;
}

/** Every PromQL expression of a Grafana dashboard: its panels' (and rows' panels') targets and its query variables. */
export function dashboardExpressions(dashboard: any): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: any[] | undefined): void => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: String(t.expr ?? '') });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    // label_values(metric, label) names a metric as its first argument.
    const m = /^label_values\(\s*([^,)]+)/.exec(String(q ?? ''));
    if (m !== null) out.push({ where: `variable $${v.name}`, expr: (m[1] as string).trim() });
  }
  return out;
}
