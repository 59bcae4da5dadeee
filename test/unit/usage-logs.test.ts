// The pure parts of usage for billing and of the log shipper: cumulative figures from counters
// and samples, lines cut to a bound, the rate budget, query times, and printing a tenant's bytes
// safely.

import { describe, expect, it } from 'vitest';
import { formatLogLine, safeText } from '../../src/cli/commands/logs.js';
import type { LogLine } from '../../src/cmdb/logs.js';
import { usageDelta, zeroUsage } from '../../src/cmdb/usage.js';
import { parseQueryInt, parseQueryTime } from '../../src/coreapi/query-time.js';
import { usageFigures } from '../../src/coreapi/usage.js';
import { LineBudget } from '../../src/dispatcher/log-shipper.js';
import { CUT_MARK, LineSplitter, lineText, splitTimestamp } from '../../src/dispatcher/log-lines.js';
import { parseMemory } from '../../src/dispatcher/signals/cgroup.js';
import { ContainerUsage, sampleMemory, usageTotals } from '../../src/dispatcher/usage-meter.js';
import { FcError } from '../../src/shared/errors.js';

const MIB = 1024 * 1024;

describe('usage figures of a container', () => {
  it('container time and memory at the limit from the start; memory used integrated (trapezoid, first sample back to the start)', () => {
    const u = new ContainerUsage();
    u.startedAt = 1_000;
    u.lastSampleAt = 1_000;
    u.memLimitMiB = 256;
    u.cpuUs = 2_100_000.7;
    u.requests = 30;
    sampleMemory(u, 16_000, 40 * MIB); // 40 MiB × 15 s
    sampleMemory(u, 31_000, 60 * MIB); // mean 50 MiB × 15 s
    expect(usageTotals(u, 31_000)).toEqual({
      cpuUs: 2_100_000, containerMs: 30_000, memLimitMiBMs: 256 * 30_000, memUsedMiBMs: 40 * 15_000 + 50 * 15_000,
      requests: 30, bytesIn: 0, bytesOut: 0, coldStarts: 0,
    });
    // Before the start (a clock step back): no negative time.
    expect(usageTotals(u, 0).containerMs).toBe(0);
  });

  it('deltas never go negative, and the API converts to seconds and GiB-seconds', () => {
    const a = { ...zeroUsage(), cpuUs: 5, requests: 3 };
    const b = { ...zeroUsage(), cpuUs: 4, requests: 7 };
    expect(usageDelta(a, b)).toMatchObject({ cpuUs: 0, requests: 4 });
    expect(usageDelta(null, b)).toEqual(b);
    expect(usageFigures({ ...zeroUsage(), cpuUs: 1_500_000, containerMs: 2_000, memLimitMiBMs: 1024 * 1000 * 3, memUsedMiBMs: 512 * 1000 })).toMatchObject({
      cpuSeconds: 1.5, containerSeconds: 2, memoryLimitGiBSeconds: 3, memoryUsedGiBSeconds: 0.5,
    });
  });

  it('reads memory as docker stats does: usage less inactive page cache (v1 and v2)', () => {
    expect(parseMemory('10485760\n', 'cache 100\ntotal_inactive_file 2097152\nrss 5\n', 1)).toBe(8 * MIB);
    expect(parseMemory('10485760\n', 'anon 5\ninactive_file 1048576\n', 2)).toBe(9 * MIB);
    expect(parseMemory('100\n', 'inactive_file 200\n', 2)).toBe(0);
    expect(() => parseMemory('lots', '', 1)).toThrow(FcError);
  });
});

describe('output lines, bounded', () => {
  const split = (max: number, chunks: (string | Buffer)[]) => {
    const out: string[] = [];
    const s = new LineSplitter(max, (line, cut) => out.push(lineText(line, cut)));
    for (const c of chunks) s.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
    s.end();
    return out;
  };

  it('splits across chunks, cuts long lines and skips their rest, keeps a last line without newline', () => {
    expect(split(100, ['he', 'llo\nwor', 'ld\r\n', 'tail'])).toEqual(['hello', 'world', 'tail']);
    expect(split(5, ['abcdefghij\nok\n'])).toEqual([`abcde${CUT_MARK}`, 'ok']);
    // A flood without a newline costs at most the limit: one cut line, the rest skipped.
    const flood = Buffer.alloc(1_000_000, 0x41);
    expect(split(8, [flood, flood, Buffer.from('\nnext\n')])).toEqual([`AAAAAAAA${CUT_MARK}`, 'next']);
  });

  it('keeps NUL, escapes and invalid UTF-8 as text (replacement character), never throws', () => {
    const out = split(100, [Buffer.from([0x61, 0x00, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0xff, 0xfe, 0x0a])]);
    expect(out).toEqual(['a\u0000\u001b[31m\uFFFD\uFFFD']);
    // Cut inside a multi-byte character: no half character left.
    expect(split(4, ['abcé\n'])).toEqual([`abc${CUT_MARK}`]);
  });

  it('splits Docker\'s timestamp prefix off, or falls back to now', () => {
    const { at, rest } = splitTimestamp(Buffer.from('2026-11-25T21:50:00.123456789Z hello world'), 7);
    expect(at).toBe(Date.UTC(2026, 10, 25, 21, 50, 0, 123));
    expect(rest.toString()).toBe('hello world');
    expect(splitTimestamp(Buffer.from('no timestamp here'), 7)).toMatchObject({ at: 7 });
  });

  it('a budget of 10 lines/s with bursts of 20', () => {
    const b = new LineBudget(10, 20, 0);
    let taken = 0;
    for (let i = 0; i < 100; i++) if (b.take(0)) taken += 1;
    expect(taken).toBe(20);
    expect(b.take(50)).toBe(false);
    expect(b.take(100)).toBe(true);
    let later = 0;
    for (let i = 0; i < 100; i++) if (b.take(1_100)) later += 1;
    expect(later).toBe(10);
  });
});

