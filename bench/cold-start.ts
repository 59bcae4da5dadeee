// Cold start against the engine's own: the time from nothing to the first HTTP answer of a
// fastcontainer/hello container with the same limits, n times each, taking turns:
//   engine          create + start + wait for the port + first answer, straight on the engine;
//   engine+sandbox  the same, joining a network sandbox made beforehand (the trick alone);
//   fastcontainer   the first request of a newly registered app through `fastcontainer up`
//                   (network sandboxes on, the default), and once more with them off.
// Between runs each stack's pool is let refill, as it does between apps' first requests; the
// table says how many starts found a sandbox ready.

import Docker from 'dockerode';
import { startFastcontainer, type Fastcontainer } from './lib/fastcontainer.js';
import { answerAt, ipOf, poolRefilled, sandboxHits } from './lib/first-answer.js';
import { markdownTable } from './lib/load.js';
import { fmt, goalsMarkdown } from './lib/report.js';
import { timedGet } from './lib/timed-get.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const LABEL = 'fastcontainer.bench';
const hostConfig = { CpuPeriod: 100_000, CpuQuota: 50_000, Memory: 128 * 1024 * 1024, MemorySwap: 128 * 1024 * 1024, PidsLimit: 256, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] };

async function engineColdStart(): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer({ Image: 'fastcontainer/hello', Labels: { [LABEL]: 'engine' }, HostConfig: hostConfig });
  await c.start();
  await answerAt(await ipOf(c));
  const ms = performance.now() - t0;
  await c.remove({ force: true });
  return ms;
}

/** The engine alone, joining a network namespace made before the clock starts. */
async function engineSandboxStart(): Promise<number> {
  const sandbox = await docker.createContainer({
    Image: 'fastcontainer/hello', Entrypoint: ['/bin/busybox', 'sleep', '600'], Cmd: [], User: '65534:65534', Labels: { [LABEL]: 'sandbox' },
    HostConfig: { ...hostConfig, CpuQuota: 1000, Memory: 16 * 1024 * 1024, MemorySwap: 16 * 1024 * 1024, PidsLimit: 4 },
  });
  await sandbox.start();
  const ip = await ipOf(sandbox);
  const t0 = performance.now();
  const c = await docker.createContainer({ Image: 'fastcontainer/hello', Labels: { [LABEL]: 'engine' }, HostConfig: { ...hostConfig, NetworkMode: `container:${sandbox.id}` } });
  await c.start();
  await answerAt(ip);
  const ms = performance.now() - t0;
  await c.remove({ force: true });
  await sandbox.remove({ force: true });
  return ms;
}

let appSeq = 0;
async function fastcontainerColdStart(fc: Fastcontainer): Promise<number> {
  const name = `cold${(appSeq += 1)}`;
  await fc.api('POST', '/v1/apps', { name, hostnames: [`${name}.bench`], image: 'fastcontainer/hello', freezeAfter: 0 });
  const t = await timedGet(fc, `${name}.bench`);
  await fc.api('DELETE', `/v1/apps/${name}`);
  if (t.status !== 200) throw new Error(`cold start of ${name} answered ${t.status} ${t.error ?? ''}`);
  return t.ms;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

export async function benchColdStart(runs: number): Promise<string> {
  const pool = 2;
  const stacks = { on: await startFastcontainer({ env: { FC_SANDBOX_POOL: String(pool) } }), off: await startFastcontainer({ env: { FC_SANDBOX_POOL: '0' } }) };
  const times = { engine: [] as number[], engineSandbox: [] as number[], on: [] as number[], off: [] as number[] };
  try {
    await engineColdStart();
    await poolRefilled(stacks.on, pool);
    const steps: [keyof typeof times, () => Promise<number>][] = [
      ['engine', engineColdStart],
      ['engineSandbox', engineSandboxStart],
      ['on', () => fastcontainerColdStart(stacks.on)],
      ['off', () => fastcontainerColdStart(stacks.off)],
    ];
    for (let i = 0; i < runs; i++) {
      // Taking turns, in a rotating order, so drift on the machine touches every path alike.
      for (let k = 0; k < steps.length; k++) {
        const [key, run] = steps[(i + k) % steps.length] as (typeof steps)[number];
        times[key].push(await run());
      }
      await poolRefilled(stacks.on, pool);
    }
    const { hits, starts } = await sandboxHits(stacks.on);
    const e = percentile(times.engine, 50);
    const row = (label: string, xs: number[]) => [label, fmt(percentile(xs, 50)), fmt(percentile(xs, 90)), fmt(Math.min(...xs)), fmt(Math.max(...xs)), (percentile(xs, 50) / e).toFixed(2)];
    const on = percentile(times.on, 50);
    return [
      `fastcontainer/hello (busybox httpd), 0.5 core, 128 MiB, pids 256, every capability dropped, no-new-privileges, on the default bridge; ${runs} starts per path, taking turns. fastcontainer: \`fastcontainer up\`, a new app per start (created, first request timed from sending to the first byte, deleted); its dispatcher keeps ${pool} network sandboxes made ahead of need (\`FC_SANDBOX_POOL\`, each a sleeping busybox holding a namespace: 0.01 core, 16 MiB, pids 4, read-only, no capabilities), and is let refill them between starts. Each container still gets a network namespace of its own: a sandbox serves one container and is removed with it.`,
      '',
      markdownTable(
        ['path', `p50 ms (n=${runs})`, 'p90 ms', 'min ms', 'max ms', 'p50 ratio to the engine'],
        [
          row('engine: create + start + first answer', times.engine),
          row('engine: the same, joining a network sandbox made beforehand', times.engineSandbox),
          row(`fastcontainer: first request of a new app (sandboxes on; ${hits} of ${starts} starts found one ready)`, times.on),
          row('fastcontainer: first request of a new app, sandboxes off (FC_SANDBOX_POOL=0)', times.off),
        ],
      ),
      '',
      'Tried and left: `crun` as the engine\'s runtime (Debian\'s 1.8.1) refuses this machine\'s cgroup layout ("cgroups in hybrid mode not supported"), so runc stays; creating each app\'s next container ahead of need and only starting it on demand saved nothing measurable here (start alone 67 ms vs create + start 69 ms, both in a sandbox), so it is not done: the namespace is the cost.',
      '',
      '### Goals',
      '',
      goalsMarkdown([
        { goal: 'cold start p50 at most 0.5x the engine\'s create + start to first answer', met: on <= 0.5 * e, detail: `${fmt(on)} ms vs ${fmt(e)} ms: ${(on / e).toFixed(2)}x` },
      ]),
    ].join('\n');
  } finally {
    await Promise.all([stacks.on.stop(), stacks.off.stop()]);
    for (const c of await docker.listContainers({ all: true, filters: { label: [LABEL] } })) await docker.getContainer(c.Id).remove({ force: true });
  }
}
