// The chaos suite's counting (chaos/lib): what counts as failed, as recovery, as a pass. The
// scenarios themselves run against the real stack (npm run chaos), not here.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { chaosEnv } from '../../chaos/lib/cluster.js';
import { firstOkAfter, summarize, type Rec } from '../../chaos/lib/load.js';
import { slowDownload, type SlowDownload } from '../../chaos/lib/raw.js';
import { exitCodeOf, renderChaosMd, type Row } from '../../chaos/lib/report.js';
import { Marks } from '../../chaos/lib/scenario.js';
import { eventually } from '../helpers/wait.js';

const rec = (t0: number, t1: number, status: number, more: Partial<Rec> = {}): Rec => ({ t0, t1, status, ...more });

const row = (scenario: string, verdict: Row['verdict']): Row => ({
  scenario, did: 'd', sent: 1, failed: 0, sideEffects: 's', recovery: 'r', goal: 'g', verdict, notes: [],
});

describe('summarize', () => {
  it('counts every answer that is not 2xx/3xx and every request with no answer as failed, by kind', () => {
    const s = summarize([
      rec(0, 5, 200),
      rec(0, 10, 503, { code: 'FC_ERR_NO_COMPUTE_HOST' }),
      rec(0, 10, 503, { code: 'FC_ERR_NO_COMPUTE_HOST' }),
      rec(0, 100, 0, { error: 'Headers Timeout Error' }),
      rec(0, 1, 404),
    ]);
    expect(s).toMatchObject({ sent: 5, failed: 4, max: 100 });
    expect(s.kinds).toBe('2× 503 FC_ERR_NO_COMPUTE_HOST, 1× Headers Timeout Error, 1× 404');
  });

  it('an empty load has no failures and no latency', () => {
    expect(summarize([])).toMatchObject({ sent: 0, failed: 0, p99: 0, max: 0, kinds: '' });
  });
});

describe('firstOkAfter', () => {
  it('is the earliest success among requests sent at or after the fault', () => {
    expect(firstOkAfter([rec(10, 30, 200), rec(11, 20, 200), rec(12, 13, 502)], 10)).toBe(20);
  });

  it('does not count a request sent before the fault that happened to succeed after it', () => {
    expect(firstOkAfter([rec(5, 50, 200), rec(12, 13, 502)], 10)).toBeUndefined();
  });

  it('takes a predicate (a 200 from a given container)', () => {
    const recs = [rec(10, 11, 200, { body: 'old\n' }), rec(10, 15, 200, { body: 'new\n' })];
    expect(firstOkAfter(recs, 10, (r) => r.status === 200 && r.body?.trim() === 'new')).toBe(15);
  });
});

describe('Marks', () => {
  it('passes only when every check held, and lists the missed ones', () => {
    const m = new Marks();
    m.check('a', true);
    m.check('b', false);
    expect(m.passed).toBe(false);
    expect(m.missed()).toEqual(['missed: b']);
  });

  it('with no check at all is not a pass', () => {
    expect(new Marks().passed).toBe(false);
  });
});

describe('the report', () => {
  it('exits 0 only when every scenario run passed; not available is not a pass', () => {
    expect(exitCodeOf([row('a', 'pass'), row('b', 'pass')])).toBe(0);
    expect(exitCodeOf([row('a', 'pass'), row('b', 'fail')])).toBe(1);
    expect(exitCodeOf([row('a', 'pass'), row('b', 'unavailable')])).toBe(1);
    expect(exitCodeOf([])).toBe(1);
  });

  it('writes one table row per scenario in the suite\'s order, marking failures and unavailability', () => {
    const md = renderChaosMd([row('b', 'unavailable'), row('a', 'fail'), row('c|x', 'pass')], ['a', 'b']);
    const lines = md.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| scenario') && !l.startsWith('| ---'));
    expect(lines.map((l) => l.split(' | ')[0])).toEqual(['| a', '| b', '| c\\|x']);
    expect(lines[0]).toMatch(/\*\*FAIL\*\* \|$/);
    expect(lines[1]).toMatch(/not available\*\* \(not passed\) \|$/);
  });
});

describe('CHAOS_ENV', () => {
  it('reads K=V pairs and ignores words without a name', () => {
    const before = process.env.CHAOS_ENV;
    process.env.CHAOS_ENV = ' FC_A=1  =x junk FC_B=a=b ';
    try {
      expect(chaosEnv()).toEqual({ FC_A: '1', FC_B: 'a=b' });
    } finally {
      if (before === undefined) delete process.env.CHAOS_ENV;
      else process.env.CHAOS_ENV = before;
    }
  });
});

describe('slowDownload', () => {
  const servers: net.Server[] = [];
  const readers: SlowDownload[] = [];
  afterEach(async () => {
    for (const r of readers.splice(0)) r.stop();
    await Promise.all(servers.splice(0).map((srv) => new Promise((resolve) => srv.close(resolve))));
  });

  /** A server that answers every request with `body` bytes of a `length`-byte answer, then ends, cuts or keeps the connection. */
  async function server(length: number, body: number, then: 'end' | 'cut' | 'keep' = 'end'): Promise<number> {
    const srv = net.createServer((sock) => {
      sock.once('data', () => {
        sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\n\r\n`);
        sock.write(Buffer.alloc(body, 120), () => (then === 'cut' ? sock.destroy() : then === 'end' ? sock.end() : undefined));
      });
      sock.on('error', () => undefined);
    });
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    return (srv.address() as net.AddressInfo).port;
  }

  it('reads no faster than its rate, and says when it has read the whole answer', async () => {
    const port = await server(8000, 8000);
    const began = Date.now();
    // 1,000 bytes per 100 ms: the 8,000 bytes take about 0.8 s.
    const r = slowDownload(port, 'site', { path: '/big', bytesPerSecond: 10_000 });
    readers.push(r);
    const seen: { ms: number; read: number }[] = [];
    await eventually(() => {
      seen.push({ ms: Date.now() - began, read: r.read() });
      return r.complete();
    }, { timeout: 5000, interval: 50, what: 'the whole answer' });
    for (const x of seen) expect(x.read).toBeLessThanOrEqual(1000 * (2 + x.ms / 100));
    expect(Date.now() - began).toBeGreaterThanOrEqual(500);
    expect(r.status()).toBe(200);
    expect(r.read()).toBe(8000);
    expect(r.cut()).toBe(false);
  });

  it('counts an answer the server ends early as cut, and one the client stops as not', async () => {
    const cutShort = slowDownload(await server(100_000, 500, 'cut'), 'site', { path: '/big', bytesPerSecond: 100_000 });
    const stopped = slowDownload(await server(100_000, 500, 'keep'), 'site', { path: '/big', bytesPerSecond: 1000 });
    readers.push(cutShort, stopped);
    await eventually(() => cutShort.cut(), { what: 'the cut' });
    expect(cutShort.complete()).toBe(false);
    await eventually(() => stopped.status() === 200, { what: 'the other answer to begin' });
    stopped.stop();
    expect(stopped.cut()).toBe(false);
  });
});
