// A container's CPU counters and quota, read from its cgroup files: the kernel's own numbers,
// a file read each, cheap enough to take every 250 ms per container. The engine's stats API
// (ContainerRuntime.cpuStats) is the fallback only where the files cannot be read, e.g. a
// dispatcher in a container without /sys/fs/cgroup mounted, or an engine on another machine.
//
// Where the files are. Docker names a container's cgroup after its full id:
//   v1, cgroupfs driver:  <root>/cpu,cpuacct/docker/<id>   (or cpu/… and cpuacct/… mounted apart)
//   v1, systemd driver:   <root>/cpu,cpuacct/system.slice/docker-<id>.scope
//   v2, cgroupfs driver:  <root>/docker/<id>
//   v2, systemd driver:   <root>/system.slice/docker-<id>.scope
// A dockerd with another cgroup parent, or nested in a container, puts it elsewhere; then the
// container's main process says where, in /proc/<pid>/cgroup. v2 is told by <root>/cgroup.controllers;
// a hybrid host (v1 controllers plus a v2 tree at <root>/unified) has none there and counts as v1,
// which is right: its cpu controller is the v1 one.

import { readFileSync } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FcError } from '../../shared/errors.js';

export interface CpuCounters {
  /** CFS periods in which the cgroup was runnable (grows only under a quota). */
  periods: number;
  /** Periods in which it hit its quota and was stopped until the next one. */
  throttledPeriods: number;
  throttledNs: number;
  /** CPU time used, all cores together. */
  usageNs: number;
}

export interface CpuQuota {
  /** null: no limit. */
  quotaUs: number | null;
  periodUs: number;
}

const UINT = /^\d+$/;

function malformed(file: string, what: string): FcError {
  return new FcError('FC_ERR_ENGINE', `${file} is malformed: ${what}`, { file });
}

function uint(text: string, file: string): number {
  const t = text.trim();
  if (!UINT.test(t)) throw malformed(file, `"${t.slice(0, 40)}" is not an unsigned integer`);
  return Number(t);
}

/**
 * The wanted keys of a flat keyed file ("key value" lines, as cpu.stat). Keys we do not know are
 * skipped (kernels add some: nr_bursts, burst_time, …); a wanted key with a bad value is an error.
 */
function keyed(text: string, file: string, wanted: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^(\S+)\s+(\S+)\s*$/.exec(line);
    if (m === null) throw malformed(file, `line "${line.slice(0, 60)}" is not "key value"`);
    const key = m[1] as string;
    if (wanted.includes(key)) out.set(key, uint(m[2] as string, `${file} ${key}`));
  }
  return out;
}

function required(values: Map<string, number>, key: string, file: string): number {
  const v = values.get(key);
  if (v === undefined) throw malformed(file, `no ${key}`);
  return v;
}

/** cgroup v1: cpu.stat (throttled_time in ns) and cpuacct.usage (ns). */
export function parseCpuStatV1(cpuStat: string, cpuacctUsage: string): CpuCounters {
  const v = keyed(cpuStat, 'cpu.stat', ['nr_periods', 'nr_throttled', 'throttled_time']);
  return {
    periods: required(v, 'nr_periods', 'cpu.stat'),
    throttledPeriods: required(v, 'nr_throttled', 'cpu.stat'),
    throttledNs: required(v, 'throttled_time', 'cpu.stat'),
    usageNs: uint(cpuacctUsage, 'cpuacct.usage'),
  };
}

/**
 * cgroup v2: cpu.stat, in microseconds. usage_usec is always there; the throttling keys only where
 * the cpu controller is enabled for the group, and their absence reads as no periods (no quota).
 */
export function parseCpuStatV2(cpuStat: string): CpuCounters {
  const v = keyed(cpuStat, 'cpu.stat', ['usage_usec', 'nr_periods', 'nr_throttled', 'throttled_usec']);
  return {
    periods: v.get('nr_periods') ?? 0,
    throttledPeriods: v.get('nr_throttled') ?? 0,
    throttledNs: (v.get('throttled_usec') ?? 0) * 1000,
    usageNs: required(v, 'usage_usec', 'cpu.stat') * 1000,
  };
}

