// The CPU signals on this machine's real engine and kernel: a busy loop held to 0.1 core is
// throttled, and its cgroup files say so; a live quota change shows in them for the same container;
// the engine's stats API (the fallback) tells the same story.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { labelKeys, type ContainerSpec } from '../../src/dispatcher/container-runtime.js';
import { DockerRuntime } from '../../src/dispatcher/runtime/docker-runtime.js';
import { CgroupCpu, type CpuCounters } from '../../src/dispatcher/signals/cgroup.js';
import { CpuWindow } from '../../src/dispatcher/signals/cpu-window.js';
import { removeContainersOfHost } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';

const hostId = uniqueName('fctest-host');
const runtime = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge' });
let emptyRoot: string | undefined;

afterAll(async () => {
  await removeContainersOfHost(hostId);
  await runtime.close();
  if (emptyRoot !== undefined) await rm(emptyRoot, { recursive: true, force: true });
});

const busyLoop = (name: string, cpus: number): ContainerSpec => ({
  name: `fctest-${hostId}-${name}`,
  image: 'fastcontainer/hello',
  command: ['/bin/busybox', 'sh', '-c', 'while :; do :; done'],
  env: {},
  port: 8080,
  volumes: [],
  cpus,
  memory: 32 * 1024 * 1024,
  pidsLimit: 16,
  labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId, [labelKeys.container]: name },
});

describe('CPU signals of a real container', () => {
  it('a busy loop at 0.1 core: throttled, 0.1 core used, then a live quota of 0.5', async () => {
    const id = await runtime.create(busyLoop('busy', 0.1));
    const started = await runtime.start(id);
    expect(started.pid).toBeGreaterThan(0);

    // No fallback: these numbers must come from the cgroup files.
    const cgroup = new CgroupCpu();
    const dir = await cgroup.locate(id);
    expect(dir, 'the container cgroup, found by its id').not.toBeNull();

    // Two reads a second apart: a measurement over time, not a wait for something to happen.
    const window = new CpuWindow();
    const t0 = Date.now();
    const c0 = (await cgroup.read(id)) as CpuCounters;
    await sleep(1000);
    const t1 = Date.now();
    const c1 = (await cgroup.read(id)) as CpuCounters;
    expect(c0).not.toBeNull();
    expect(c1.throttledPeriods).toBeGreaterThan(c0.throttledPeriods);
    expect(c1.throttledNs).toBeGreaterThan(c0.throttledNs);
    window.add(t0, c0);
    window.add(t1, c1);
    const cpu = window.summary(t1, 5000);
    expect(cpu.usageCores).toBeGreaterThan(0.05);
    expect(cpu.usageCores).toBeLessThan(0.15);
    // A loop that never sleeps hits its quota in nearly every period.
    expect(cpu.throttledShare).toBeGreaterThan(0.5);
    expect(cpu.periods).toBeGreaterThanOrEqual(5);
    expect(await cgroup.readQuota(id)).toEqual({ quotaUs: 10_000, periodUs: 100_000 });

    await runtime.update(id, { cpus: 0.5 });
    expect(await cgroup.readQuota(id)).toEqual({ quotaUs: 50_000, periodUs: 100_000 });
    // The same container, the same process: no restart.
    expect(await runtime.inspect(id)).toMatchObject({ id, running: true, pid: started.pid });

    // Written straight to the cgroup (the autoscaler's fast path): in effect at once, same process.
    expect(await cgroup.writeQuota(id, 0.25)).toBe(true);
    expect(await cgroup.readQuota(id)).toEqual({ quotaUs: 25_000, periodUs: 100_000 });
    expect(await runtime.inspect(id)).toMatchObject({ id, running: true, pid: started.pid });
    // Nonsense is refused, and an id cannot name a path outside the cgroup tree.
    expect(await cgroup.writeQuota(id, Number.NaN)).toBe(false);
    expect(await cgroup.writeQuota(id, -1)).toBe(false);
    expect(await cgroup.writeQuota('../../cpu', 0.5)).toBe(false);
    expect(await cgroup.readQuota(id)).toEqual({ quotaUs: 25_000, periodUs: 100_000 });
    await runtime.update(id, { cpus: 0.5 });

    // The engine's stats API reads the same cgroup, a little later.
    const engine = (await runtime.cpuStats(id)) as CpuCounters;
    expect(engine).not.toBeNull();
    expect(engine.periods).toBeGreaterThanOrEqual(c1.periods);
    expect(engine.throttledPeriods).toBeGreaterThanOrEqual(c1.throttledPeriods);
    expect(engine.usageNs).toBeGreaterThanOrEqual(c1.usageNs);
    // ... and in the same units: under a second more of usage, not a factor of 1000 off.
    expect(engine.usageNs - c1.usageNs).toBeLessThan(1e9 * 2);

    // Found through /proc/<pid>/cgroup where the id names no directory.
    expect(await new CgroupCpu().locate('not-the-engine-id', started.pid)).toEqual(dir);

    // Files unreadable (no cgroup fs here): the engine answers instead.
    emptyRoot = await mkdtemp(path.join(tmpdir(), 'fc-no-cgroup-'));
    const remote = new CgroupCpu({ root: emptyRoot, fallback: (rid) => runtime.cpuStats(rid) });
    expect((await remote.read(id))?.usageNs).toBeGreaterThanOrEqual(engine.usageNs);

    // Gone: neither the files nor the engine have it.
    await runtime.remove(id);
    const withFallback = new CgroupCpu({ fallback: (rid) => runtime.cpuStats(rid) });
    expect(await cgroup.read(id)).toBeNull();
    expect(await withFallback.read(id)).toBeNull();
    expect(await remote.read(id)).toBeNull();
  });
});
