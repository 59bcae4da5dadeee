// One contract, two container runtimes: the Docker engine and the tests' in-process fake.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { labelKeys, type ContainerRuntime, type ContainerSpec } from '../../src/dispatcher/container-runtime.js';
import { DockerRuntime, type DockerRuntimeOptions } from '../../src/dispatcher/runtime/docker-runtime.js';
import { sandboxLabels } from '../../src/dispatcher/runtime/network-sandboxes.js';
import { removeTenantNetwork } from '../../src/dispatcher/runtime/tenant-network.js';
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

const warnings: string[] = [];
/** A Docker runtime for this file's host, keeping `size` network sandboxes ahead of need. */
function withSandboxes(size: number, more: Partial<NonNullable<DockerRuntimeOptions['sandboxes']>> = {}): DockerRuntime {
  return new DockerRuntime({
    dockerHost: 'unix:///var/run/docker.sock',
    network: 'bridge',
    sandboxes: { size, image: 'fastcontainer/hello', labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId }, warn: (m) => warnings.push(m), ...more },
  });
}
const isolatedNetwork = `fc-${hostId}`;
const dockerCrashing = { image: 'fastcontainer/hello', command: ['/bin/busybox', 'sh', '-c', 'echo boom; exit 3'] };

const flavours: [string, () => Flavour][] = [
  ['docker', () => ({ runtime: new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge' }), crashing: dockerCrashing, engineStats: true })],
  // The same contract when containers join network sandboxes made ahead of need.
  ['docker with network sandboxes', () => ({ runtime: withSandboxes(2), crashing: dockerCrashing, engineStats: true })],
  // And on a network of its own with the isolation rules on: the host still reaches, probes and
  // serves every container (network-isolation.ts keeps only the containers from the host).
  ['docker on an isolated network', () => ({
    runtime: new DockerRuntime({
      dockerHost: 'unix:///var/run/docker.sock',
      network: isolatedNetwork,
      sandboxes: { size: 2, image: 'fastcontainer/hello', labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId }, warn: (m) => warnings.push(m) },
      isolation: { hostId, policy: { blockedNetworks: [], services: [] } },
    }),
    crashing: dockerCrashing,
    engineStats: true,
  })],
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
  await removeTenantNetwork(docker, isolatedNetwork, hostId);
  await fake.close();
});

describe.each(flavours)('ContainerRuntime contract: %s', (_name, make) => {
  const { runtime, crashing, engineStats } = make();
  beforeAll(() => runtime.prepare());
  afterAll(() => runtime.close());

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

  it('follows a container\'s stdout and stderr line by line, escapes and all, cutting long lines; ends with the container', async () => {
    // The Docker image prints at start; the fake is made to print the same once started.
    const long = '0'.repeat(300);
    const s = spec({ command: _name === 'fake' ? null : ['/bin/busybox', 'sh', '-c', `printf 'one\\n\\033[1mtwo\\n${long}\\n'; echo err >&2; trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /www & wait $!`] });
    const id = await runtime.create(s);
    await runtime.start(id);
    if (runtime instanceof FakeRuntime) {
      runtime.print(id, 'stdout', 'one', '\u001b[1mtwo', long);
      runtime.print(id, 'stderr', 'err');
    }
    const lines: { stream: string; text: string; at: number }[] = [];
    const before = Date.now() - 60_000;
    const follow = runtime.followLogs(id, { sinceMs: null, maxLineBytes: 256 }, (l) => lines.push(l));
    await eventually(() => lines.length === 4, { timeout: 10_000, what: 'four lines' });
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.text)).toEqual(['one', '\u001b[1mtwo', `${'0'.repeat(256)}…`]);
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.text)).toEqual(['err']);
    for (const l of lines) expect(l.at).toBeGreaterThan(before);
    // From a time after all of it: nothing old.
    const later: string[] = [];
    const again = runtime.followLogs(id, { sinceMs: Date.now() + 1_000, maxLineBytes: 256 }, (l) => later.push(l.text));
    await runtime.stop(id, 1000);
    await follow.ended;
    await again.ended;
    expect(later).toEqual([]);
    await runtime.remove(id);
    // A container that is gone: the follow just ends.
    const none = runtime.followLogs(id, { sinceMs: null, maxLineBytes: 256 }, () => undefined);
    await none.ended;
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

describe('Docker runtime: what a tenant container may touch', () => {
  const runtime = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge' });
  let dir: string;
  /** An image configured to run as root (no USER), made for this file and removed after it. */
  const rootImage = `fctest-root-${hostId}`;
  beforeAll(async () => {
    dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'fctest-mounts-')));
    const base = await docker.createContainer({ Image: 'fastcontainer/hello', Labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId } });
    await base.commit({ repo: rootImage, tag: 'latest', changes: ['USER 0:0'] });
    await base.remove({ force: true });
  });
  afterAll(async () => {
    await removeContainersOfHost(hostId);
    await docker.getImage(rootImage).remove({ force: true }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  /** The uid and gid the container's main process runs as, read from this host's /proc. */
  const idsOf = async (id: string) => {
    const pid = (await docker.getContainer(id).inspect()).State.Pid;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { uid: status.match(/^Uid:\s+(\d+)/m)?.[1], gid: status.match(/^Gid:\s+(\d+)/m)?.[1] };
  };

  // Found: a missing host path was created by the engine as an empty root-owned directory.
  it('fails the create of a container whose volume does not exist, creating nothing', async () => {
    const missing = path.join(dir, 'missing');
    const err = await runtime.create(spec({ volumes: [`${missing}:/www:ro`] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FcError);
    expect((err as FcError).code).toBe('FC_ERR_START_FAILED');
    expect((err as FcError).message).toContain('does not exist');
    expect(existsSync(missing)).toBe(false);
  });

  it('mounts an existing directory, read-only when asked', async () => {
    mkdirSync(path.join(dir, 'www'));
    writeFileSync(path.join(dir, 'www', 'index.html'), 'from the datapool');
    chmodSync(path.join(dir, 'www'), 0o755);
    const id = await runtime.create(spec({ volumes: [`${path.join(dir, 'www')}:/www:ro`] }));
    const started = await runtime.start(id);
    await eventually(async () => expect(await answer(started.ip as string, 8080)).toBe('from the datapool'));
    const info = await docker.getContainer(id).inspect();
    expect(info.Mounts).toMatchObject([{ Type: 'bind', Source: path.join(dir, 'www'), Destination: '/www', RW: false }]);
    await runtime.remove(id);
  });

  it('runs an image configured as root as nobody, unless the operator allows root for it', async () => {
    const forced = await runtime.create(spec({ image: rootImage }));
    await runtime.start(forced);
    expect((await docker.getContainer(forced).inspect()).Config.User).toBe('65534:65534');
    expect(await idsOf(forced)).toEqual({ uid: '65534', gid: '65534' });
    await runtime.remove(forced);

    const mine = await runtime.create(spec({ image: rootImage, user: '1234' }));
    await runtime.start(mine);
    expect(await idsOf(mine)).toEqual({ uid: '1234', gid: '1234' });
    await runtime.remove(mine);

    const allowing = new DockerRuntime({ dockerHost: 'unix:///var/run/docker.sock', network: 'bridge', rootImages: [rootImage] });
    const root = await allowing.create(spec({ image: rootImage }));
    await allowing.start(root);
    expect(await idsOf(root)).toEqual({ uid: '0', gid: '0' });
    await allowing.remove(root);
    await allowing.close();
  });

  it("keeps a non-root image's own user", async () => {
    const id = await runtime.create(spec());
    await runtime.start(id);
    // The container inherits the image's USER 65534:65534; nothing was forced on it.
    expect((await docker.getContainer(id).inspect()).Config.User).toBe((await docker.getImage('fastcontainer/hello').inspect()).Config.User);
    expect(await idsOf(id)).toEqual({ uid: '65534', gid: '65534' });
    await runtime.remove(id);
  });

  it('gives a read-only root file system with writable /tmp and /run when asked', async () => {
    const probe = 'touch /probe 2>/dev/null && echo root-writable || echo root-read-only; touch /tmp/t /run/r && echo scratch-ok; exec /bin/busybox httpd -f -p 8080 -h /www';
    const id = await runtime.create(spec({ readOnlyRootfs: true, command: ['/bin/busybox', 'sh', '-c', probe] }));
    const started = await runtime.start(id);
    await eventually(async () => expect(await answer(started.ip as string, 8080)).toBeTypeOf('string'));
    const logs = await runtime.logs(id, 10);
    expect(logs).toContain('root-read-only');
    expect(logs).toContain('scratch-ok');
    expect((await docker.getContainer(id).inspect()).HostConfig.ReadonlyRootfs).toBe(true);
    await runtime.remove(id);
  });
});

describe('Docker network sandboxes', () => {
  const sandboxesOfHost = async () => (await docker.listContainers({ all: true, filters: { label: [`${labelKeys.host}=${hostId}`, `${sandboxLabels.role}=sandbox`] } })).map((c) => c.Id);
  const sandboxOf = async (id: string) => (await docker.getContainer(id).inspect()).HostConfig.NetworkMode?.replace(/^container:/, '') ?? '';

  // Generous waits: the engine is shared with the other test files' starts.
  const slow = { timeout: 30_000 };

  it('gives each container a made-ahead namespace of its own, kept bounded, and removes it with the container', async () => {
    const runtime = withSandboxes(2);
    onTestFinished(() => runtime.close());
    await runtime.prepare();
    await eventually(async () => ((await runtime.warmStats())?.ready === 2 ? true : undefined), { ...slow, what: 'two sandboxes ready' });
    const a = await runtime.create(spec());
    const b = await runtime.create(spec());
    const [ia, ib] = [await runtime.start(a), await runtime.start(b)];
    const [sa, sb] = [await sandboxOf(a), await sandboxOf(b)];
    // Each joined a different sandbox: two namespaces, two addresses, each answering for its own container.
    expect(sa).toMatch(/^[0-9a-f]{64}$/);
    expect(sb).toMatch(/^[0-9a-f]{64}$/);
    expect(sa).not.toBe(sb);
    expect(ia.ip).not.toBe(ib.ip);
    expect(await eventually(() => answer(ia.ip as string, 8080), { timeout: 10_000, what: 'a answers' })).toContain('Hello from FastContainer');
    expect((await runtime.inspect(a))?.ip).toBe(ia.ip);
    // The engine's listing shows the app containers with their sandbox's address, never the sandboxes.
    const listed = await runtime.list({ [labelKeys.host]: hostId });
    expect(listed.map((c) => c.id).sort()).toEqual([a, b].sort());
    expect(listed.find((c) => c.id === a)?.ip).toBe(ia.ip);
    expect(runtime.warmStats()).toMatchObject({ hits: 2, misses: 0 });
    // The sandbox itself has no privileges and almost nothing to use.
    const sandbox = await docker.getContainer(sa).inspect();
    expect(sandbox.Config.User).toBe('65534:65534');
    expect(sandbox.Name).toMatch(/^\/fc-sandbox-[0-9a-f]{10}$/);
    expect(sandbox.HostConfig).toMatchObject({ CapDrop: ['ALL'], ReadonlyRootfs: true, Memory: 16 * 1024 * 1024, PidsLimit: 4, Privileged: false });
    // Refilled to the bound, never beyond: 2 waiting + 2 joined.
    await eventually(async () => (runtime.warmStats()?.ready === 2 ? true : undefined), { ...slow, what: 'the pool refilled' });
    expect((await sandboxesOfHost()).length).toBe(4);
    await runtime.remove(a);
    await eventually(async () => (!(await sandboxesOfHost()).includes(sa) ? true : undefined), { ...slow, what: 'the sandbox removed with its container' });
    await runtime.remove(b);
    await runtime.close();
    // Closing removes the waiting ones: nothing of this runtime is left.
    expect(await sandboxesOfHost()).toEqual([]);
  });

  it('hands out no dead sandbox, and a later process removes the unused ones an earlier left but keeps the joined', async () => {
    const first = withSandboxes(2);
    onTestFinished(() => first.close());
    await first.prepare();
    await eventually(async () => (first.warmStats()?.ready === 2 ? true : undefined), { ...slow, what: 'two sandboxes ready' });
    // Something kills a waiting sandbox (an operator, the OOM killer): the pool drops it and makes another.
    const watching = first.watch({ [labelKeys.host]: hostId }, () => undefined);
    const waiting = await sandboxesOfHost();
    await docker.getContainer(waiting[0] as string).kill();
    await eventually(async () => (!(await sandboxesOfHost()).includes(waiting[0] as string) && first.warmStats()?.ready === 2 ? true : undefined), { ...slow, what: 'the dead sandbox replaced' });
    const id = await first.create(spec());
    const { ip } = await first.start(id);
    expect(await eventually(() => answer(ip as string, 8080), { timeout: 10_000, what: 'an answer' })).toContain('Hello');
    // The start is followed by a refill; once it is done the process goes quiet, and then away
    // without closing (kill -9): the next one on this host prepares.
    await eventually(async () => (first.warmStats()?.ready === 2 ? true : undefined), { ...slow, what: 'the refill after the start' });
    watching();
    const second = withSandboxes(1);
    await second.prepare();
    const left = await sandboxesOfHost();
    expect(left).toContain(await sandboxOf(id));
    expect(left.length).toBeLessThanOrEqual(2);
    expect((await second.inspect(id))?.ip).toBe(ip);
    await second.remove(id);
    await second.close();
    expect(await sandboxesOfHost()).toEqual([]);
  });

  it('starts containers without a sandbox when none can be made, and says why', async () => {
    const runtime = withSandboxes(1, { image: 'fastcontainer/no-such-image' });
    onTestFinished(() => runtime.close());
    warnings.length = 0;
    await runtime.prepare();
    await eventually(async () => (runtime.warmStats()?.failures === 1 ? true : undefined), { timeout: 10_000, what: 'the failure counted' });
    expect(warnings.join('\n')).toMatch(/could not make a network sandbox/);
    const id = await runtime.create(spec());
    const { ip } = await runtime.start(id);
    expect(await eventually(() => answer(ip as string, 8080), { timeout: 10_000, what: 'an answer' })).toContain('Hello');
    expect(runtime.warmStats()).toMatchObject({ ready: 0, hits: 0, misses: 1 });
    await runtime.remove(id);
    await runtime.close();
  });
});