/** cgroup v1: cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us. */
export function parseQuotaV1(cfsQuotaUs: string, cfsPeriodUs: string): CpuQuota {
  const periodUs = uint(cfsPeriodUs, 'cpu.cfs_period_us');
  if (periodUs === 0) throw malformed('cpu.cfs_period_us', 'the period is 0');
  const q = cfsQuotaUs.trim();
  return { quotaUs: q === '-1' ? null : uint(q, 'cpu.cfs_quota_us'), periodUs };
}

/** cgroup v2: cpu.max, "max 100000" (no limit) or "30000 100000" (0.3 core). */
export function parseCpuMaxV2(cpuMax: string): CpuQuota {
  const fields = cpuMax.trim().split(/\s+/);
  if (fields.length !== 2) throw malformed('cpu.max', `"${cpuMax.trim().slice(0, 40)}" is not "<quota|max> <period>"`);
  const periodUs = uint(fields[1] as string, 'cpu.max period');
  if (periodUs === 0) throw malformed('cpu.max', 'the period is 0');
  return { quotaUs: fields[0] === 'max' ? null : uint(fields[0] as string, 'cpu.max quota'), periodUs };
}

/**
 * Memory in use, as `docker stats` counts it: the cgroup's usage less the page cache it could drop
 * at once (inactive file pages), which the kernel reclaims before it would limit the container.
 * v1: memory.usage_in_bytes and memory.stat's total_inactive_file; v2: memory.current and
 * memory.stat's inactive_file.
 */
export function parseMemory(usage: string, memoryStat: string, version: 1 | 2): number {
  const file = version === 1 ? 'memory.usage_in_bytes' : 'memory.current';
  const used = uint(usage, file);
  const key = version === 1 ? 'total_inactive_file' : 'inactive_file';
  const inactive = keyed(memoryStat, 'memory.stat', [key]).get(key) ?? 0;
  return Math.max(0, used - inactive);
}

/** Where one container's files are. v1 may have cpu and cpuacct in separate hierarchies. */
export type CgroupDir = { version: 1; cpu: string; cpuacct: string } | { version: 2; dir: string };

export interface CgroupCpuOptions {
  /** Where the cgroup filesystems are mounted; default /sys/fs/cgroup. */
  root?: string;
  /** Where /proc is, for /proc/<pid>/cgroup; default /proc (tests lay out their own). */
  procRoot?: string;
  /** The engine's stats API, used only where the files cannot be read. */
  fallback?: (runtimeId: string) => Promise<CpuCounters | null>;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Both files, or null when either cannot be read (the cgroup is gone, or not ours to read). Read
 * synchronously: cgroup files are the kernel's counters, answered from memory in microseconds,
 * while fs.promises.readFile costs four thread-pool round trips and their promises per file.
 * With 200 running containers (800 files a second) that was 11% of a core for an idle
 * dispatcher, and the warm path's p99 through its process 1.8 times that with one container;
 * read like this, 2% and 1.4 times (bench/many-tenants.ts).
 */
async function readBoth(a: string, b: string | null): Promise<[string, string] | null> {
  try {
    return [readFileSync(a, 'utf8'), b === null ? '' : readFileSync(b, 'utf8')];
  } catch {
    return null;
  }
}

/** A runtime id can only name a directory, never climb out of one. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export class CgroupCpu {
  private readonly root: string;
  private readonly procRoot: string;
  private readonly fallback: ((runtimeId: string) => Promise<CpuCounters | null>) | undefined;
  private readonly dirs = new Map<string, CgroupDir>();
  private version: Promise<1 | 2> | undefined;

  constructor(o: CgroupCpuOptions = {}) {
    this.root = o.root ?? '/sys/fs/cgroup';
    this.procRoot = o.procRoot ?? '/proc';
    this.fallback = o.fallback;
  }

  /** Counters of a container, from its cgroup files; the fallback (engine stats API) only where the files cannot be read. null if neither works. */
  async read(runtimeId: string, pid?: number | null): Promise<CpuCounters | null> {
    const dir = await this.locate(runtimeId, pid);
    if (dir !== null) {
      const files = dir.version === 1
        ? await readBoth(path.join(dir.cpu, 'cpu.stat'), path.join(dir.cpuacct, 'cpuacct.usage'))
        : await readBoth(path.join(dir.dir, 'cpu.stat'), null);
      if (files !== null) {
        // A file that reads but does not parse is not the fallback's case: the error says which.
        try {
          return dir.version === 1 ? parseCpuStatV1(files[0], files[1]) : parseCpuStatV2(files[0]);
        } catch (err) {
          throw this.inDir(err, dir);
        }
      }
      // Gone (the container was removed) or moved: look again next time.
      this.dirs.delete(runtimeId);
    }
    if (this.fallback === undefined) return null;
    try {
      return await this.fallback(runtimeId);
    } catch {
      return null;
    }
  }

