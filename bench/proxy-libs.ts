// Which way to forward: the same backend, reached directly and through four Node proxies, one
// at a time, with the same load. Results are ratios to the direct path, measured in one run.

import { load, markdownTable, type LoadResult } from './lib/load.js';
import { startNode } from './lib/proc.js';

export const variants = ['undici-stream', 'undici-request-pipeline', 'http-proxy-3', 'node-http'] as const;

export async function benchProxyLibs(seconds: number): Promise<string> {
  const backend = await startNode('backend');
  const rows: [string, LoadResult][] = [];
  try {
    const target = `http://127.0.0.1:${backend.port}`;
    await load(target, { seconds: 1 });
    rows.push(['direct (no proxy)', await load(target, { seconds })]);
    for (const v of variants) {
      const proxy = await startNode('proxy-variant', [v, target]);
      try {
        await load(`http://127.0.0.1:${proxy.port}`, { seconds: 1 });
        rows.push([v, await load(`http://127.0.0.1:${proxy.port}`, { seconds })]);
      } finally {
        await proxy.stop();
      }
    }
  } finally {
    await backend.stop();
  }
  const direct = rows[0]?.[1].rps ?? 1;
  return markdownTable(
    ['path', 'req/s', 'ratio to direct', 'p50 ms', 'p99 ms', 'errors + non-2xx'],
    rows.map(([name, r]) => [name, Math.round(r.rps), (r.rps / direct).toFixed(2), r.p50, r.p99, r.errors + r.non2xx]),
  );
}
