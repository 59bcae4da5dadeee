// compose/grafana/fastcontainer.json asks only for series the code exports: every metric name in
// its PromQL is scraped from the admin /metrics of a real stack (all roles, real Docker and Redis)
// after an app has served requests. And the metrics the dashboard added for this purpose (CPU
// quota and throttling per app, CMDB revision lag) measure what they say.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl } from '../helpers/env.js';
import { dashboardExpressions, exportedSeriesNames, metricNamesIn } from '../helpers/promql.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dashboard = JSON.parse(readFileSync(path.join(repo, 'compose/grafana/fastcontainer.json'), 'utf8'));
/** Series Prometheus makes itself for every target. */
const PROMETHEUS_OWN = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

let t: TestStack;

async function scrape(): Promise<string> {
  const res = await request(`${t.adminUrl}/metrics`);
  expect(res.statusCode).toBe(200);
  return res.body.text();
}

/** The value of one series, e.g. sample(text, 'fc_x', { app: 'a' }); undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

beforeAll(async () => {
  // Samples every 250 ms as in production; no sandboxes to keep the engine quiet.
  t = await startTestStack({ env: { FC_SANDBOX_POOL: '0' } });
  // A container that keeps a busy loop beside its web server, under a tenth of a core: the kernel
  // throttles it nearly every period. No autoscaling, so the quota stays what the spec says.
  const created = await t.api('POST', '/v1/apps', {
    name: 'busy', hostnames: ['busy.test'], image: 'fastcontainer/hello', cpus: 0.1, autoscale: false,
    command: ['/bin/sh', '-c', '(while :; do :; done) & exec /bin/fastcontainer-httpd'],
  });
  expect(created.status).toBe(201);
  expect((await t.get('busy.test', '/cgi-bin/whoami')).status).toBe(200);
  expect((await t.get('nobody.test')).status).toBe(404);
});

afterAll(async () => {
  await t?.cleanup();
});

describe('the Grafana dashboard', () => {
  it('uses only metric names the roles export (histograms by their _bucket, _sum and _count)', async () => {
    const exported = exportedSeriesNames(await scrape());
    const exprs = dashboardExpressions(dashboard);
    expect(exprs.length).toBeGreaterThan(20);
    const unknown: string[] = [];
    const used = new Set<string>();
    for (const { where, expr } of exprs) {
      const names = metricNamesIn(expr);
      expect(names.length, `${where} selects no metric: ${expr}`).toBeGreaterThan(0);
      for (const n of names) {
        used.add(n);
        if (!exported.has(n) && !PROMETHEUS_OWN.has(n)) unknown.push(`${where}: ${n}`);
      }
    }
    expect(unknown).toEqual([]);
    // What the issue asks the dashboard to show, each by the metric that measures it.
    for (const needed of [
      'fc_proxy_requests_total', 'fc_proxy_request_seconds_bucket', 'fc_dispatcher_cold_starts_total',
      'fc_dispatcher_cold_start_seconds_bucket', 'fc_dispatcher_containers', 'fc_dispatcher_events_total',
      'fc_dispatcher_cpu_quota_cores', 'fc_dispatcher_cpu_throttled_periods_total', 'fc_cmdb_revision_lag',
    ]) expect(used, needed).toContain(needed);
  });

  it('is a dashboard Grafana imports: unique panel ids, panels inside the 24-column grid, one data source input', () => {
    const panels = (dashboard.panels as any[]).flatMap((p) => [p, ...(p.panels ?? [])]);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${DS_PROMETHEUS}' });
      const refs = (p.targets as { refId: string }[]).map((t) => t.refId);
      expect(new Set(refs).size, p.title).toBe(refs.length);
    }
    expect(dashboard.__inputs.map((i: { name: string }) => i.name)).toEqual(['DS_PROMETHEUS']);
    expect(dashboard.uid).toBe('fastcontainer');
  });

  it('a misspelt or made-up name, or a histogram asked for by its bare name, is caught', async () => {
    const exported = exportedSeriesNames(await scrape());
    const missing = (expr: string) => metricNamesIn(expr).filter((n) => !exported.has(n));
    expect(missing('sum by (app) (rate(fc_proxy_requests_totl{app=~"$app"}[$__rate_interval]))')).toEqual(['fc_proxy_requests_totl']);
    expect(missing('histogram_quantile(0.95, sum by (le) (rate(fc_proxy_request_seconds_bukket[5m])))')).toEqual(['fc_proxy_request_seconds_bukket']);
    expect(missing('rate(fc_proxy_request_seconds[5m])')).toEqual(['fc_proxy_request_seconds']);
    expect(missing('fc_made_up_total / 1e9 > bool 0 and on (app) fc_dispatcher_containers')).toEqual(['fc_made_up_total']);
    // Labels, strings, functions and Grafana's variables are not taken for metric names.
    expect(metricNamesIn('sum without (instance) (rate(fc_x_total{status=~"5..", app="$app"}[${__rate_interval}] offset 5m))')).toEqual(['fc_x_total']);
  });
});

describe('the metrics the dashboard needed', () => {
  it('CPU quota and throttling per app come from the containers\' cgroups', async () => {
    const text = await eventually(async () => {
      const s = await scrape();
      const throttled = sample(s, 'fc_dispatcher_cpu_throttled_periods_total', { app: 'busy' }) ?? 0;
      return throttled >= 5 ? s : undefined;
    }, { timeout: 20_000, interval: 250, what: 'throttled periods counted for the busy app' });
    expect(sample(text, 'fc_dispatcher_cpu_quota_cores', { app: 'busy' })).toBeCloseTo(0.1, 5);
    const periods = sample(text, 'fc_dispatcher_cpu_periods_total', { app: 'busy' }) ?? 0;
    const throttled = sample(text, 'fc_dispatcher_cpu_throttled_periods_total', { app: 'busy' }) ?? 0;
    // A loop that never sleeps under a tenth of a core is held back in (nearly) every period.
    expect(throttled).toBeLessThanOrEqual(periods);
    expect(throttled / periods).toBeGreaterThan(0.5);
    expect(sample(text, 'fc_dispatcher_cpu_throttled_seconds_total', { app: 'busy' }) ?? 0).toBeGreaterThan(0);
    // An app with no container on this host has no quota series (not a stale 0).
    expect(sample(text, 'fc_dispatcher_cpu_quota_cores', { app: 'nobody' })).toBeUndefined();
  });

  it('the CMDB revision lag falls to 0 and the cache\'s revision is the CMDB\'s own', async () => {
    const redis = new Redis(redisUrl);
    try {
      // A write the cache has to hear of.
      expect((await t.api('POST', '/v1/apps', { name: 'later', hostnames: ['later.test'], image: 'fastcontainer/hello' })).status).toBe(201);
      const rev = Number(await redis.get(`${t.prefix}:rev`));
      expect(rev).toBeGreaterThan(0);
      await eventually(async () => {
        const s = await scrape();
        return sample(s, 'fc_cmdb_cache_revision', { role: 'proxy' })! >= rev && sample(s, 'fc_cmdb_revision_lag', { role: 'proxy' }) === 0
          && sample(s, 'fc_cmdb_revision_lag', { role: 'dispatcher' }) === 0;
      }, { timeout: 10_000, interval: 100, what: 'the caches at the CMDB\'s revision with no lag' });
    } finally {
      redis.disconnect();
    }
  });
});
