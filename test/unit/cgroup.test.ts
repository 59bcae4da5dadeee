import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { CgroupCpu, parseCpuMaxV2, parseCpuStatV1, parseCpuStatV2, parseQuotaV1, type CpuCounters } from '../../src/dispatcher/signals/cgroup.js';
import { CpuWindow } from '../../src/dispatcher/signals/cpu-window.js';
import { FcError } from '../../src/shared/errors.js';

const fixtures = fileURLToPath(new URL('../fixtures/cgroup/', import.meta.url));
const fixture = (name: string) => readFile(path.join(fixtures, name), 'utf8');

describe('parsing cgroup files', () => {
  it.each([
    ['v1, Linux 6 (with burst keys)', 'v1/cpu.stat', { periods: 16, throttledPeriods: 15, throttledNs: 1_336_296_024, usageNs: 167_362_109 }],
    ['v1, Linux 4', 'v1/cpu.stat.kernel-4', { periods: 4211, throttledPeriods: 37, throttledNs: 2_207_409_561, usageNs: 167_362_109 }],
  ] as const)('cpu.stat %s', async (_name, file, want) => {
    expect(parseCpuStatV1(await fixture(file), await fixture('v1/cpuacct.usage'))).toEqual(want);
  });

  it('cpu.stat v2, µs to ns, skipping the keys it does not use', async () => {
    expect(parseCpuStatV2(await fixture('v2/cpu.stat'))).toEqual({ periods: 412, throttledPeriods: 398, throttledNs: 36_552_304_000, usageNs: 2_437_186_000 });
  });

  it('cpu.stat v2 without the cpu controller: usage, and no periods', async () => {
    expect(parseCpuStatV2(await fixture('v2/cpu.stat.no-cpu-controller'))).toEqual({ periods: 0, throttledPeriods: 0, throttledNs: 0, usageNs: 167_362_000 });
  });

  it('quotas, limited and not', async () => {
    expect(parseQuotaV1(await fixture('v1/cpu.cfs_quota_us'), await fixture('v1/cpu.cfs_period_us'))).toEqual({ quotaUs: 10_000, periodUs: 100_000 });
    expect(parseQuotaV1(await fixture('v1/cpu.cfs_quota_us.unlimited'), await fixture('v1/cpu.cfs_period_us'))).toEqual({ quotaUs: null, periodUs: 100_000 });
    expect(parseCpuMaxV2(await fixture('v2/cpu.max'))).toEqual({ quotaUs: 30_000, periodUs: 100_000 });
    expect(parseCpuMaxV2(await fixture('v2/cpu.max.unlimited'))).toEqual({ quotaUs: null, periodUs: 100_000 });
  });

  it.each<[string, () => Promise<unknown>, RegExp]>([
    ['a bad value', () => fixture('malformed/cpu.stat.bad-value').then(async (s) => parseCpuStatV1(s, await fixture('v1/cpuacct.usage'))), /nr_throttled.*"x15"/],
    ['a missing key', () => fixture('malformed/cpu.stat.missing-key').then(async (s) => parseCpuStatV1(s, await fixture('v1/cpuacct.usage'))), /no nr_throttled/],
    ['a line of three fields', () => fixture('malformed/cpu.stat.three-fields').then(async (s) => parseCpuStatV1(s, await fixture('v1/cpuacct.usage'))), /not "key value"/],
    ['v2 without usage_usec', () => fixture('malformed/cpu.stat.v2-no-usage').then(parseCpuStatV2), /no usage_usec/],
    ['an empty cpuacct.usage', () => fixture('malformed/cpuacct.usage.empty').then(async (u) => parseCpuStatV1(await fixture('v1/cpu.stat'), u)), /cpuacct.usage.*not an unsigned integer/],
    ['a float cpuacct.usage', () => fixture('malformed/cpuacct.usage.float').then(async (u) => parseCpuStatV1(await fixture('v1/cpu.stat'), u)), /cpuacct.usage.*"1.5e9"/],
    ['cpu.max of one field', () => fixture('malformed/cpu.max.one-field').then(parseCpuMaxV2), /cpu.max.*"max"/],
    ['cpu.max with a zero period', () => fixture('malformed/cpu.max.zero-period').then(parseCpuMaxV2), /period is 0/],
    ['a negative quota other than -1', () => fixture('malformed/cpu.cfs_quota_us.negative').then(async (q) => parseQuotaV1(q, await fixture('v1/cpu.cfs_period_us'))), /cpu.cfs_quota_us.*"-5"/],
  ])('%s is a clear error, not NaN', async (_name, parse, message) => {
    const err = await parse().then((v) => v, (e: unknown) => e);
    expect(err).toBeInstanceOf(FcError);
    expect((err as FcError).code).toBe('FC_ERR_ENGINE');
    expect((err as FcError).message).toMatch(message);
  });
});

