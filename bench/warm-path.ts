// The warm path against nginx: the same running container (Apache serving a static page), reached
// through nginx as a reverse proxy (keep-alive upstream) and through fastcontainer (proxy and
// dispatcher in one `up` process), under the same load, in one run.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'undici';
import { startFastcontainer, freePort } from './lib/fastcontainer.js';
import { load, markdownTable, median, type LoadResult } from './lib/load.js';
import { stop } from './lib/proc.js';

async function answers(url: string): Promise<boolean> {
  try {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

function nginxConf(dir: string, port: number, upstream: string): string {
  return `
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app { server ${upstream}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`;
}

export async function benchWarmPath(seconds: number, rounds: number): Promise<string> {
  const site = mkdtempSync(path.join(os.tmpdir(), 'fcbench-site-'));
  chmodSync(site, 0o755);
  writeFileSync(path.join(site, 'index.html'), `<!doctype html><title>bench</title><p>${'static page '.repeat(50)}</p>\n`);
  const fc = await startFastcontainer();
  const nginxDir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-nginx-'));
  let nginx: ChildProcess | undefined;
  const nginxRuns: LoadResult[] = [];
  const fcRuns: LoadResult[] = [];
  try {
    // nginx reaches the container without the dispatcher, which would take it for idle and freeze
    // it under nginx's load: no freezing, no autoscaling, for a comparison of the paths alone.
    await fc.api('POST', '/v1/apps', { name: 'warm', hostnames: ['warm.bench'], image: 'fastcontainer/php', volumes: [`${site}:/var/www/html:ro`], cpus: 2, maxCpus: 2, memory: '512m', lifespan: 3600, freezeAfter: 0, autoscale: false });
    // The first request starts the container; wait for it, however long the start takes.
    const first = await request(fc.proxyUrl, { headers: { host: 'warm.bench' } });
    await first.body.dump();
    if (first.statusCode !== 200) throw new Error(`the first request through fastcontainer answered ${first.statusCode}`);
    const { containers } = await fc.api('GET', '/v1/apps/warm/containers');
    const address = containers[0].address as string;
    const port = await freePort();
    writeFileSync(path.join(nginxDir, 'nginx.conf'), nginxConf(nginxDir, port, address));
    // nginx in the foreground, as our own child, so that stopping it is ending that one process.
    nginx = spawn('nginx', ['-c', `${nginxDir}/nginx.conf`, '-g', 'daemon off;'], { stdio: 'ignore' });
    for (let i = 0; !(await answers(`http://127.0.0.1:${port}/`)); i++) {
      if (i > 200 || nginx.exitCode !== null) {
        const log = path.join(nginxDir, 'error.log');
        throw new Error(`nginx did not answer at ${port} (upstream ${address}): ${existsSync(log) ? readFileSync(log, 'utf8') : 'no error log'}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await load(`http://127.0.0.1:${port}`, { host: 'warm.bench', seconds: 1 });
    await load(fc.proxyUrl, { host: 'warm.bench', seconds: 1 });
    // Taking turns, so that a slow moment of the machine hits both.
    for (let round = 0; round < rounds; round++) {
      nginxRuns.push(await load(`http://127.0.0.1:${port}`, { host: 'warm.bench', seconds }));
      fcRuns.push(await load(fc.proxyUrl, { host: 'warm.bench', seconds }));
    }
  } finally {
    if (nginx !== undefined) await stop(nginx);
    await fc.stop();
    rmSync(site, { recursive: true, force: true });
    rmSync(nginxDir, { recursive: true, force: true });
  }
  const rows = [
    { name: 'nginx → container', rs: nginxRuns },
    { name: 'fastcontainer proxy → dispatcher → container', rs: fcRuns },
  ].map(({ name, rs }) => ({
    name,
    rps: median(rs.map((r) => r.rps)),
    spread: `${Math.round(Math.min(...rs.map((r) => r.rps)))}-${Math.round(Math.max(...rs.map((r) => r.rps)))}`,
    p50: median(rs.map((r) => r.p50)),
    p99: median(rs.map((r) => r.p99)),
    bad: rs.reduce((n, r) => n + r.errors + r.non2xx, 0),
  }));
  const base = rows[0]?.rps ?? 1;
  return markdownTable(
    ['path', `median req/s (${rounds} rounds)`, 'range', 'ratio to nginx', 'p50 ms', 'p99 ms', 'errors + non-2xx'],
    rows.map((r) => [r.name, Math.round(r.rps), r.spread, (r.rps / base).toFixed(2), r.p50, r.p99, r.bad]),
  );
}
