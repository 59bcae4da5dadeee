// Usage and logs on the real engine, across a dispatcher restart: a CGI script in
// fastcontainer/hello burns CPU on request; the dispatcher is closed (its containers keep
// running) and a new one adopts the container; more is burned. The usage rollup's CPU-seconds must
// then equal the container's own cgroup counter (cpuacct.usage, read here straight from the
// kernel) within a small tolerance: counted twice, it would be over by the first burn; lost, under.
// Requests are counted exactly once each on either side of the restart. The container's output
// (its boot line with an ANSI escape, and what the script prints to stderr) is kept in the CMDB,
// before and after the restart.

import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CgroupCpu } from '../../src/dispatcher/signals/cgroup.js';
import { containersOfHost, docker, removeContainersOfHost, removeHostAndNetwork } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { startTestStack, TEST_TOKEN, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const hostId = uniqueName('fctest-host');
let front: TestStack;
let site: string;
const dispatchers: TestStack[] = [];

const dispatcher = async (prefix: string) => {
  const d = await startTestStack({ roles: ['dispatcher'], prefix, hostId, env: { FC_USAGE_INTERVAL: '1s', FC_HEARTBEAT_INTERVAL: '200ms' } });
  dispatchers.push(d);
  return d;
};

beforeAll(async () => {
  site = await mkdtemp(path.join(os.tmpdir(), 'fctest-burn-'));
  await mkdir(path.join(site, 'cgi-bin'));
  // The container runs as 65534: the site must be readable and the script executable by it.
  await chmod(site, 0o755);
  await chmod(path.join(site, 'cgi-bin'), 0o755);
  const script = path.join(site, 'cgi-bin', 'burn');
  await writeFile(script, '#!/bin/sh\ni=0\nwhile [ $i -lt 400000 ]; do i=$((i+1)); done\necho "burned $i" >&2\nprintf "Content-Type: text/plain\\r\\n\\r\\nburned %s\\n" "$i"\n');
  await chmod(script, 0o755);
  front = await startTestStack({ roles: ['coreapi', 'proxy'] });
});

afterAll(async () => {
  for (const d of dispatchers) await d.stack.destroy().catch(() => undefined);
  // Its containers, then its network and isolation rules (every dispatcher of this host had the same).
  if (dispatchers[0] !== undefined) await removeHostAndNetwork(hostId, dispatchers[0].config.dockerNetwork);
  else await removeContainersOfHost(hostId);
  await front?.cleanup();
  await rm(site, { recursive: true, force: true });
});

async function usage(): Promise<{ cpuSeconds: number; requests: number; coldStarts: number; containerSeconds: number; memoryUsedGiBSeconds: number }> {
  const r = await front.api('GET', '/v1/apps/burn/usage?from=1h');
  expect(r.status).toBe(200);
  return r.body.totals;
}

async function burn(): Promise<void> {
  const r = await eventually(async () => {
    const res = await request(`${front.proxyUrl}/cgi-bin/burn`, { headers: { host: 'burn.test' } });
    const body = await res.body.text();
    return res.statusCode === 200 ? body : undefined;
  }, { timeout: 30_000, interval: 200, what: 'a burn through the proxy' });
  expect(r).toContain('burned 400000');
}

describe('usage and logs across a dispatcher restart, on the real engine', () => {
  it('CPU-seconds in the rollup match the cgroup\'s own counter; requests and the cold start are counted once', async () => {
    const first = await dispatcher(front.prefix);
    const created = await front.api('POST', '/v1/apps', {
      name: 'burn', hostnames: ['burn.test'], image: 'fastcontainer/hello', cpus: 1, freezeAfter: 0, lifespan: 3600, autoscale: false,
      volumes: [`${site}:/site:ro`],
      command: ['/bin/busybox', 'sh', '-c', 'printf "booting \\033[31mred\\033[0m\\n"; (while :; do echo tick; sleep 1; done) & trap "exit 0" TERM INT; /bin/busybox httpd -f -p 8080 -h /site & wait $!'],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await burn();
    const [row] = await containersOfHost(hostId);
    expect(row).toBeDefined();
    const cgroup = new CgroupCpu();
    const cgroupSeconds = async () => ((await cgroup.read(row?.Id as string))?.usageNs ?? Number.NaN) / 1e9;
    const beforeRestart = await cgroupSeconds();
    expect(beforeRestart).toBeGreaterThan(0.05);

    // A clean stop writes what it counted; the container keeps running.
    await first.stack.close();
    const closedAt = Date.now();
    const atClose = await usage();
    const tolerance = (c: number) => 0.05 + c * 0.02;
    expect(Math.abs(atClose.cpuSeconds - beforeRestart)).toBeLessThanOrEqual(tolerance(beforeRestart));
    expect(atClose).toMatchObject({ requests: 1, coldStarts: 1 });

    // The container prints while no dispatcher runs (the engine's own log says so)…
    await eventually(async () => {
      const raw = (await docker.getContainer(row?.Id as string).logs({ stdout: true, stderr: false, since: Math.ceil(closedAt / 1000) + 0.001, timestamps: true })) as unknown as Buffer;
      return raw.toString('latin1').includes('tick');
    }, { timeout: 10_000, interval: 200, what: 'a line printed while no dispatcher ran' });
    const restartedAt = Date.now();
    await dispatcher(front.prefix);
    await burn();
    await burn();
    const converged = await eventually(async () => {
      const c = await cgroupSeconds();
      const u = await usage();
      return Math.abs(u.cpuSeconds - c) <= tolerance(c) && u.requests === 3 ? { c, u } : undefined;
    }, { timeout: 15_000, interval: 250, what: 'the rollup to match the cgroup (not double, not short)' });
    // The second dispatcher counted the burns after the restart on top of the first one's.
    expect(converged.c).toBeGreaterThan(beforeRestart * 2);
    expect(converged.u.coldStarts).toBe(1);
    // Container time: never more than the time since its start (counted twice, it would be), at
    // most an interval (1 s) behind it. The count is read before the clock, so that the time it
    // takes to read it cannot make it look larger than the container's life.
    const [entry] = (await front.api('GET', '/v1/apps/burn/containers')).body.containers as { startedAt: number }[];
    const counted = (await usage()).containerSeconds;
    const lived = (Date.now() - (entry?.startedAt ?? 0)) / 1000;
    expect(counted).toBeLessThanOrEqual(lived + 0.1);
    expect(counted).toBeGreaterThan(lived - 2.5);
    expect(converged.u.memoryUsedGiBSeconds).toBeGreaterThan(0);
    // The same container all along: adopted, not started again.
    expect((await containersOfHost(hostId)).map((c) => c.Id)).toEqual([row?.Id]);

    // Its output: the boot line (escape kept as data) and each burn's stderr line, before and after the restart.
    const logs = await eventually(async () => {
      const r = await front.api('GET', '/v1/apps/burn/logs?limit=100');
      return (r.body.lines as { text: string }[]).filter((l) => l.text === 'burned 400000').length === 3 ? r.body.lines as { text: string; stream: string; at: number }[] : undefined;
    }, { timeout: 10_000, what: 'the burns\' lines in the log' });
    expect(logs[0]).toMatchObject({ stream: 'stdout', text: 'booting \u001b[31mred\u001b[0m' });
    expect(logs.filter((l) => l.stream === 'stderr').map((l) => l.text)).toEqual(['burned 400000', 'burned 400000', 'burned 400000']);
    // …and the adopting dispatcher keeps it: it follows from when the first one stopped.
    const between = logs.filter((l) => l.text === 'tick' && l.at > closedAt && l.at < restartedAt);
    expect(between.length).toBeGreaterThanOrEqual(1);
    // Each tick once: none shipped by both dispatchers.
    const ticks = logs.filter((l) => l.text === 'tick').map((l) => l.at);
    expect(new Set(ticks).size).toBe(ticks.length);
    void TEST_TOKEN;
  }, 120_000);
});