const ID = 'c0ffee'.padEnd(64, '0');
const tmpRoots: string[] = [];
afterAll(async () => {
  for (const r of tmpRoots) await rm(r, { recursive: true, force: true });
});

/** A fake /sys/fs/cgroup (and /proc): files at paths relative to a new tmp dir. */
async function layout(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'fc-cgroup-'));
  tmpRoots.push(root);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await writeFile(path.join(root, rel), content);
  }
  return root;
}

async function v1Files(cpuDir: string, acctDir: string): Promise<Record<string, string>> {
  return {
    [`${cpuDir}/cpu.stat`]: await fixture('v1/cpu.stat'),
    [`${cpuDir}/cpu.cfs_quota_us`]: await fixture('v1/cpu.cfs_quota_us'),
    [`${cpuDir}/cpu.cfs_period_us`]: await fixture('v1/cpu.cfs_period_us'),
    [`${acctDir}/cpuacct.usage`]: await fixture('v1/cpuacct.usage'),
  };
}

async function v2Files(dir: string): Promise<Record<string, string>> {
  return { 'cgroup.controllers': 'cpuset cpu io memory pids\n', [`${dir}/cpu.stat`]: await fixture('v2/cpu.stat'), [`${dir}/cpu.max`]: await fixture('v2/cpu.max') };
}

const V1_COUNTERS = { periods: 16, throttledPeriods: 15, throttledNs: 1_336_296_024, usageNs: 167_362_109 };
const V2_COUNTERS = { periods: 412, throttledPeriods: 398, throttledNs: 36_552_304_000, usageNs: 2_437_186_000 };
const V1_QUOTA = { quotaUs: 10_000, periodUs: 100_000 };
const V2_QUOTA = { quotaUs: 30_000, periodUs: 100_000 };

describe('CgroupCpu finds a container by its id', () => {
  it.each([
    // cgroup.controllers under unified/ (a hybrid host, like this project's CI) must not make it v2.
    ['v1, cgroupfs, cpu and cpuacct mounted apart (hybrid)', async () => ({
      ...(await v1Files(`cpu/docker/${ID}`, `cpuacct/docker/${ID}`)),
      'unified/cgroup.controllers': '',
      [`unified/docker/${ID}/cpu.stat`]: await fixture('v2/cpu.stat.no-cpu-controller'),
    }), V1_COUNTERS, V1_QUOTA],
    ['v1, cgroupfs, cpu,cpuacct comounted', () => v1Files(`cpu,cpuacct/docker/${ID}`, `cpu,cpuacct/docker/${ID}`), V1_COUNTERS, V1_QUOTA],
    ['v1, systemd', () => v1Files(`cpu,cpuacct/system.slice/docker-${ID}.scope`, `cpu,cpuacct/system.slice/docker-${ID}.scope`), V1_COUNTERS, V1_QUOTA],
    ['v2, cgroupfs', () => v2Files(`docker/${ID}`), V2_COUNTERS, V2_QUOTA],
    ['v2, systemd', () => v2Files(`system.slice/docker-${ID}.scope`), V2_COUNTERS, V2_QUOTA],
  ] as const)('%s', async (_name, files, counters, quota) => {
    const cpu = new CgroupCpu({ root: await layout(await files()), procRoot: '/nonexistent' });
    expect(await cpu.read(ID)).toEqual(counters);
    expect(await cpu.readQuota(ID)).toEqual(quota);
    expect(await cpu.read('f'.repeat(64))).toBeNull();
  });

  it('never climbs out of the root on a strange id', async () => {
    const outer = await layout({ 'cg/cgroup.controllers': '', 'x/cpu.stat': 'usage_usec 1\n' });
    const cpu = new CgroupCpu({ root: path.join(outer, 'cg') });
    expect(await cpu.read('../../x')).toBeNull();
    expect(await cpu.locate('..')).toBeNull();
  });
});

