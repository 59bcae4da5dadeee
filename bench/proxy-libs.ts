// Which way to forward: the same backend, reached directly and through four Node proxies, under
// the same load. The paths take turns for several rounds (so a slow moment of the machine hits
// them all) and the table shows each one's median; ratios are to the direct path.

import { load, markdownTable, median, type LoadResult } from './lib/load.js';
import { startNode, type Running } from './lib/proc.js';

export const variants = ['undici-stream', 'undici-request-pipeline', 'http-proxy-3', 'node-http'] as const;

export async function benchProxyLibs(seconds: number, rounds: number): Promise<string> {
  const backend = await startNode('backend');
  const proxies = new Map<string, Running>();
  const results = new Map<string, LoadResult[]>([['direct (no proxy)', []], ...variants.map((v) => [v, []] as [string, LoadResult[]])]);
  try {
    const target = `http://127.0.0.1:${backend.port}`;
    for (const v of variants) proxies.set(v, await startNode('proxy-variant', [v, target]));
    const urls = new Map<string, string>([['direct (no proxy)', target], ...[...proxies].map(([v, p]) => [v, `http://127.0.0.1:${p.port}`] as [string, string])]);
    for (const url of urls.values()) await load(url, { seconds: 1 });
    for (let round = 0; round < rounds; round++) {
      for (const [name, url] of urls) results.get(name)?.push(await load(url, { seconds }));
    }
  } finally {
    for (const p of proxies.values()) await p.stop();
    await backend.stop();
  }
  const summary = [...results].map(([name, rs]) => ({
    name,
    rps: median(rs.map((r) => r.rps)),
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    bad: rs.reduce((n, r) => n + r.errors + r.non2xx, 0),
    spread: `${Math.round(Math.min(...rs.map((r) => r.rps)))}-${Math.round(Math.max(...rs.map((r) => r.rps)))}`,
  }));
  const direct = summary[0]?.rps ?? 1;
  return markdownTable(
    ['path', `median req/s (${rounds} rounds)`, 'range', 'ratio to direct', 'p50 ms', 'p99 ms', 'errors + non-2xx'],
    summary.map((s) => [s.name, Math.round(s.rps), s.spread, (s.rps / direct).toFixed(2), s.p50, s.p99, s.bad]),
  );
}
