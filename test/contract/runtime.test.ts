// One contract, two container runtimes: the Docker engine and the tests' in-process fake.

import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { labelKeys, type ContainerRuntime, type ContainerSpec } from '../../src/dispatcher/container-runtime.js';
import { DockerRuntime } from '../../src/dispatcher/runtime/docker-runtime.js';
import { FcError } from '../../src/shared/errors.js';
import { docker, removeContainersOfHost } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { eventually } from '../helpers/wait.js';

interface Flavour {
  runtime: ContainerRuntime;
  /** A spec that exits at once with code 3 after printing "boom". */
  crashing: Pick<ContainerSpec, 'image' | 'command'>;
  /** Whether cpuStats has an engine behind it; the fake has none and answers null. */
  engineStats: boolean;
}

const hostId = uniqueName('fctest-host');
const fake = new FakeRuntime();
fake.images.set('fake/crash', { exit: { code: 3, output: 'boom' } });

const flavours: [string, () => Flavour][] = [
  ['docker', () => ({ runtime: new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge' }), crashing: { image: 'fastcontainer/hello', command: ['/bin/busybox', 'sh', '-c', 'echo boom; exit 3'] }, engineStats: true })],
  ['fake', () => ({ runtime: fake, crashing: { image: 'fake/crash', command: null }, engineStats: false })],
];

let seq = 0;
function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  seq += 1;
  return {
    name: `fctest-${hostId}-${seq}`,
    image: 'fastcontainer/hello',
    command: null,
    env: { GREETING: 'hi' },
    port: 8080,
    volumes: [],
    cpus: 0.5,
    memory: 64 * 1024 * 1024,
    pidsLimit: 64,
    labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId, [labelKeys.container]: `entry-${seq}` },
    ...overrides,
  };
}

async function answer(ip: string, port: number): Promise<string> {
  const res = await request(`http://${ip}:${port}/`);
  return res.body.text();
}

afterAll(async () => {
  await removeContainersOfHost(hostId);
  await fake.close();
});

describe.each(flavours)('ContainerRuntime contract: %s', (_name, make) => {
  const { runtime, crashing, engineStats } = make();

  it('creates and starts a container that answers on its address, with its labels', async () => {
    const s = spec();
    const id = await runtime.create(s);
    const started = await runtime.start(id);
    expect(started).toMatchObject({ id, running: true, name: s.name });
    expect(started.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(started.pid).toBeGreaterThan(0);
    expect(Number.isInteger(started.pid)).toBe(true);
    expect((await runtime.inspect(id))?.pid).toBe(started.pid);
    const body = await eventually(() => answer(started.ip as string, 8080), { timeout: 10_000, what: 'an answer' });
    expect(body).toContain('Hello from FastContainer');
    const listed = await runtime.list({ [labelKeys.host]: hostId, [labelKeys.container]: s.labels[labelKeys.container] as string });
    expect(listed.map((c) => c.id)).toEqual([id]);
    expect(listed[0]?.labels).toMatchObject(s.labels);
    await runtime.update(id, { cpus: 1.5 });
    await runtime.stop(id, 1000);
    expect(await runtime.inspect(id)).toMatchObject({ running: false, pid: null });
    await runtime.remove(id);
    expect(await runtime.inspect(id)).toBeNull();
    await runtime.remove(id);
    await runtime.stop(id, 1000);
  });

  it('reads CPU counters of a running container from the engine, or null', async () => {
    const id = await runtime.create(spec());
    await runtime.start(id);
    const counters = await runtime.cpuStats(id);
    if (engineStats) {
      expect(counters).toEqual({ periods: expect.any(Number), throttledPeriods: expect.any(Number), throttledNs: expect.any(Number), usageNs: expect.any(Number) });
      // Starting the app used some CPU.
      expect(counters?.usageNs).toBeGreaterThan(0);
    } else {
      expect(counters).toBeNull();
    }
    await runtime.stop(id, 1000);
    expect(await runtime.cpuStats(id)).toBeNull();
    await runtime.remove(id);
    expect(await runtime.cpuStats(id)).toBeNull();
  });

  it('freezes a container (it answers nothing, is still running and listed) and thaws it (it answers what waited)', async () => {
    const s = spec();
    const id = await runtime.create(s);
    const started = await runtime.start(id);
    await eventually(() => answer(started.ip as string, 8080), { timeout: 10_000, what: 'an answer' });
    await runtime.freeze(id);
    await runtime.freeze(id);
    expect(await runtime.inspect(id)).toMatchObject({ running: true, paused: true });
    const listed = await runtime.list({ [labelKeys.host]: hostId, [labelKeys.container]: s.labels[labelKeys.container] as string });
    // Reconciliation must not take a frozen container for a dead one.
    expect(listed[0]).toMatchObject({ id, running: true, paused: true });
    let answered = false;
    const waiting = answer(started.ip as string, 8080).then((body) => {
      answered = true;
      return body;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    await runtime.thaw(id);
    expect(await waiting).toContain('Hello from FastContainer');
    expect(await runtime.inspect(id)).toMatchObject({ running: true, paused: false });
    await runtime.thaw(id);
    // Frozen containers can still be removed.
    await runtime.freeze(id);
    await runtime.remove(id);
    expect(await runtime.inspect(id)).toBeNull();
    await runtime.thaw(id);
  });

  it('names the image when it is missing', async () => {
    const err = await runtime.create(spec({ image: 'fastcontainer/absent:9' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FcError);
    expect((err as FcError).code).toBe('FC_ERR_IMAGE_NOT_FOUND');
    expect((err as FcError).message).toContain('fastcontainer/absent:9');
  });

  it('reports a container that exits, with its exit code and output', async () => {
    const id = await runtime.create(spec(crashing));
    await runtime.start(id).catch(() => undefined);
    const info = await eventually(async () => {
      const i = await runtime.inspect(id);
      return i !== null && !i.running ? i : undefined;
    }, { timeout: 10_000, what: 'the container to exit' });
    expect(info.exitCode).toBe(3);
    expect(await runtime.logs(id, 10)).toContain('boom');
    await runtime.remove(id);
  });
});

describe('Docker runtime specifics', () => {
  it('runs containers without privileges and changes the CPU quota live', async () => {
    const runtime = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge' });
    const id = await runtime.create(spec({ cpus: 0.3 }));
    await runtime.start(id);
    const before = await docker.getContainer(id).inspect();
    expect(before.HostConfig).toMatchObject({ CpuQuota: 30_000, CpuPeriod: 100_000, Memory: 64 * 1024 * 1024, MemorySwap: 64 * 1024 * 1024, PidsLimit: 64, Privileged: false, CapDrop: ['ALL'] });
    expect(before.Config.Env).toContain('GREETING=hi');
    await runtime.update(id, { cpus: 0.6 });
    const after = await docker.getContainer(id).inspect();
    expect(after.HostConfig.CpuQuota).toBe(60_000);
    // Live: the same process kept running.
    expect(after.State.Pid).toBe(before.State.Pid);
    await runtime.remove(id);
  });
});