describe('CgroupCpu finds a container through /proc/<pid>/cgroup', () => {
  it('v1, another cgroup parent, cpu,cpuacct comounted', async () => {
    const root = await layout(await v1Files('cpu,cpuacct/ci/nested/8d3f0c1b2a', 'cpu,cpuacct/ci/nested/8d3f0c1b2a'));
    const proc = await layout({ '4242/cgroup': await fixture('proc/cgroup.v1-comounted-custom-parent') });
    const cpu = new CgroupCpu({ root, procRoot: proc });
    expect(await cpu.read(ID)).toBeNull();
    expect(await cpu.read(ID, 4242)).toEqual(V1_COUNTERS);
    expect(await cpu.readQuota(ID, 4242)).toEqual(V1_QUOTA);
    // Found once, it needs the pid no more.
    await unlink(path.join(proc, '4242/cgroup'));
    expect(await cpu.read(ID)).toEqual(V1_COUNTERS);
    cpu.forget(ID);
    expect(await cpu.read(ID, 4242)).toBeNull();
  });

  it('v1, cpu and cpuacct mounted apart (this machine), for an id not in the path', async () => {
    const where = 'docker/54160729778b8caf55bc60238351f1f05b404d80e0827d7b04d4b478e0d4ca6d';
    const root = await layout(await v1Files(`cpu/${where}`, `cpuacct/${where}`));
    const proc = await layout({ '7/cgroup': await fixture('proc/cgroup.v1-separate') });
    const cpu = new CgroupCpu({ root, procRoot: proc });
    expect(await cpu.locate('runtime-id', 7)).toEqual({ version: 1, cpu: path.join(root, 'cpu', where), cpuacct: path.join(root, 'cpuacct', where) });
    expect(await cpu.read('runtime-id', 7)).toEqual(V1_COUNTERS);
  });

  it('keeps the directory found, until forgotten', async () => {
    const root = await layout(await v2Files('custom/parent'));
    const proc = await layout({ '8/cgroup': '0::/custom/parent\n' });
    const cpu = new CgroupCpu({ root, procRoot: proc });
    expect(await cpu.read(ID, 8)).toEqual(V2_COUNTERS);
    // A directory by its name appears: the one found first still answers, until forgotten.
    await mkdir(path.join(root, 'docker', ID), { recursive: true });
    await writeFile(path.join(root, 'docker', ID, 'cpu.stat'), await fixture('v2/cpu.stat.no-cpu-controller'));
    expect(await cpu.read(ID, 8)).toEqual(V2_COUNTERS);
    cpu.forget(ID);
    expect(await cpu.read(ID, 8)).toEqual({ periods: 0, throttledPeriods: 0, throttledNs: 0, usageNs: 167_362_000 });
  });

  it('v2, another parent', async () => {
    const where = 'kubepods.slice/kubepods-burstable.slice/cri-containerd-ab12cd34.scope';
    const root = await layout(await v2Files(where));
    const proc = await layout({ '99/cgroup': await fixture('proc/cgroup.v2-other-parent') });
    const cpu = new CgroupCpu({ root, procRoot: proc });
    expect(await cpu.read(ID, 99)).toEqual(V2_COUNTERS);
    expect(await cpu.readQuota(ID, 99)).toEqual(V2_QUOTA);
  });

  it('not a path outside this cgroup namespace, nor a missing pid', async () => {
    const root = await layout({ ...(await v2Files('outside/ns')) });
    const proc = await layout({ '5/cgroup': await fixture('proc/cgroup.v2-outside-namespace') });
    const cpu = new CgroupCpu({ root: path.join(root, 'a', 'b'), procRoot: proc });
    expect(await cpu.read(ID, 5)).toBeNull();
    expect(await cpu.read(ID, 6)).toBeNull();
  });
});

describe('CgroupCpu falls back on the engine only where the files cannot be read', () => {
  const engine: CpuCounters = { periods: 1, throttledPeriods: 1, throttledNs: 1, usageNs: 1 };

  it('files there: the fallback is not asked', async () => {
    const fallback = vi.fn(async () => engine);
    const cpu = new CgroupCpu({ root: await layout(await v2Files(`docker/${ID}`)), fallback });
    expect(await cpu.read(ID)).toEqual(V2_COUNTERS);
    expect(fallback).not.toHaveBeenCalled();
  });

  it('no directory: the fallback answers', async () => {
    const fallback = vi.fn(async () => engine);
    const cpu = new CgroupCpu({ root: await layout({}), fallback });
    expect(await cpu.read(ID)).toEqual(engine);
    expect(fallback).toHaveBeenCalledWith(ID);
  });

  it('directory gone after it was found: the fallback, then the files again once back', async () => {
    const fallback = vi.fn(async () => engine);
    const root = await layout(await v1Files(`cpu/docker/${ID}`, `cpuacct/docker/${ID}`));
    const cpu = new CgroupCpu({ root, fallback });
    expect(await cpu.read(ID)).toEqual(V1_COUNTERS);
    await rm(path.join(root, 'cpuacct', 'docker', ID), { recursive: true });
    expect(await cpu.read(ID)).toEqual(engine);
    await mkdir(path.join(root, 'cpu,cpuacct', 'docker', ID), { recursive: true });
    await writeFile(path.join(root, 'cpu,cpuacct', 'docker', ID, 'cpu.stat'), await fixture('v1/cpu.stat.kernel-4'));
    await writeFile(path.join(root, 'cpu,cpuacct', 'docker', ID, 'cpuacct.usage'), '5\n');
    expect(await cpu.read(ID)).toEqual({ periods: 4211, throttledPeriods: 37, throttledNs: 2_207_409_561, usageNs: 5 });
    expect(fallback).toHaveBeenCalledTimes(1);
  });

  it('neither works: null, even when the fallback throws', async () => {
    const cpu = new CgroupCpu({ root: await layout({}), fallback: async () => { throw new Error('engine down'); } });
    expect(await cpu.read(ID)).toBeNull();
    expect(await new CgroupCpu({ root: await layout({}) }).read(ID)).toBeNull();
  });

  it('a malformed file is an error naming its directory, not a silent fallback', async () => {
    const fallback = vi.fn(async () => engine);
    const root = await layout({ ...(await v2Files(`docker/${ID}`)), [`docker/${ID}/cpu.stat`]: await fixture('malformed/cpu.stat.v2-no-usage') });
    const err = await new CgroupCpu({ root, fallback }).read(ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FcError);
    expect((err as FcError).message).toContain(path.join(root, 'docker', ID));
    expect(fallback).not.toHaveBeenCalled();
  });
});