  /**
   * Memory the container uses now, in bytes (parseMemory), or null where its files cannot be read.
   * On v1 the memory controller is its own hierarchy: the container's directory there has the
   * same path under it as under the cpu one.
   */
  async readMemory(runtimeId: string, pid?: number | null): Promise<number | null> {
    const dir = await this.locate(runtimeId, pid);
    if (dir === null) return null;
    let memDir: string;
    if (dir.version === 2) memDir = dir.dir;
    else {
      const mount = ['cpu,cpuacct', 'cpu', 'cpuacct'].map((m) => path.join(this.root, m)).find((m) => dir.cpu.startsWith(`${m}/`));
      if (mount === undefined) return null;
      memDir = path.join(this.root, 'memory', path.relative(mount, dir.cpu));
    }
    const files = await readBoth(path.join(memDir, dir.version === 1 ? 'memory.usage_in_bytes' : 'memory.current'), path.join(memDir, 'memory.stat'));
    if (files === null) return null;
    try {
      return parseMemory(files[0], files[1], dir.version);
    } catch (err) {
      throw this.inDir(err, dir);
    }
  }

  /** The container's CFS quota, or null where its files cannot be read. */
  async readQuota(runtimeId: string, pid?: number | null): Promise<CpuQuota | null> {
    const dir = await this.locate(runtimeId, pid);
    if (dir === null) return null;
    const files = dir.version === 1
      ? await readBoth(path.join(dir.cpu, 'cpu.cfs_quota_us'), path.join(dir.cpu, 'cpu.cfs_period_us'))
      : await readBoth(path.join(dir.dir, 'cpu.max'), null);
    if (files === null) {
      this.dirs.delete(runtimeId);
      return null;
    }
    try {
      return dir.version === 1 ? parseQuotaV1(files[0], files[1]) : parseCpuMaxV2(files[0]);
    } catch (err) {
      throw this.inDir(err, dir);
    }
  }