describe('printing a tenant\'s lines safely', () => {
  it('escapes control characters, ANSI escapes, NUL, DEL, C1, bidi overrides and line separators; keeps tabs and text', () => {
    expect(safeText('ok\tünï 日本')).toBe('ok\tünï 日本');
    expect(safeText('\u001b[2J\u001b]0;pwned\u0007x')).toBe('\\x1b[2J\\x1b]0;pwned\\x07x');
    expect(safeText('a\u0000b\u007f\u009bc\r\n')).toBe('a\\x00b\\x7f\\x9bc\\x0d\\x0a');
    expect(safeText('evil\u202egnp.exe\u2028')).toBe('evil\\u{202e}gnp.exe\\u{2028}');
    const line: LogLine = { seq: 1, at: 0, container: 'app-1\u001b[0m', host: 'h', stream: 'stderr', text: 'boom\u001b[31m' };
    const printed = formatLogLine(line);
    expect(printed).not.toMatch(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/);
    expect(printed).toContain('[stderr] boom\\x1b[31m');
  });
});

describe('query times and bounds', () => {
  const now = Date.UTC(2026, 10, 25, 12, 0, 0);
  it('takes ISO times, epoch ms and durations back from now; refuses the rest, naming the field', () => {
    expect(parseQueryTime('since', '1h', now, 0)).toBe(now - 3_600_000);
    expect(parseQueryTime('since', '7d', now, 0)).toBe(now - 7 * 86_400_000);
    expect(parseQueryTime('since', '2026-11-25T10:00:00Z', now, 0)).toBe(Date.UTC(2026, 10, 25, 10));
    expect(parseQueryTime('since', '1700000000000', now, 0)).toBe(1_700_000_000_000);
    expect(parseQueryTime('since', null, now, 42)).toBe(42);
    for (const bad of ['yesterday', '1y', '-5m', '9'.repeat(60), '2026-13-45T99:00:00Z']) {
      expect(() => parseQueryTime('since', bad, now, 0), bad).toThrow(expect.objectContaining({ code: 'FC_ERR_INVALID_FIELD', details: expect.objectContaining({ field: 'since' }) }));
    }
    expect(parseQueryInt('limit', '50', 1, 100, 10)).toBe(50);
    expect(() => parseQueryInt('limit', '1000000000000', 1, 100, 10)).toThrow(FcError);
    expect(() => parseQueryInt('limit', '0', 1, 100, 10)).toThrow(FcError);
  });
});

describe('memory of a container, from its cgroup files', () => {
  it('finds v1\'s memory hierarchy beside the cpu one, and v2\'s in the same directory; null when absent', async () => {
    const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const { CgroupCpu } = await import('../../src/dispatcher/signals/cgroup.js');
    const id = 'a'.repeat(64);
    const v1 = await mkdtemp(path.join(os.tmpdir(), 'fctest-cg1-'));
    const v2 = await mkdtemp(path.join(os.tmpdir(), 'fctest-cg2-'));
    try {
      const cpu = path.join(v1, 'cpu,cpuacct', 'docker', id);
      await mkdir(cpu, { recursive: true });
      await writeFile(path.join(cpu, 'cpu.stat'), 'nr_periods 0\nnr_throttled 0\nthrottled_time 0\n');
      await writeFile(path.join(cpu, 'cpuacct.usage'), '5\n');
      const g1 = new CgroupCpu({ root: v1 });
      expect(await g1.readMemory(id)).toBeNull();
      const mem = path.join(v1, 'memory', 'docker', id);
      await mkdir(mem, { recursive: true });
      await writeFile(path.join(mem, 'memory.usage_in_bytes'), String(50 * MIB));
      await writeFile(path.join(mem, 'memory.stat'), `cache 1\ntotal_inactive_file ${10 * MIB}\n`);
      expect(await g1.readMemory(id)).toBe(40 * MIB);

      await writeFile(path.join(v2, 'cgroup.controllers'), 'cpu memory\n');
      const dir = path.join(v2, 'system.slice', `docker-${id}.scope`);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'cpu.stat'), 'usage_usec 7\n');
      await writeFile(path.join(dir, 'memory.current'), String(3 * MIB));
      await writeFile(path.join(dir, 'memory.stat'), `anon 1\ninactive_file ${MIB}\n`);
      expect(await new CgroupCpu({ root: v2 }).readMemory(id)).toBe(2 * MIB);
      // An id cannot climb out of the tree.
      expect(await new CgroupCpu({ root: v2 }).readMemory('../../etc')).toBeNull();
    } finally {
      await rm(v1, { recursive: true, force: true });
      await rm(v2, { recursive: true, force: true });
    }
  });
});