describe('CpuWindow', () => {
  const at = (periods: number, throttled: number, usageNs: number): CpuCounters => ({ periods, throttledPeriods: throttled, throttledNs: throttled * 1e6, usageNs });

  it('share and cores between the ends of the window (the worked example)', () => {
    const w = new CpuWindow();
    w.add(10_000, at(100, 90, 5.0e9));
    w.add(10_500, at(105, 95, 5.05e9));
    w.add(11_000, at(110, 100, 5.1e9));
    expect(w.summary(11_000, 1000)).toEqual({ throttledShare: 1, usageCores: expect.closeTo(0.1, 9), periods: 10 });
    // Half a window: the middle sample is the oldest inside it.
    expect(w.summary(11_000, 500)).toEqual({ throttledShare: 1, usageCores: expect.closeTo(0.1, 9), periods: 5 });
  });

  it('only the samples inside the window count', () => {
    const w = new CpuWindow();
    // 0-9 s: idle, no throttling; 9-10 s: 2 cores, half the periods throttled.
    for (let s = 0; s <= 9; s++) w.add(s * 1000, at(s * 10, 0, 0));
    w.add(10_000, at(100, 5, 2e9));
    expect(w.summary(10_000, 1000)).toEqual({ throttledShare: 0.5, usageCores: 2, periods: 10 });
    expect(w.summary(10_000, 10_000)).toEqual({ throttledShare: 0.05, usageCores: 0.2, periods: 100 });
  });

  it('null without two samples, without periods, or when the newest is older than the window', () => {
    const w = new CpuWindow();
    expect(w.summary(0, 1000)).toEqual({ throttledShare: null, usageCores: null, periods: 0 });
    w.add(0, at(0, 0, 0));
    expect(w.summary(0, 1000)).toEqual({ throttledShare: null, usageCores: null, periods: 0 });
    w.add(1000, at(0, 0, 3e8));
    expect(w.summary(1000, 1000)).toEqual({ throttledShare: null, usageCores: expect.closeTo(0.3, 9), periods: 0 });
    expect(w.summary(5000, 1000)).toEqual({ throttledShare: null, usageCores: null, periods: 0 });
  });

  it('a counter going down (a restart) starts the window over', () => {
    const w = new CpuWindow();
    w.add(0, at(100, 50, 9e9));
    w.add(1000, at(110, 60, 9.5e9));
    w.add(2000, at(4, 1, 1e8));
    expect(w.summary(2000, 10_000)).toEqual({ throttledShare: null, usageCores: null, periods: 0 });
    w.add(3000, at(14, 3, 3e8));
    expect(w.summary(3000, 10_000)).toEqual({ throttledShare: 0.2, usageCores: expect.closeTo(0.2, 9), periods: 10 });
    w.reset();
    expect(w.summary(3000, 10_000).periods).toBe(0);
  });

  it('keeps only its last samples as the ring wraps', () => {
    const w = new CpuWindow(4);
    for (let s = 0; s < 10; s++) w.add(s * 1000, at(s * 10, s, s * 1e9));
    // Samples 6..9 remain: 3 s between the ends.
    expect(w.summary(9000, 60_000)).toEqual({ throttledShare: 0.1, usageCores: 1, periods: 30 });
  });
});