  /**
   * Sets the container's CFS quota by writing its cgroup file, which the kernel enforces from the
   * next period: microseconds, where the engine's update API takes tens of milliseconds on a busy
   * host (the paper's scale-up is a cgroup write too). The period stays as it is. False when the
   * files cannot be found or written; the caller then goes through the engine alone.
   */
  async writeQuota(runtimeId: string, cpus: number, pid?: number | null): Promise<boolean> {
    if (!(cpus > 0 && cpus <= 1024)) return false;
    const dir = await this.locate(runtimeId, pid);
    if (dir === null) return false;
    try {
      if (dir.version === 1) {
        const { periodUs } = parseQuotaV1('-1', await readFile(path.join(dir.cpu, 'cpu.cfs_period_us'), 'utf8'));
        await writeFile(path.join(dir.cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(cpus * periodUs))));
      } else {
        const { periodUs } = parseCpuMaxV2(await readFile(path.join(dir.dir, 'cpu.max'), 'utf8'));
        await writeFile(path.join(dir.dir, 'cpu.max'), `${Math.max(1000, Math.round(cpus * periodUs))} ${periodUs}`);
      }
      return true;
    } catch {
      return false;
    }
  }

  /** Drops the cached directory (the container is gone). */
  forget(runtimeId: string): void {
    this.dirs.delete(runtimeId);
  }

  /** The directory found for a container, cached; null when none is found (not cached: it may appear). */
  async locate(runtimeId: string, pid?: number | null): Promise<CgroupDir | null> {
    const cached = this.dirs.get(runtimeId);
    if (cached !== undefined) return cached;
    if (!SAFE_ID.test(runtimeId)) return null;
    this.version ??= exists(path.join(this.root, 'cgroup.controllers')).then((v2) => (v2 ? 2 : 1));
    const version = await this.version;
    const found = (await this.byName(version, runtimeId)) ?? (pid != null && Number.isInteger(pid) && pid > 0 ? await this.byPid(version, pid) : null);
    if (found !== null) this.dirs.set(runtimeId, found);
    return found;
  }

  private async byName(version: 1 | 2, id: string): Promise<CgroupDir | null> {
    const scopes = [`docker/${id}`, `system.slice/docker-${id}.scope`];
    for (const scope of scopes) {
      if (version === 2) {
        const dir = path.join(this.root, scope);
        if (await exists(path.join(dir, 'cpu.stat'))) return { version: 2, dir };
        continue;
      }
      // Comounted (cpu,cpuacct; cpu and cpuacct are then symlinks to it) or mounted apart.
      for (const [cpuMount, acctMount] of [['cpu,cpuacct', 'cpu,cpuacct'], ['cpu', 'cpuacct']] as const) {
        const found = await this.v1Dir([path.join(this.root, cpuMount, scope)], [path.join(this.root, acctMount, scope)]);
        if (found !== null) return found;
      }
    }
    return null;
  }

  /**
   * From /proc/<pid>/cgroup: "0::/path" on v2; on v1 one "id:controllers:/path" line per hierarchy,
   * the directory being the path under the hierarchy's mount, named after its controllers.
   */
  private async byPid(version: 1 | 2, pid: number): Promise<CgroupDir | null> {
    let text: string;
    try {
      text = await readFile(path.join(this.procRoot, String(pid), 'cgroup'), 'utf8');
    } catch {
      return null;
    }
    const cpu: string[] = [];
    const cpuacct: string[] = [];
    for (const line of text.split('\n')) {
      const m = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
      if (m === null) continue;
      const controllers = m[2] as string;
      const where = m[3] as string;
      // Outside this cgroup namespace ("/../.."): not reachable from our mount.
      if (where.split('/').includes('..')) continue;
      if (version === 2) {
        if (m[1] !== '0' || controllers !== '') continue;
        const dir = path.join(this.root, where);
        return (await exists(path.join(dir, 'cpu.stat'))) ? { version: 2, dir } : null;
      }
      const list = controllers.split(',');
      if (list.includes('cpu')) cpu.push(path.join(this.root, controllers, where), path.join(this.root, 'cpu', where));
      if (list.includes('cpuacct')) cpuacct.push(path.join(this.root, controllers, where), path.join(this.root, 'cpuacct', where));
    }
    return version === 1 ? this.v1Dir(cpu, cpuacct) : null;
  }

  private async v1Dir(cpuCandidates: string[], acctCandidates: string[]): Promise<CgroupDir | null> {
    let cpu: string | undefined;
    for (const c of cpuCandidates) {
      if (await exists(path.join(c, 'cpu.stat'))) {
        cpu = c;
        break;
      }
    }
    if (cpu === undefined) return null;
    for (const a of acctCandidates) {
      if (await exists(path.join(a, 'cpuacct.usage'))) return { version: 1, cpu, cpuacct: a };
    }
    return null;
  }

  private inDir(err: unknown, dir: CgroupDir): unknown {
    if (!(err instanceof FcError)) return err;
    const where = dir.version === 1 ? dir.cpu : dir.dir;
    return new FcError(err.code, `${err.message} (in ${where})`, { ...err.details, dir: where }, { cause: err });
  }
}
