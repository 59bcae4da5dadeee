// Cold start against the engine's own: the time from nothing to the first HTTP answer of a
// fastcontainer/hello container, (a) doing create + start + wait-for-port directly on the engine,
// (b) as the first request through fastcontainer for a newly registered app. Medians of n runs.

import net from 'node:net';
import Docker from 'dockerode';
import { request } from 'undici';
import { startFastcontainer } from './lib/fastcontainer.js';
import { markdownTable, median } from './lib/load.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const LABEL = 'fastcontainer.bench';

async function firstAnswer(url: string, host?: string): Promise<void> {
  for (;;) {
    try {
      const res = await request(url, { headers: host === undefined ? {} : { host } });
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function canConnect(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function engineColdStart(): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer({
    Image: 'fastcontainer/hello',
    Labels: { [LABEL]: 'engine' },
    HostConfig: { CpuPeriod: 100_000, CpuQuota: 50_000, Memory: 128 * 1024 * 1024, PidsLimit: 256, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
  });
  await c.start();
  const ip = (await c.inspect()).NetworkSettings.Networks.bridge?.IPAddress as string;
  while (!(await canConnect(ip, 8080))) await new Promise((r) => setTimeout(r, 2));
  await firstAnswer(`http://${ip}:8080/`);
  const ms = performance.now() - t0;
  await c.remove({ force: true });
  return ms;
}

export async function benchColdStart(runs: number): Promise<string> {
  const engine: number[] = [];
  const fastcontainer: number[] = [];
  const fc = await startFastcontainer();
  try {
    await engineColdStart();
    for (let i = 0; i < runs; i++) {
      engine.push(await engineColdStart());
      await fc.api('POST', '/v1/apps', { name: `cold${i}`, hostnames: [`cold${i}.bench`], image: 'fastcontainer/hello' });
      const t0 = performance.now();
      await firstAnswer(`${fc.proxyUrl}/`, `cold${i}.bench`);
      fastcontainer.push(performance.now() - t0);
      await fc.api('DELETE', `/v1/apps/cold${i}`);
    }
  } finally {
    await fc.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: [LABEL] } })) await docker.getContainer(c.Id).remove({ force: true });
  }
  const e = median(engine);
  const f = median(fastcontainer);
  return markdownTable(
    ['path', `median ms (n=${runs})`, 'min ms', 'max ms', 'ratio to the engine'],
    [
      ['engine: create + start + first answer', e.toFixed(0), Math.min(...engine).toFixed(0), Math.max(...engine).toFixed(0), '1.00'],
      ['fastcontainer: first request of a new app', f.toFixed(0), Math.min(...fastcontainer).toFixed(0), Math.max(...fastcontainer).toFixed(0), (f / e).toFixed(2)],
    ],
  );
}
